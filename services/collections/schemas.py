"""Collections request and response models (api.md, Collections)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema, model_validator

from services.collections.rules import CaseStatus
from shared.contracts import (
    CaseInvoice,
    CaseOpening,
    CountryCode,
    CurrencyCode,
    Date,
    Ident,
    LadderField,
    LongText,
    MoneyModel,
    Percent,
    PositiveMoney,
    Schema,
    named_enum,
)

_ActivityKind = Literal[
    "letter", "call", "promise_to_pay", "dispute", "dispute_resolved", "legal_filing", "note",
]  # fmt: skip
ActivityKind = Annotated[_ActivityKind, named_enum("ActivityKind", _ActivityKind)]
# What an answer lists: a collector's activities and those the service records itself.
RecordedActivityKind = Annotated[
    str, named_enum("RecordedActivityKind", (*_ActivityKind.__args__, "escalation", "subrogation"))
]
CaseStatusName = Annotated[str, named_enum("CaseStatus", [s.value for s in CaseStatus])]
# What a list may be filtered on: one of those statuses, anything else is a 422.
CaseStatusFilter = Annotated[CaseStatus, named_enum("CaseStatus", [s.value for s in CaseStatus])]
# The stages of the seeded ladders (api.md), below the first rung `new`.
Stage = Annotated[
    str,
    named_enum("CaseStage", ("new", "reminder_letter", "phone_collection", "legal", "amicable",
                             "lawyer_letter", "lawsuit")),
]  # fmt: skip


class Rung(BaseModel):
    days_past_due: int
    stage: Stage


class Ladder(BaseModel):
    name: LadderField
    rungs: list[Rung]


class LadderList(BaseModel):
    items: list[Ladder]
    next_cursor: str | None = None


class CaseInvoiceIn(CaseInvoice):
    """An invoice of a case to open (`shared.contracts.CaseInvoice`)."""


class CaseCreate(CaseOpening):
    """A case to open (the model claims sends for a subrogation case,
    `shared.contracts.CaseOpening`)."""


class CaseInvoiceRead(Schema):
    number: str
    amount: MoneyModel
    due_date: dt.date
    paid: MoneyModel
    outstanding: MoneyModel


class ActivityCreate(Schema):
    kind: ActivityKind
    occurred_on: Date = Field(description="the day it was done: on or after the day the case "
                              "was opened, and not after today")  # fmt: skip
    note: LongText | None = None
    promised_amount: PositiveMoney | None = None
    promised_on: Date | None = Field(
        default=None,
        description="for a promise to pay: the day it falls due, on or after `occurred_on` and "
        "at most the promise horizon (TCI_COLLECTIONS_PROMISE_HORIZON_DAYS, default 365) after it",
    )
    dispute_id: Ident | None = Field(
        default=None,
        description="for `dispute_resolved`: the dispute it resolves (the id of the `dispute` "
        "activity that raised it); may be left out when the case has exactly one open dispute",
    )

    @model_validator(mode="after")
    def _promise(self) -> ActivityCreate:
        if self.kind == "promise_to_pay" and (self.promised_amount is None
                                              or self.promised_on is None):  # fmt: skip
            raise ValueError("a promise to pay needs promised_amount and promised_on")
        if self.kind != "promise_to_pay" and self.promised_amount is not None:
            raise ValueError("promised_amount belongs to a promise to pay only")
        if self.kind != "promise_to_pay" and self.promised_on is not None:
            raise ValueError("promised_on belongs to a promise to pay only")
        if self.kind != "dispute_resolved" and self.dispute_id is not None:
            raise ValueError("dispute_id belongs to a dispute's resolution only")
        return self


class ActivityRead(Schema):
    id: str
    created_at: dt.datetime
    case_id: str
    kind: RecordedActivityKind
    occurred_on: dt.date
    note: str | None
    promised_amount: MoneyModel | None
    promised_on: dt.date | None
    dispute_id: str | None = Field(
        description="for `dispute_resolved`: the dispute it resolved (null on one recorded "
        "before resolutions named their dispute)"
    )
    recorded_by: str
    case_status: CaseStatusName


class PaymentCreate(Schema):
    amount: PositiveMoney
    received_on: Date = Field(description="the day it came in: on or after the day the case was "
                              "opened, and not after today")  # fmt: skip


class AllocationRead(Schema):
    """What one recovery gives each party, the three adding up to it. A case shares its whole
    recovery so far as one amount: each recovery takes what the shares of the case's total after it
    (the fee rounded half-up once, then the insurer's exact part, rounded half-up once) exceed
    what the earlier recoveries were given, so a case's fee and parts are those of its whole
    recovery to the cent, and one recovery's may differ by a cent from its own rounding."""

    fee: MoneyModel
    insurer: MoneyModel
    policyholder: MoneyModel


# A decimal kept as given, any number of places (a percentage given as the share may have many).
_DecimalText = Annotated[str, WithJsonSchema({"type": "string", "format": "decimal"})]


class ShareFraction(Schema):
    """The insurer's share of recoveries, exactly: `numerator` / `denominator`."""

    numerator: _DecimalText = Field(description="the indemnity paid (or the percentage given)")
    denominator: _DecimalText = Field(
        description="the unpaid debt the indemnity was paid against (or 100)"
    )


class CreditRead(Schema):
    invoice_number: str
    amount: MoneyModel


class PaymentRead(Schema):
    id: str
    created_at: dt.datetime
    case_id: str
    amount: MoneyModel
    received_on: dt.date
    allocation: AllocationRead
    credited: list[CreditRead]
    outstanding_after: MoneyModel
    case_status: CaseStatusName


class CaseRead(Schema):
    id: str
    created_at: dt.datetime
    creditor_id: str
    buyer_id: str
    debtor_country: CountryCode
    currency: CurrencyCode
    ladder: LadderField
    stage: Stage
    status: CaseStatusName
    claim_id: str | None
    insurer_share_pct: Percent | None = Field(
        description="the insurer's share shown as a percentage, rounded to 4 places (none before a "
        "claim); recoveries are shared by `insurer_share` exactly"
    )
    insurer_share: ShareFraction | None = Field(
        description="the insurer's share as the exact fraction recoveries are shared by (none "
        "before a claim)"
    )
    fee_pct: Percent
    opened_on: dt.date
    closed_on: dt.date | None
    days_past_due: int
    outstanding: MoneyModel
    recovered: MoneyModel
    invoices: list[CaseInvoiceRead]
    open_disputes: list[str] = Field(
        description="the disputes raised on the case and not resolved yet (the ids of their "
        "`dispute` activities), oldest first: the case holds while one is open"
    )
    activities: list[ActivityRead]
    payments: list[PaymentRead]


class CaseList(Schema):
    items: list[CaseRead]
    next_cursor: str | None


class EscalationRun(Schema):
    as_of: Date = Field(description="today or a day gone by; a date after today is 422")


class CaseMove(Schema):
    case_id: str
    from_stage: Stage
    to_stage: Stage
    days_past_due: int


class EscalationResult(Schema):
    as_of: dt.date
    moved: list[CaseMove]
    held_elsewhere: int = Field(
        default=0,
        description="open cases another run (or a payment, a dispute…) was changing at that "
        "moment: left to it, and to the next run; not looked at by this one",
    )
