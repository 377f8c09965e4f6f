"""What staff type into a form, read once for every page: an amount as the reader's locale writes
one (Babel's symbols and grouping), a date as the date input sends it, and money as the API takes
it (a plain decimal string, never an exponent)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.numbers import NumberFormatError, get_decimal_symbol, get_group_symbol, parse_decimal


def _plain(text: str) -> str:
    """Full-width digits and punctuation as their ASCII forms ("１，０００" is "1,000"), as an
    input method may type them."""
    return unicodedata.normalize("NFKC", text)


def typed_amount(text: str, babel_locale: str, *, zero_allowed: bool = False) -> Decimal | None:
    """An amount typed into a form in the locale's way: ASCII or full-width digits, the locale's
    decimal symbol, and its grouping symbol where the locale groups digits ("1,234.50" in
    English and Chinese; "1,0000" is not grouped as either writes it). Nothing else: no
    exponent ("1e3"), sign or letter. Positive, or zero when allowed; None when it is not one."""
    locale = Locale.parse(babel_locale)
    group, point = _plain(get_group_symbol(locale)), _plain(get_decimal_symbol(locale))
    written = _plain(text).strip()
    if group.isspace():  # a locale grouping with a (narrow) no-break space: any blank typed
        written = re.sub(r"\s", group, written)
    shape = rf"[0-9]+(?:{re.escape(group)}[0-9]+)*(?:{re.escape(point)}[0-9]+)?"
    if not re.fullmatch(shape, written):
        return None
    try:
        value = parse_decimal(written, locale=locale, strict=True)
    except NumberFormatError:
        return None
    if not value.is_finite() or value < 0 or (value == 0 and not zero_allowed):
        return None
    return value


def typed_date(text: str) -> str | None:
    """A date as a date input sends it (`YYYY-MM-DD`), or None when it is not one."""
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        return None


def money_sent(value: Decimal, currency: str) -> dict[str, Any]:
    """Money as the API takes it: the amount a plain decimal string ("1000", never "1E+3")."""
    return {"amount": format(value, "f"), "currency": currency}
