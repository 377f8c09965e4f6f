"""What every use case is given and the checks every use case makes of money input: one request
context, one way to refuse an amount in another currency or out of range."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Caller
from shared.contracts import MoneyModel
from shared.http import ServiceClient
from shared.money import Money
from shared.problems import CURRENCY_MISMATCH, invalid, unprocessable

SettingsT = TypeVar("SettingsT")
Loc = list[str | int]


@dataclass
class Context(Generic[SettingsT]):
    """Who is asking, when (today in the business time zone), with which settings, and the
    clients of the other services (none for a service that calls no other)."""

    session: AsyncSession
    caller: Caller
    today: dt.date
    settings: SettingsT
    peers: Mapping[str, ServiceClient] = field(default_factory=dict)


class Amounted(Protocol):
    """Money as input carries it: a `MoneyModel` of a request, or a `Money` built from one."""

    @property
    def amount(self) -> Decimal: ...

    @property
    def currency(self) -> str: ...


def money_read(amount: Decimal, currency: str) -> MoneyModel:
    """An amount as the API shows it."""
    return MoneyModel.of(Money(amount, currency))


def amount_in(model: Amounted, currency: str, loc: Loc, *, whose: str = "the policy") -> Decimal:
    """An amount given in `currency`, the one `whose` amounts are all in (there is no conversion:
    422 `currency-mismatch` naming the field otherwise)."""
    if model.currency != currency:
        field_name = ".".join(str(part) for part in loc)
        raise unprocessable(
            CURRENCY_MISMATCH,
            f"{field_name} is in {model.currency}; {whose} is in {currency}",
            loc=loc,
            expected_currency=currency,
        )
    return model.amount


def positive_amount_in(
    model: Amounted, currency: str, loc: Loc, *, whose: str = "the policy"
) -> Decimal:
    """`amount_in`, and greater than zero (422 naming the field otherwise)."""
    amount = amount_in(model, currency, loc, whose=whose)
    if amount <= 0:
        raise invalid(loc, "must be greater than zero")
    return amount


def non_negative_amount_in(
    model: MoneyModel | None, currency: str, loc: Loc, *, whose: str = "the policy"
) -> Decimal:
    """`amount_in`, zero when not given, and not below zero (422 naming the field otherwise)."""
    if model is None:
        return Decimal(0)
    amount = amount_in(model, currency, loc, whose=whose)
    if amount < 0:
        raise invalid(loc, "must not be negative")
    return amount
