"""Claims request and response models (api.md, Claims)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shared.contracts import (
    CountryCode,
    Date,
    Flag,
    Ident,
    InvoiceNumber,
    LongText,
    MoneyModel,
    NonNegativeMoney,
    PositiveMoney,
    Schema,
    SignalKindField,
    bounded_total,
    named_enum,
)

_Cause = Literal["insolvency", "protracted_default", "political"]
_DocumentKind = Literal[
    "trade_contract", "proof_of_delivery", "invoice", "ageing_report", "statement_of_account",
    "insolvency_proof", "collection_evidence",
]  # fmt: skip
_ClaimStatus = Literal[
    "documents_pending", "under_review", "on_hold", "assessed", "approved", "rejected", "paid",
    "lapsed",
]  # fmt: skip
_NotificationKind = Literal["overdue", "extension_request", "repayment_plan", "arrears_cleared"]
_Decision = Literal["approve", "reject"]
_DisputeOutcome = Literal["policyholder", "buyer"]
_SignalDelivery = Literal["delivered", "pending"]
# Each published once, as a named enum, for requests and answers alike.
Cause = Annotated[_Cause, named_enum("ClaimCause", _Cause)]
DocumentKind = Annotated[_DocumentKind, named_enum("DocumentKind", _DocumentKind)]
ClaimStatus = Annotated[_ClaimStatus, named_enum("ClaimStatus", _ClaimStatus)]
NotificationKind = Annotated[_NotificationKind, named_enum("NotificationKind", _NotificationKind)]
Decision = Annotated[_Decision, named_enum("ClaimDecision", _Decision)]
DisputeOutcome = Annotated[_DisputeOutcome, named_enum("DisputeOutcome", _DisputeOutcome)]
SignalDelivery = Annotated[_SignalDelivery, named_enum(
    "SignalDelivery", _SignalDelivery,
    "`delivered`: underwriting took the signal before this answer was sent (the buyer's grade "
    "and limits already follow it); `pending`: underwriting refused it or could not be reached "
    "in time, so the grade does not follow it yet: the signal is kept and sent again until "
    "underwriting takes it (a replay of the request's Idempotency-Key sends it first)")]  # fmt: skip


class InvoiceIn(Schema):
    number: InvoiceNumber
    amount: PositiveMoney
    shipment_date: Date
    due_date: Date

    @model_validator(mode="after")
    def _dates(self) -> InvoiceIn:
        if self.due_date < self.shipment_date:
            raise ValueError("due_date must not be before shipment_date")
        return self


class Instalment(Schema):
    due_date: Date
    amount: PositiveMoney


class NotificationCreate(Schema):
    policy_id: Ident
    buyer_id: Ident
    # `arrears_cleared` (an addition to api.md's kinds): the buyer has paid the arrears, so the
    # stop-shipment on this policy ends.
    kind: NotificationKind
    invoices: Annotated[list[InvoiceIn], Field(min_length=1, max_length=1000)]
    new_due_date: Date | None = None
    instalments: Annotated[list[Instalment], Field(max_length=120)] | None = None
    note: LongText | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> NotificationCreate:
        if self.kind == "extension_request":
            if self.new_due_date is None:
                raise ValueError("an extension request needs new_due_date")
            if len(self.invoices) != 1:
                raise ValueError("an extension request names exactly one invoice")
        if self.kind == "repayment_plan" and not self.instalments:
            raise ValueError("a repayment plan needs its instalments")
        if self.new_due_date is not None and self.kind != "extension_request":
            raise ValueError("new_due_date belongs to an extension request only")
        if self.instalments is not None and self.kind != "repayment_plan":
            raise ValueError("instalments belong to a repayment plan only")
        if len({i.number for i in self.invoices}) != len(self.invoices):
            raise ValueError("invoice numbers must be unique within a notification")
        return self


class NotifiedInvoiceRead(Schema):
    number: str
    amount: MoneyModel
    shipment_date: dt.date
    due_date: dt.date
    notification_deadline: dt.date
    late: bool


class NotificationRead(Schema):
    id: str
    created_at: dt.datetime
    policy_id: str
    buyer_id: str
    kind: NotificationKind
    notified_on: dt.date
    new_due_date: dt.date | None
    extension_accepted: bool | None
    instalments: list[Instalment] | None
    invoices: list[NotifiedInvoiceRead]
    stop_shipment_signalled: bool
    stop_shipment_cleared: bool


class ClaimCreate(Schema):
    policy_id: Ident
    buyer_id: Ident
    cause: Cause
    event_date: Date | None = None
    invoices: Annotated[list[InvoiceIn], Field(min_length=1, max_length=1000)]
    credit_notes: NonNegativeMoney | None = None
    set_offs: NonNegativeMoney | None = None
    recovered: NonNegativeMoney | None = None
    war_related: Flag = False
    nuclear_related: Flag = False

    @model_validator(mode="after")
    def _checks(self) -> ClaimCreate:
        if self.cause != "protracted_default" and self.event_date is None:
            article = "an" if self.cause[0] in "aeiou" else "a"
            raise ValueError(f"{article} {self.cause} claim needs event_date")
        if len({i.number for i in self.invoices}) != len(self.invoices):
            raise ValueError("invoice numbers must be unique within a claim")
        bounded_total((i.amount.amount for i in self.invoices), "the invoices")
        bounded_total((m.amount for m in (self.credit_notes, self.set_offs, self.recovered)
                       if m is not None), "credit notes, set-offs and recoveries")  # fmt: skip
        return self


class DocumentRead(Schema):
    id: str
    created_at: dt.datetime
    kind: DocumentKind
    filename: str
    content_type: str
    size: int
    sha256: str


class DocumentUploadRead(DocumentRead):
    """The stored document and where the claim stands now."""

    claim_id: str
    claim_status: ClaimStatus
    missing_documents: list[DocumentKind]
    decision_due: dt.date | None


class DisputeCreate(Schema):
    raised_on: Date
    description: Annotated[LongText, Field(min_length=1)]
    invoice_numbers: Annotated[list[InvoiceNumber], Field(min_length=1, max_length=1000)]


class DisputeResolve(Schema):
    outcome: DisputeOutcome
    resolved_on: Date | None = None
    note: LongText | None = None


class DisputeRead(Schema):
    id: str
    created_at: dt.datetime
    claim_id: str
    raised_on: dt.date
    raised_by: str = Field(description="who recorded the dispute (the caller's subject)")
    description: str
    invoice_numbers: list[str]
    outcome: DisputeOutcome | None
    resolved_on: dt.date | None
    resolved_by: str | None = Field(description="who settled it (the caller's subject)")
    note: str | None = Field(description="the reason given when it was settled")
    claim_status: ClaimStatus


class DecisionCreate(Schema):
    decision: Decision
    reason: Annotated[LongText, Field(min_length=1)]


class StepRead(Schema):
    step: int
    name: str
    amount: MoneyModel
    note: str


class InvoiceAssessmentRead(Schema):
    number: str
    amount: MoneyModel
    reduction: MoneyModel
    # Of the reduction, what the policyholder's collection cases recovered on the invoice before
    # the claim (read from collections when the claim is assessed and again when it is paid).
    recovered_in_collections: MoneyModel
    unpaid: MoneyModel
    covered_on_shipment_date: bool
    coverage_reasons: list[str]
    limit_in_force: MoneyModel
    exclusions: list[str]
    covered: MoneyModel


class AssessmentRead(Schema):
    assessed_on: dt.date
    invoices: list[InvoiceAssessmentRead]
    claim_exclusions: list[str]
    steps: list[StepRead]
    insured_loss: MoneyModel
    indemnity: MoneyModel


class ClaimInvoiceRead(Schema):
    number: str
    amount: MoneyModel
    shipment_date: dt.date
    due_date: dt.date


class BuyerSignalSent(Schema):
    """What an act on a claim told underwriting of the claim's buyer, and whether underwriting
    has it yet."""

    kind: SignalKindField
    observed_on: dt.date
    delivery: SignalDelivery


class ClaimRead(Schema):
    id: str
    created_at: dt.datetime
    policy_id: str
    buyer_id: str
    policyholder_id: str
    cause: Cause
    event_date: dt.date | None
    loss_date: dt.date
    filed_on: dt.date
    status: ClaimStatus
    filing_deadline: dt.date
    required_documents: list[DocumentKind]
    missing_documents: list[DocumentKind]
    documents: list[DocumentRead]
    documents_due: dt.date
    decision_due: dt.date | None
    invoices: list[ClaimInvoiceRead]
    reductions: MoneyModel
    disputes: list[DisputeRead]
    assessment: AssessmentRead | None
    indemnity: MoneyModel | None
    decision: Decision | None
    decision_reason: str | None
    decided_by: str | None
    paid_on: dt.date | None
    collection_case_id: str | None
    buyer_signal: BuyerSignalSent | None = Field(
        None,
        description="on the answer of an act that tells underwriting of the claim's buyer (and "
        "its replays): a protracted-default claim filed (`payment_delay`), an insolvency claim "
        "approved (`insolvency_filing`), a claim paid (`claim_paid`, `protracted_default`), with "
        "whether underwriting has it yet; null on a read and on an act that tells it nothing. "
        "The act stands either way",
    )


class ClaimList(Schema):
    items: list[ClaimRead]
    next_cursor: str | None


# ---------------------------------------------------------------- calendars

_CalendarSource = Literal["holidays", "staff"]
CalendarSource = Annotated[_CalendarSource, named_enum("CalendarSource", _CalendarSource)]


class CalendarDayWrite(Schema):
    """A correction of one day: working or not, and why."""

    working: Flag
    reason: Annotated[LongText, Field(min_length=1, max_length=500)]


class CalendarDayRead(Schema):
    """A day as the calendar has it in force: from the `holidays` package, or as staff set it."""

    country: CountryCode
    date: dt.date
    working: bool
    source: CalendarSource
    name: str | None = Field(None, description="the package's name of the day, if it has one")
    reason: str | None = None
    set_by: str | None = Field(None, description="who corrected the day: shown to staff only")
    set_at: dt.datetime | None = None


class CalendarDaysRead(Schema):
    """The holidays and weekend working days of a country's year in force, by date."""

    country: CountryCode
    year: int
    items: list[CalendarDayRead]
