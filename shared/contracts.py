"""Pydantic types and models that cross a service boundary: money, countries, dates, text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_serializer,
    model_validator,
)

from shared.countries import CountryError, country_code
from shared.money import Money, MoneyError, is_currency, parse_amount


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


def _decimal_input(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('a decimal is sent as a string such as "0.35", never as a float')
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return parse_amount(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
    return value


def plain_decimal(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing fractional zeros ("90", "0.35")."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value


def _country(value: str) -> str:
    try:
        return country_code(value)
    except CountryError as exc:
        raise ValueError(str(exc)) from None


Text = Annotated[str, AfterValidator(_no_nul)]
ShortText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
LongText = Annotated[str, Field(max_length=4000), AfterValidator(_no_nul)]
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
CurrencyCode = Annotated[
    str, Field(min_length=3, max_length=3, examples=["EUR"]), AfterValidator(_currency)
]
CountryCode = Annotated[str, Field(examples=["CN"]), AfterValidator(_country)]
ExactDecimal = Annotated[
    Decimal,
    BeforeValidator(_decimal_input),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "format": "decimal"}),
]
Percent = Annotated[
    Decimal,
    BeforeValidator(_decimal_input),
    Field(ge=0, le=100, json_schema_extra={"type": "string", "format": "decimal"}),
    PlainSerializer(plain_decimal, return_type=str, when_used="json"),
]
Date = dt.date


class Schema(BaseModel):
    """Request and response models: unknown fields are refused, strings are checked for NUL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class MoneyModel(Schema):
    """Money on the wire: `{"amount": "125000.00", "currency": "EUR"}`."""

    amount: Annotated[
        Decimal,
        BeforeValidator(_decimal_input),
        Field(json_schema_extra={"type": "string", "format": "decimal"}, examples=["125000.00"]),
    ]
    currency: CurrencyCode

    @field_serializer("amount", when_used="json")
    def _amount(self, amount: Decimal) -> str:
        return Money(amount, self.currency).rounded_text()

    @model_validator(mode="after")
    def _minor_units(self) -> MoneyModel:
        try:
            Money.of(self.amount, self.currency)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
        return self

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)

    @classmethod
    def of(cls, money: Money) -> MoneyModel:
        rounded = money.rounded()
        return cls.model_construct(amount=rounded.amount, currency=rounded.currency)


def money_json(money: Money) -> dict[str, str]:
    """Money exactly as a MoneyModel goes on the wire, for answers built without a model."""
    return {"amount": money.rounded_text(), "currency": money.currency}


def money_out(money: Money | None) -> MoneyModel | None:
    return None if money is None else MoneyModel.of(money)


# ---------------------------------------------------------------- what one service reads of another
# Unknown fields are ignored, so a service may add fields to its answers without breaking the others.


class Peer(BaseModel):
    """A model of another service's answer."""

    model_config = ConfigDict(extra="ignore")


class PolicyTerms(Peer):
    """A policy as underwriting answers it: the terms claims and collections apply."""

    id: str
    policyholder_id: str
    currency: str
    start_date: dt.date
    end_date: dt.date
    cover_type: str
    max_liability: MoneyModel
    indemnity_pct: Decimal
    political_risk_cover: bool
    political_indemnity_pct: Decimal
    deductible: MoneyModel
    claim_threshold: MoneyModel
    single_buyer_cap: MoneyModel | None
    claim_filing_days: int
    documents_grace_days: int
    overdue_notification_days: int
    max_extension_days: int
    protracted_default_wait_days: int
    claims_calendar_country: str
    collection_ladder: str


class BuyerFacts(Peer):
    id: str
    country: str
    legal_form: str
    grade: int


class CoverageFacts(Peer):
    """A coverage check's answer, as claims reads it for each invoice."""

    covered: bool
    limit_in_force: MoneyModel | None
    limit_source: str | None
    reasons: list[str]
    conditions: list[dict[str, Any]]
