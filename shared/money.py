"""Money: an exact Decimal amount in one ISO 4217 currency, rounded once, half-up, where the business rounds."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

# The rounding the business applies to a computed amount, named once.
BUSINESS_ROUNDING = ROUND_HALF_UP

# ISO 4217 minor units of the currencies that are not the common two. Codes without minor units
# (precious metals, SDR, test codes) are not money a policy can be written in.
_MINOR_UNITS_EXCEPTIONS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip
_NOT_MONEY = frozenset(
    {"XAU", "XAG", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XTS", "XXX"}
)
_ISO_4217: frozenset[str] | None = None
_QUANTA = {units: Decimal(1).scaleb(-units) for units in range(5)}
_HUNDRED = Decimal(100)


class MoneyError(ValueError):
    """An amount or currency that is not valid money."""


class CurrencyMismatch(MoneyError):
    """Arithmetic or comparison across two currencies."""


def _iso_codes() -> frozenset[str]:
    global _ISO_4217
    if _ISO_4217 is None:
        import pycountry

        _ISO_4217 = frozenset(c.alpha_3 for c in pycountry.currencies) - _NOT_MONEY
    return _ISO_4217


def currency_codes() -> frozenset[str]:
    """Every ISO 4217 code that money can be written in."""
    return _iso_codes()


def is_currency(code: str) -> bool:
    """True if `code` is an ISO 4217 currency that money can be written in."""
    return code in _UNITS or code in _iso_codes()


# Minor units of the currencies seen so far: money is built on hot paths (10,000 answers per
# coverage batch), and a dictionary hit is the cheapest check that a currency is valid.
_UNITS: dict[str, int] = {}


def minor_units(currency: str) -> int:
    """The number of decimals of the currency's minor unit (2 for EUR, 0 for JPY, 3 for KWD)."""
    units = _UNITS.get(currency)
    if units is None:
        if not isinstance(currency, str) or currency not in _iso_codes():
            raise MoneyError(
                f"unknown currency {shown(currency, 10)}: expected an ISO 4217 code such as EUR"
            )
        units = _UNITS[currency] = _MINOR_UNITS_EXCEPTIONS.get(currency, 2)
    return units


def decimals_of(amount: Decimal) -> int:
    """How many decimals `amount` carries, ignoring trailing zeros."""
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        return 0
    # From the digits, not `normalize()`: that rounds to the context (1E-999999999 becomes 0).
    significant = len(digits)
    while significant and digits[significant - 1] == 0:
        significant -= 1
    if not significant:
        return 0
    return max(0, -(exponent + len(digits) - significant))


def shown(value: object, width: int = 40) -> str:
    """A value as a message quotes it: plain (`10.001`, never `Decimal('10.001')`), short, and
    as it was sent (`" 5"`: the blank may be what is wrong with it)."""
    text = format(value, "f") if isinstance(value, Decimal) and value.is_finite() else str(value)
    return f'"{text}"' if len(text) <= width else f'"{text[:width]}…"'


_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def parse_amount(text: str | int | Decimal) -> Decimal:
    """A finite Decimal from a decimal string or integer; floats are refused."""
    if isinstance(text, bool | float):
        raise MoneyError('an amount is a decimal string such as "125000.00", never a float')
    if isinstance(text, str) and not _DECIMAL_TEXT.fullmatch(text):
        # As the published pattern says: ASCII digits and a point, no exponent, spaces,
        # underscores or other digits (Decimal() itself would take "1e3", "1_000", "١٠").
        raise MoneyError(f'{shown(text)} is not a decimal amount such as "125000.00"')
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise MoneyError(f"{shown(text)} is not a decimal amount") from None
    if not value.is_finite():
        raise MoneyError(f"{shown(text)} is not a finite amount")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency. Arithmetic only within one currency; rounding is explicit."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise MoneyError("Money.amount must be a Decimal")
        if self.currency not in _UNITS:
            minor_units(self.currency)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        """Exact money from input: refuses more decimals than the currency's minor unit."""
        value = parse_amount(amount)
        if decimals_of(value) > minor_units(currency):
            raise MoneyError(
                f"{currency} amounts carry at most {minor_units(currency)} decimals, got {shown(amount)}"
            )
        return cls(value, currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float | Money):
            raise TypeError("Money is multiplied by a Decimal or an int only")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def percent(self, pct: Decimal) -> Money:
        """This amount × `pct` percent, unrounded (round once at the end of the computation)."""
        return Money(self.amount * pct / _HUNDRED, self.currency)

    def rounded_text(self) -> str:
        """The amount rounded half-up to the currency's minor unit, as the wire carries it
        ("1250.50" for EUR, "1250" for JPY)."""
        return rounded_text(self.amount, self.currency)

    # (The rounding is passed by position: by keyword, `quantize` takes twice as long, and a
    # coverage batch rounds 80,000 amounts.)

    def rounded(self) -> Money:
        """Rounded half-up to the currency's minor unit."""
        quantum = _QUANTA[minor_units(self.currency)]
        return Money(self.amount.quantize(quantum, BUSINESS_ROUNDING), self.currency)

    @classmethod
    def rounded_of(cls, amount: Decimal, currency: str) -> Money:
        """`Money(amount, currency).rounded()` in one step, without the unrounded Money (a
        coverage batch rounds several amounts for each of its 10,000 answers)."""
        if not isinstance(amount, Decimal):
            raise MoneyError("Money.amount must be a Decimal")
        return cls.rounder(currency)(amount)

    @classmethod
    def rounder(cls, currency: str) -> Callable[[Decimal], Money]:
        """`rounded_of` for one currency, as a function of the amount: an answer that rounds
        several amounts of one currency looks its minor unit up once."""
        quantum = _QUANTA[minor_units(currency)]

        def rounded(amount: Decimal) -> Money:
            return cls(amount.quantize(quantum, BUSINESS_ROUNDING), currency)

        return rounded

    def is_zero(self) -> bool:
        return self.amount == 0

    def is_positive(self) -> bool:
        return self.amount > 0

    def formatted(self) -> str:
        """The amount as a decimal string with exactly the currency's minor-unit decimals."""
        quantum = Decimal(1).scaleb(-minor_units(self.currency))
        if decimals_of(self.amount) > minor_units(self.currency):
            raise MoneyError(f"{self.amount} {self.currency} is not rounded; call rounded() first")
        return str(self.amount.quantize(quantum))

    def __str__(self) -> str:
        return f"{self.formatted()} {self.currency}"


def rounded_text(amount: Decimal, currency: str) -> str:
    """`Money(amount, currency).rounded_text()` without building the Money (an answer that
    writes many amounts read from the books, a page of cases say)."""
    return str(amount.quantize(_QUANTA[minor_units(currency)], BUSINESS_ROUNDING))


def money_sum(items: Iterable[Money], currency: str) -> Money:
    """The sum of `items`, all in `currency` (zero for none)."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total


def min_money(first: Money, *others: Money) -> Money:
    result = first
    for other in others:
        result = other if other < result else result
    return result


def max_money(first: Money, *others: Money) -> Money:
    result = first
    for other in others:
        result = other if other > result else result
    return result


def split(total: Money, weights: Sequence[Decimal]) -> list[Money]:
    """Split `total` in proportion to `weights`; the parts are rounded and add up to the total.

    Largest-remainder method: each part is rounded down to the minor unit, then the minor units left
    over go to the parts with the largest remainders (the first such part on a tie).
    """
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise MoneyError("a split needs non-negative weights with a positive sum")
    quantum = Decimal(1).scaleb(-minor_units(total.currency))
    whole = sum(weights, Decimal(0))
    exact = [total.amount * w / whole for w in weights]
    parts = [e.quantize(quantum, rounding=ROUND_DOWN) for e in exact]
    left_over = int(((total.amount - sum(parts, Decimal(0))) / quantum).to_integral_value())
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    step = quantum if left_over >= 0 else -quantum
    for i in by_remainder[: abs(left_over)]:
        parts[i] += step
    return [Money(p, total.currency) for p in parts]
