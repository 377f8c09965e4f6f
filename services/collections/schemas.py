"""Collections request and response models (api.md, Collections)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, model_validator

from services.collections.rules import LADDERS
from shared.contracts import (
    CountryCode,
    Date,
    ExactPercent,
    Ident,
    LongText,
    MoneyModel,
    Percent,
    Schema,
)

LadderName = Literal["reminder_15_30_45", "legal_30_60_90"]
ActivityKind = Literal[
    "letter", "call", "promise_to_pay", "dispute", "dispute_resolved", "legal_filing", "note",
]  # fmt: skip
assert set(LadderName.__args__) == set(LADDERS)  # type: ignore[attr-defined]


class CaseInvoiceIn(Schema):
    number: Annotated[str, Field(min_length=1, max_length=100)]
    amount: MoneyModel
    due_date: Date


class CaseCreate(Schema):
    creditor_id: Ident
    buyer_id: Ident
    debtor_country: CountryCode
    invoices: Annotated[list[CaseInvoiceIn], Field(min_length=1, max_length=1000)]
    ladder: LadderName = "reminder_15_30_45"
    claim_id: Ident | None = None
    # The insurer's share of recoveries: `indemnity_paid` / the invoices' total, exactly; or a
    # percentage with any number of decimals.
    indemnity_paid: MoneyModel | None = None
    insurer_share_pct: ExactPercent | None = None
    currency: str | None = None  # informative: the invoices' currency rules

    @model_validator(mode="after")
    def _checks(self) -> CaseCreate:
        if len({i.number for i in self.invoices}) != len(self.invoices):
            raise ValueError("invoice numbers must be unique within a case")
        if self.indemnity_paid is not None and self.insurer_share_pct is not None:
            raise ValueError("give indemnity_paid or insurer_share_pct, not both")
        if (self.insurer_share_pct is not None or self.indemnity_paid is not None) and (
            self.claim_id is None
        ):
            raise ValueError(
                "indemnity_paid and insurer_share_pct are only for a case opened by a paid claim"
            )
        return self


class CaseInvoiceRead(Schema):
    number: str
    amount: MoneyModel
    due_date: dt.date
    paid: MoneyModel
    outstanding: MoneyModel


class ActivityCreate(Schema):
    kind: ActivityKind
    occurred_on: Date
    note: LongText | None = None
    promised_amount: MoneyModel | None = None
    promised_on: Date | None = None

    @model_validator(mode="after")
    def _promise(self) -> ActivityCreate:
        if self.kind == "promise_to_pay" and (self.promised_amount is None
                                              or self.promised_on is None):  # fmt: skip
            raise ValueError("a promise to pay needs promised_amount and promised_on")
        return self


class ActivityRead(Schema):
    id: str
    created_at: dt.datetime
    case_id: str
    kind: str
    occurred_on: dt.date
    note: str | None
    promised_amount: MoneyModel | None
    promised_on: dt.date | None
    recorded_by: str
    case_status: str


class PaymentCreate(Schema):
    amount: MoneyModel
    received_on: Date


class AllocationRead(Schema):
    fee: MoneyModel
    insurer: MoneyModel
    policyholder: MoneyModel


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
    case_status: str


class CaseRead(Schema):
    id: str
    created_at: dt.datetime
    creditor_id: str
    buyer_id: str
    debtor_country: str
    currency: str
    ladder: str
    stage: str
    status: str
    claim_id: str | None
    insurer_share_pct: Percent | None
    fee_pct: Percent
    opened_on: dt.date
    closed_on: dt.date | None
    days_past_due: int
    outstanding: MoneyModel
    recovered: MoneyModel
    invoices: list[CaseInvoiceRead]
    activities: list[ActivityRead]
    payments: list[PaymentRead]


class CaseList(Schema):
    items: list[CaseRead]
    next_cursor: str | None


class EscalationRun(Schema):
    as_of: Date


class CaseMove(Schema):
    case_id: str
    from_stage: str
    to_stage: str
    days_past_due: int


class EscalationResult(Schema):
    as_of: dt.date
    moved: list[CaseMove]
