"""The console's two languages: which one a request gets, its message catalogue, and Babel's
formatting of dates, amounts and currencies for it."""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, get_timezone_name
from babel.numbers import format_currency, format_decimal, format_percent

from console.catalogue import en, zh_cn
from shared.calendar import DEFAULT_BUSINESS_TZ

LOCALES: dict[str, dict[str, str]] = {"en": en.MESSAGES, "zh-CN": zh_cn.MESSAGES}
BABEL_LOCALES = {"en": "en_GB", "zh-CN": "zh_Hans_CN"}
DEFAULT_LOCALE = "en"
# Grade factors whose value is a fraction (shown as a percentage) and the one that is money (in
# the currency of the buyer's indicators).
FRACTION_FACTORS = ("dso_change", "overdue_ratio")
MONEY_FACTORS = ("equity",)
FRACTION_INDICATORS = ("overdue_ratio",)  # a buyer's indicators given as a fraction
# A grade factor that is a flag (the insolvency's "true"), in the reader's words.
FLAG_VALUES = {"true": "answer.yes", "false": "answer.no"}
LANGUAGE_NAMES = {"en": "English", "zh-CN": "中文"}  # each in its own language, never translated
# Chinese is sorted by pinyin (CLDR's zh collation) with the standard library alone: GB2312
# orders its 3,755 level-1 characters (first byte 0xB0-0xD7) by pinyin. A character outside them
# is sorted as a level-1 character read the same way (tests/console/test_country_names.py keeps
# every country name covered).
GB2312_LEVEL_1 = range(0xB0, 0xD8)
PINYIN_AS = {"斐": "菲", "梵": "范", "汶": "问", "瑙": "脑", "珀": "破"}
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
    logged (tests/console/test_catalogue.py keeps both catalogues complete). Moments are shown
    in `zone`, the business time zone (`TCI_BUSINESS_TZ`), named."""

    locale: str
    zone: str = DEFAULT_BUSINESS_TZ

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

    def sort_key(self, text: str) -> bytes | str:
        """What sorts `text` as the locale's readers look for it: Chinese by pinyin (GB2312's
        order of its common characters), English by its letters, accents and case aside."""
        if self.locale == "zh-CN":
            return "".join(PINYIN_AS.get(ch, ch) for ch in text).encode("gb18030")
        letters = unicodedata.normalize("NFKD", text)
        return "".join(ch for ch in letters if not unicodedata.combining(ch)).casefold()

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

    def _moment(self, value: dt.datetime | str) -> dt.datetime:
        """A moment the API answers (UTC, or naive: UTC) in the business time zone."""
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(ZoneInfo(self.zone))

    def date(self, value: dt.date | str | None) -> str:
        """A day; a moment's day is its day in the business time zone."""
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            moment = len(value) > 10
            day = self._moment(value).date() if moment else dt.date.fromisoformat(value)
        else:
            day = self._moment(value).date() if isinstance(value, dt.datetime) else value
        return format_date(day, format="medium", locale=self.babel_locale)

    def datetime(self, value: dt.datetime | str | None) -> str:
        """A moment in the business time zone, the zone named ("25 Nov 2026, 12:34:23 (China
        Time)")."""
        if value is None or value == "":
            return "—"
        moment = self._moment(value)
        shown = format_datetime(moment, format="medium", locale=self.babel_locale)
        return self("time.in_zone", moment=shown, zone=self.zone_name)

    @property
    def zone_name(self) -> str:
        """The business time zone as the locale names it ("China Time", "中国时间")."""
        return get_timezone_name(ZoneInfo(self.zone), locale=self.babel_locale)

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

    def factor(self, row: dict[str, Any], buyer: dict[str, Any] | None = None) -> str:
        """A grade factor's value, the same on every page: a flag (the insolvency) as yes or no,
        a fraction as a percentage, equity as money in the currency of the buyer's indicators,
        any other as a number; "not known" when the buyer has not given it."""
        value, name = row.get("value"), row.get("factor")
        if value is None:
            return self("buyer.unknown")
        if value in FLAG_VALUES:
            return self(FLAG_VALUES[value])
        if name in FRACTION_FACTORS:
            return self.percent(value, fraction=True)
        indicators = (buyer or {}).get("indicators") or {}
        money = indicators.get(name) if name in MONEY_FACTORS else None
        if isinstance(money, dict) and money.get("currency"):
            return self.money({"amount": value, "currency": money["currency"]})
        return self.number(value)

    def indicator(self, name: str, value: Any) -> str:
        """A buyer's indicator as given (confirmed or declared): money as money, the overdue
        ratio (a fraction) as a percentage, any other as a number; "—" when not given."""
        if value is None:
            return "—"
        if isinstance(value, dict):
            return self.money(value)
        if name in FRACTION_INDICATORS:
            return self.percent(value, fraction=True)
        return self.number(value)

    def percent(self, value: Any, *, fraction: bool = False) -> str:
        """A percentage: the API's percent units (`"90"`), or a fraction (`0.25`) when said."""
        amount = _decimal(value) if value is not None else None
        if amount is None:
            return "—"
        share = amount if fraction else amount / 100
        return format_percent(share, format="#,##0.##%", locale=self.babel_locale)
