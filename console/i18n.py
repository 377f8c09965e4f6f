"""The console's two languages: which one a request gets, its message catalogue, and Babel's
formatting of dates, amounts and currencies for it."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

from console.catalogue import en, zh_cn

LOCALES: dict[str, dict[str, str]] = {"en": en.MESSAGES, "zh-CN": zh_cn.MESSAGES}
BABEL_LOCALES = {"en": "en_GB", "zh-CN": "zh_Hans_CN"}
DEFAULT_LOCALE = "en"
LANGUAGE_NAMES = {"en": "English", "zh-CN": "中文"}  # each in its own language, never translated
log = logging.getLogger("console.i18n")


def _quality(part: str) -> tuple[str, float]:
    tag, _, params = part.strip().partition(";")
    quality = 1.0
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    return tag.strip().lower(), quality


def locale_of_tag(tag: str) -> str | None:
    """The console locale a language tag asks for: any Chinese is zh-CN, any English is en."""
    primary = tag.split("-")[0]
    if primary == "zh":
        return "zh-CN"
    if primary == "en":
        return "en"
    return None


def negotiate(accept_language: str | None, chosen: str | None = None) -> str:
    """The locale a request gets: the one chosen with the switch, else the best of the browser's
    `Accept-Language` that the console speaks, else English."""
    if chosen in LOCALES:
        return chosen
    ranked = sorted(
        (_quality(part) for part in (accept_language or "").split(",") if part.strip()),
        key=lambda pair: -pair[1],
    )
    for tag, quality in ranked:
        found = locale_of_tag(tag)
        if found and quality > 0:
            return found
    return DEFAULT_LOCALE


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@dataclass(frozen=True)
class Translator:
    """Texts and formats for one locale; a key the catalogue lacks falls back to English, and is
    logged (tests/console/test_catalogue.py keeps both catalogues complete)."""

    locale: str

    @property
    def babel_locale(self) -> str:
        return BABEL_LOCALES[self.locale]

    def __call__(self, key: str, **values: Any) -> str:
        text = LOCALES[self.locale].get(key)
        if text is None:
            log.warning("no %s text for %r", self.locale, key)
            text = LOCALES[DEFAULT_LOCALE].get(key, key)
        return text.format(**values) if values else text

    @property
    def plural_forms(self) -> set[str]:
        """The CLDR plural forms of the locale (Babel's rules): `one` and `other` in English,
        `other` alone in Chinese."""
        return {*Locale.parse(self.babel_locale).plural_form.tags, "other"}

    def plural(self, key: str, n: int | Decimal, **values: Any) -> str:
        """A text about `n` things, in the plural form the locale's rules give `n`: the
        catalogue holds `key[one]`, `key[other]`... (`{n}` is the number, formatted)."""
        form = Locale.parse(self.babel_locale).plural_form(n)
        catalogue = LOCALES[self.locale]
        if f"{key}[{form}]" not in catalogue and f"{key}[other]" in catalogue:
            form = "other"
        return self(f"{key}[{form}]", n=self.number(n), **values)

    def has(self, key: str) -> bool:
        return key in LOCALES[self.locale]

    def code(self, group: str, code: str | None) -> str:
        """A code the services answer (a status, a reason, a document kind) in words; a code the
        catalogue does not know yet is shown as it is."""
        if code is None:
            return ""
        key = f"{group}.{code}"
        return self(key) if key in LOCALES[DEFAULT_LOCALE] else code

    def problem(self, slug: str) -> str:
        """What a refusal means, by its problem type (or this console's own codes)."""
        key = f"problem.{slug}"
        return self(key) if key in LOCALES[DEFAULT_LOCALE] else self("problem.generic", code=slug)

    def date(self, value: dt.date | str | None) -> str:
        if value is None or value == "":
            return "—"
        day = dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value
        return format_date(day, format="medium", locale=self.babel_locale)

    def datetime(self, value: dt.datetime | str | None) -> str:
        if value is None or value == "":
            return "—"
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return format_datetime(moment, format="medium", locale=self.babel_locale)

    def money(self, value: dict[str, Any] | None) -> str:
        """A `{"amount", "currency"}` of the API, as the locale writes an amount of money."""
        if not value:
            return "—"
        amount = _decimal(value.get("amount"))
        if amount is None:
            return str(value.get("amount"))
        return format_currency(amount, str(value.get("currency")), locale=self.babel_locale)

    def number(self, value: Any) -> str:
        amount = _decimal(value) if value is not None else None
        return "—" if amount is None else format_decimal(amount, locale=self.babel_locale)

    def percent(self, value: Any, *, fraction: bool = False) -> str:
        """A percentage: the API's percent units (`"90"`), or a fraction (`0.25`) when said."""
        amount = _decimal(value) if value is not None else None
        if amount is None:
            return "—"
        share = amount if fraction else amount / 100
        return format_percent(share, format="#,##0.##%", locale=self.babel_locale)
