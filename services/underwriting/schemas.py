"""Underwriting request and response models (api.md, Underwriting)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from services.underwriting.rules.coverage import COVERAGE_REASONS
from services.underwriting.rules.credit_limit import DECISION_REASON_CODES, UnderwriterAct
from services.underwriting.rules.credit_limit import LimitRequestStatus as LimitRequestStatus
from services.underwriting.rules.policy import registration_key
from shared.contracts import (
    DEFAULT_LADDER,
    BuyerSignal,
    Count,
    CountryCode,
    CoverageCheck,
    CurrencyCode,
    Date,
    ExactDecimal,
    Flag,
    Ident,
    InvoiceNumber,
    LadderField,
    LongText,
    MoneyModel,
    NameText,
    NonNegativeMoney,
    Percent,
    PositiveMoney,
    Schema,
    SignalKindField,
    component_ref,
    named_enum,
    percent_input,
    percent_schema,
    single_line,
)

Days = Annotated[int, Strict(), Field(ge=0, le=3650)]
# Payment terms and a maximum credit period: a period of 0 days covers no sale on credit.
CreditDays = Annotated[int, Strict(), Field(ge=1, le=3650)]
NOT_BLANK = r"\S"  # at least one character that is not white space
REGISTRATION_NUMBER_LENGTH = 100
# A list read by ids (`?id=a&id=b`): at most this many in one request (each id up to 64
# characters, so the address stays well within what a server reads of a request line).
IDS_PER_LIST = 100
IdQuery = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                           pattern=r"^[A-Za-z0-9_.:-]+$")]  # fmt: skip


def _registration_number(value: str) -> str:
    """A registration number is kept as written (without surrounding blanks) and known by its key,
    which must name something and fit its column."""
    key = registration_key(value)
    if not key:
        raise ValueError("a registration number needs at least one visible character")
    if len(key) > REGISTRATION_NUMBER_LENGTH:
        raise ValueError(
            f"a registration number has at most {REGISTRATION_NUMBER_LENGTH} characters"
        )
    return value


# A buyer's registration number as written, without surrounding blanks (" R1" is "R1"); the
# buyer is known by its `registration_key` ("hrb 1" is "HRB 1").
RegistrationNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=REGISTRATION_NUMBER_LENGTH,
        pattern=NOT_BLANK,
    ),
    AfterValidator(_registration_number),
    AfterValidator(single_line),
]
RegistrationNumberQuery = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
# Why a person decided, changed, recorded or sanctioned: it must say something (not only blanks).
Reason = Annotated[LongText, Field(min_length=1, pattern=NOT_BLANK)]
POLICY_PERCENT_PLACES = 6  # a policy's Exact(12, 6) columns
# Published with its own pattern (at most 6 decimals), which a string must match as written.
PolicyPercent = Annotated[
    Percent,
    BeforeValidator(percent_input(POLICY_PERCENT_PLACES)),
    WithJsonSchema(percent_schema(POLICY_PERCENT_PLACES)),
]
CoverType = Annotated[
    Literal["whole_turnover", "named_buyers"],
    named_enum("CoverType", ("whole_turnover", "named_buyers")),
]
LegalForm = Annotated[
    Literal["company", "public_entity", "individual"],
    named_enum("LegalForm", ("company", "public_entity", "individual")),
]
LimitSource = Annotated[str, named_enum("LimitSource", ("credit_limit", "discretionary"))]
# Why an entry of a buyer's grade history was recorded.
GRADE_CAUSES = ("registration", "indicators", "signal", "country_risk")
GradeEntryCause = Annotated[str, named_enum("GradeEntryCause", GRADE_CAUSES)]
CoverageReason = Annotated[str, named_enum("CoverageReason", COVERAGE_REASONS)]


class PolicyCreate(Schema):
    policyholder_id: Ident
    currency: CurrencyCode
    start_date: Date
    end_date: Date
    cover_type: CoverType
    max_liability: PositiveMoney
    premium_rate_pct: PolicyPercent
    indemnity_pct: PolicyPercent = Decimal(90)
    political_risk_cover: Flag = False
    political_indemnity_pct: PolicyPercent = Decimal(90)
    covered_countries: list[CountryCode] | None = Field(None, max_length=300)
    max_credit_period_days: CreditDays = 180
    deductible: NonNegativeMoney | None = None
    claim_threshold: NonNegativeMoney | None = None
    discretionary_limit: NonNegativeMoney | None = None
    single_buyer_cap: PositiveMoney | None = None
    claim_filing_days: Days = 30
    documents_grace_days: Days = 30
    overdue_notification_days: Days = 60
    max_extension_days: Days = 60
    protracted_default_wait_days: Days = 180
    reduction_notice_days: Days = 30
    claims_calendar_country: CountryCode = "CN"
    collection_ladder: LadderField = DEFAULT_LADDER

    @model_validator(mode="after")
    def _dates(self) -> PolicyCreate:
        if self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


class PolicyRead(Schema):
    id: str
    created_at: dt.datetime
    policyholder_id: str
    currency: CurrencyCode
    start_date: dt.date
    end_date: dt.date
    cover_type: CoverType
    max_liability: MoneyModel
    premium_rate_pct: Percent
    indemnity_pct: Percent
    political_risk_cover: bool
    political_indemnity_pct: Percent
    covered_countries: list[str] | None
    max_credit_period_days: int
    deductible: MoneyModel
    claim_threshold: MoneyModel
    discretionary_limit: MoneyModel
    single_buyer_cap: MoneyModel | None
    claim_filing_days: int
    documents_grace_days: int
    overdue_notification_days: int
    max_extension_days: int
    protracted_default_wait_days: int
    reduction_notice_days: int
    claims_calendar_country: CountryCode
    collection_ladder: LadderField
    assigned_bank_ids: list[str]


class AssignmentCreate(Schema):
    bank_id: Ident


class AssignmentRead(Schema):
    id: str
    created_at: dt.datetime
    policy_id: str
    bank_id: str


class IndicatorsIn(Schema):
    annual_revenue: NonNegativeMoney | None = None  # equity may be negative, revenue not
    equity: MoneyModel | None = None
    current_ratio: Annotated[ExactDecimal, Field(ge=0)] | None = None
    dso_days: Annotated[ExactDecimal, Field(ge=0)] | None = None
    dso_prior_year_days: Annotated[ExactDecimal, Field(ge=0)] | None = None
    overdue_ratio: Annotated[ExactDecimal, Field(ge=0, le=1)] | None = None
    litigation_count: Count | None = None
    management_changes_12m: Count | None = None


DeclarationStatus = Annotated[
    Literal["pending", "confirmed", "superseded"],
    named_enum("DeclarationStatus", ("pending", "confirmed", "superseded")),
]


class IndicatorDeclarationRead(Schema):
    """Indicators one policyholder declared on a buyer, with who declared them and when."""

    policyholder_id: str | None = Field(
        description="the declaring policyholder; null: declared before declarations were kept "
        "per policyholder, by a party not known"
    )
    indicators: IndicatorsIn
    status: DeclarationStatus = Field(
        description="`pending` until an underwriter confirms it (`confirmed`: it now moves the "
        "grade) or gives figures of their own for any indicator it declares (`superseded`: "
        "confirmed later, it would put an older figure back; figures for none of them leave it "
        "pending, as declared)"
    )
    declared_by: str = Field(description="the token subject that declared it")
    declared_at: dt.datetime
    decided_by: str | None = Field(None, description="staff only: who confirmed or superseded it")
    decided_at: dt.datetime | None = None


class IndicatorsConfirm(Schema):
    """Which declaration an underwriter confirms: `policyholder_id` names its declarer (null: the
    unattributed one); omitted, the buyer's only pending declaration."""

    policyholder_id: str | None = Field(None, max_length=64)


class BuyerCreate(Schema):
    name: NameText
    country: CountryCode
    registration_number: RegistrationNumber
    legal_form: LegalForm = "company"
    indicators: IndicatorsIn | None = None


class GradeFactorRead(Schema):
    factor: str
    value: str | None
    points: ExactDecimal
    note: str


class BuyerRead(Schema):
    id: str
    created_at: dt.datetime
    name: str
    country: CountryCode
    registration_number: str
    legal_form: LegalForm
    grade: int
    insolvent_since: dt.date | None = None
    grade_factors: list[GradeFactorRead] | None = None
    indicators: IndicatorsIn | None = None
    declared_indicators: IndicatorsIn | None = Field(
        None,
        description="a policyholder: what it declared, while pending; staff: the pending "
        "declaration when there is exactly one (each is in `declarations`)",
    )
    declarations: list[IndicatorDeclarationRead] | None = Field(
        None,
        description="staff: every pending declaration, each with its declarer; a "
        "policyholder: its own declaration (whatever became of it), never another's",
    )
    indicators_confirmed: bool = Field(
        description="staff: no declaration is pending; a policyholder: its own is not pending"
    )


class BuyerStandingRead(Schema):
    """What the other services read of a buyer before they act on it (its grade today)."""

    id: str
    country: CountryCode
    legal_form: LegalForm
    grade: int


class PolicyAndBuyerRead(Schema):
    """A policy with a buyer's standing, read at once (`buyer` null: no such buyer)."""

    policy: PolicyRead
    buyer: BuyerStandingRead | None


class BuyerList(Schema):
    items: list[BuyerRead]
    next_cursor: str | None


class GradeEntryRead(Schema):
    """An entry of a buyer's grade history: the grade in force from `graded_on` (until the next
    entry's date), why it was recorded, and (staff only) the factors behind it."""

    id: str
    created_at: dt.datetime
    buyer_id: str
    graded_on: dt.date
    grade: int
    cause: GradeEntryCause
    country_risk_level: int | None
    factors: list[GradeFactorRead] | None = None
    recorded_by: str | None = Field(None, description="staff only: who recorded it")


class GradeHistoryList(Schema):
    items: list[GradeEntryRead]
    next_cursor: str | None


class ReasonRead(Schema):
    code: str
    message: str


# A limit request's reason codes (the engine's and an underwriter's), published by name.
DecisionReasonCode = Annotated[str, named_enum("DecisionReasonCode", DECISION_REASON_CODES)]


class DecisionReason(Schema):
    """Why a limit request was decided or referred: a code (`DecisionReasonCode`) and the
    engine's or the underwriter's sentence."""

    code: DecisionReasonCode
    message: str


class _SignalFields(Schema):
    """A signal recorded on a buyer, with the points it added and the grade before and after."""

    id: str
    created_at: dt.datetime
    buyer_id: str
    kind: SignalKindField
    observed_on: dt.date
    policy_id: str | None
    details: str
    creditor_id: str | None = Field(
        None, description="staff only: from collections, the creditor whose debt the case collects"
    )
    case_id: str | None = Field(
        None, description="staff only: from collections, the collection case it is about"
    )
    points: ExactDecimal = Field(
        description="the points it added to the grade of the day it was observed, as it was "
        "recorded: its kind's weight, or 0 for a delay reported again while it lasts (a delay "
        "counts once per policy until its arrears are cleared: an overdue notified, a protracted "
        "default, a payment delay under the policy; and once per creditor until its collection "
        "cases on the buyer are paid: a payment delay or a legal step from collections)",
    )
    grade_before: int
    grade: int
    weighed: bool = Field(
        True,
        description="whether it weighs on the buyer's grade: false for a signal a creditor "
        "reported through collections (a mandate's payment delay, a legal step, paid in full) "
        "while holding no credit limit on the buyer under its own policies (a limit request "
        "alone is none); it is kept, with 0 points, and changes no grade and no limit",
    )
    unweighed_reason: ReasonRead | None = Field(
        None, description="why it does not weigh (`creditor_without_stake`); null when it does"
    )


class BuyerSignalRead(_SignalFields):
    """A signal recorded on a buyer, with the points it added and the grade before and after."""

    recorded_by: str | None = Field(None, description="staff only: who recorded it")


class BuyerSignalList(Schema):
    items: list[BuyerSignalRead]
    next_cursor: str | None


class IndicatorsUpdate(Schema):
    indicators: IndicatorsIn


class SignalCreate(BuyerSignal):
    """A signal about a buyer (the model claims sends, `shared.contracts.BuyerSignal`)."""


class ScheduledAmountRead(Schema):
    """An amount of a limit's history that was to start on a later date."""

    amount: MoneyModel
    effective_from: dt.date
    payment_terms_days: int | None


CANCELLED_AMOUNTS = (
    "the amounts scheduled to start after this change's date (a reduction, a halving after a "
    "downgrade, an increase) that it replaces: they will not take effect"
)


class LimitChangeRead(Schema):
    id: str = Field(
        description="the entry of the limit's history this change put in force (for "
        "an unchanged one: the entry already in force)"
    )
    created_at: dt.datetime = Field(description="when that entry was recorded")
    limit_id: str
    policy_id: str
    buyer_id: str
    old_amount: MoneyModel | None
    new_amount: MoneyModel
    effective_from: dt.date
    reason: str
    cancelled: list[ScheduledAmountRead] = Field(
        default_factory=list, description=CANCELLED_AMOUNTS
    )
    unchanged: bool = Field(
        False,
        description="true when the amount, with its payment terms, was already in force from that "
        "date on with nothing after it: nothing was recorded and no one was told",
    )


class LimitNotHalvedRead(Schema):
    limit_id: str
    policy_id: str
    buyer_id: str
    reason: str = Field(description="why the downgrade left this limit as it is, as a code")
    message: str


class BuyerGradedRead(BuyerRead):
    """A buyer after its indicators changed: graded again when they were an underwriter's (or
    confirmed by one), and its limits following the new grade as after a signal's."""

    limit_changes: list[LimitChangeRead] = Field(
        default_factory=list,
        description="the limits the new grade changed (halved after the reduction notice period "
        "when the buyer newly reaches the halving grade), each a change of its own",
    )
    limits_not_halved: list[LimitNotHalvedRead] = Field(
        default_factory=list,
        description="the limits that downgrade left at their amount, each with why",
    )


class SignalRead(_SignalFields):
    limit_changes: list[LimitChangeRead]
    limits_not_halved: list[LimitNotHalvedRead] = Field(
        default_factory=list,
        description="the limits a downgrade to the halving grade left at their amount, each with "
        "why (`policy_ends_within_notice_period`: the policy ends before the halving's date, so "
        "the limit lapses with it)",
    )
    stop_shipment: bool | None = None


class LimitRequestCreate(Schema):
    buyer_id: Ident
    amount: PositiveMoney
    payment_terms_days: CreditDays
    related_to_policyholder: Flag = False


class LimitRequestRead(Schema):
    id: str
    created_at: dt.datetime
    policy_id: str
    buyer_id: str
    status: LimitRequestStatus
    requested_amount: MoneyModel
    decided_amount: MoneyModel | None
    payment_terms_days: int
    grade: int
    reasons: list[DecisionReason]
    message: str
    limit_id: str | None
    decided_by: str | None
    decided_at: dt.datetime | None


class LimitRequestList(Schema):
    items: list[LimitRequestRead]
    next_cursor: str | None


class DecisionCreate(Schema):
    decision: UnderwriterAct
    amount: MoneyModel | None = None
    reason: Reason


class ExternalLimitCreate(Schema):
    buyer_id: Ident
    amount: PositiveMoney
    effective_from: Date
    payment_terms_days: CreditDays | None = None
    reason: Reason = "limit granted outside the engine"


class LimitChangeCreate(Schema):
    new_amount: NonNegativeMoney
    effective_from: Date | None = None
    reason: Reason


class HistoryRead(Schema):
    id: str = Field(description="the entry's id (a limit change answers with it)")
    amount: MoneyModel
    # The payment terms this amount was granted for (null: the policy's maximum credit period).
    payment_terms_days: int | None = None
    effective_from: dt.date
    effective_to: dt.date | None
    reason: str
    source: str
    decided_by: str
    recorded_at: dt.datetime


class SupersededEntryRead(HistoryRead):
    superseded_at: dt.datetime = Field(
        description="when a later entry replaced this one from a date it had not yet started"
    )


class LimitRead(Schema):
    id: str
    created_at: dt.datetime
    policy_id: str
    buyer_id: str
    payment_terms_days: int | None
    amount_in_force: MoneyModel | None
    history: list[HistoryRead]
    superseded: list[SupersededEntryRead] = Field(
        description="entries later ones replaced before they started, kept for audit; never in "
        "force, and not part of `history`"
    )


class RecordedLimitRead(LimitRead):
    """A limit recorded from elsewhere, as it stands after the recording."""

    unchanged: bool = Field(
        description="true when the amount, with its payment terms, was already in force on "
        "`effective_from` with nothing after it: recording it again added no entry and told no one"
    )


class LimitList(Schema):
    items: list[LimitRead]
    next_cursor: str | None


class InvoiceDeclaration(Schema):
    number: InvoiceNumber
    buyer_id: Ident
    amount: PositiveMoney
    shipment_date: Date
    due_date: Date
    paid_amount: NonNegativeMoney | None = None
    paid_on: Date | None = None


class DeclarationCreate(Schema):
    # A month's invoices of a large exporter in one request (bench/book.py: 50,000).
    invoices: Annotated[list[InvoiceDeclaration], Field(min_length=1, max_length=50_000)]


class DeclarationRead(Schema):
    policy_id: str
    created: int
    updated: int


class PremiumRead(Schema):
    policy_id: str
    period_from: dt.date
    period_to: dt.date
    insured_turnover: MoneyModel
    premium_rate_pct: Percent
    premium: MoneyModel
    invoices_counted: int
    invoices_excluded: int


class CoverageCheckCreate(CoverageCheck):
    """One invoice to check (the model claims sends, `shared.contracts.CoverageCheck`)."""


class ConditionRead(Schema):
    condition: str
    held: bool


class CoverageRead(Schema):
    policy_id: str
    buyer_id: str
    covered: bool
    fully_covered: bool
    covered_amount: MoneyModel
    insured_amount: MoneyModel
    indemnity_pct: Percent
    limit_in_force: MoneyModel | None
    limit_source: LimitSource | None
    exposure: MoneyModel
    reasons: list[CoverageReason]
    conditions: list[ConditionRead]


class CoverageBatchCreate(Schema):
    # Each item is validated on its own, so that a malformed item is answered with its own error
    # and the others are still answered.
    items: Annotated[
        list[Any],
        Field(min_length=1, max_length=10_000,
              json_schema_extra={"items": {"$ref": "#/components/schemas/CoverageCheckCreate"}}),
    ]  # fmt: skip


class CoverageItemError(Schema):
    """A batch item answered with the problem the single check would have answered (its status
    too), each field it names located in the batch's body: `["body", "items", <index>, ...]`;
    a `validation` problem names each field in `errors`."""

    index: int
    error: Annotated[dict[str, Any], component_ref("ValidationProblem")]


class CoverageBatchRead(Schema):
    """The batch's answers, in the order of its items."""

    results: list[CoverageRead | CoverageItemError]


class ExposureRead(Schema):
    """A buyer of the policy's book: one with a credit limit granted, or receivables declared
    (covered by the discretionary limit, or not at all)."""

    buyer_id: str
    limit_id: str | None = Field(
        description="the credit limit granted on the buyer (`GET .../limits`); null: none"
    )
    limit_in_force: MoneyModel = Field(
        description="the limit a coverage check of a shipment today counts (`limit_source`), "
        "within the single-buyer cap; zero when none does"
    )
    limit_source: LimitSource | None = Field(
        description="as a coverage check of a shipment today answers it: `credit_limit`, "
        "`discretionary` (no decision of the insurer on the buyer, whole-turnover cover), or "
        "null: no limit covers the buyer today"
    )
    exposure: MoneyModel = Field(description="its declared receivables unpaid today")
    headroom: MoneyModel = Field(description="the limit in force less the exposure, at least zero")


class ExposureList(Schema):
    items: list[ExposureRead]
    next_cursor: str | None


class AgeingBucket(Schema):
    bucket: str
    amount: MoneyModel


class ConcentrationRead(Schema):
    buyer_id: str
    outstanding: MoneyModel
    share: ExactDecimal


class WarningRead(Schema):
    code: str
    figure: ExactDecimal
    threshold: ExactDecimal
    message: str
    buyer_id: str | None = None


class PortfolioHealthRead(Schema):
    policy_id: str
    as_of: dt.date
    outstanding: MoneyModel
    dso_days: ExactDecimal | None
    dso_prior_year_days: ExactDecimal | None
    dso_change: ExactDecimal | None
    overdue_ratio: ExactDecimal | None
    ageing: list[AgeingBucket]
    concentration: list[ConcentrationRead]
    top_buyers_share: ExactDecimal | None
    warnings: list[WarningRead]


class CountryRiskSet(Schema):
    level: Annotated[int, Strict(), Field(ge=1, le=4)]


class CountryRiskRead(Schema):
    country: CountryCode
    level: int
    listed: bool
    buyers_regraded: int = Field(
        0, description="buyers graded again (none when the level in force did not change)"
    )
    limits_changed: int = Field(
        0, description="limits halved because their buyer newly reached the halving grade"
    )
    regrading_since: dt.datetime | None = Field(
        None,
        description="when the re-grade of the country's buyers to this level began, while some "
        "are still to be graded (a run cut short is finished by the next setting of the country)",
    )


class SanctionCreate(Schema):
    """A country or a buyer (exactly one of the two) put under sanctions."""

    country: CountryCode | None = None
    buyer_id: Ident | None = None
    reason: Reason

    @model_validator(mode="after")
    def _one_target(self) -> SanctionCreate:
        if (self.country is None) == (self.buyer_id is None):
            raise ValueError("a sanction names either a country or a buyer_id")
        return self


class SanctionRead(Schema):
    id: str
    created_at: dt.datetime
    country: CountryCode | None
    buyer_id: str | None
    reason: str
    buyers_affected: int | None = Field(
        None, description="on creation: the buyers it names (one, or those of the country)"
    )
    limits_affected: int | None = Field(
        None, description="on creation: the limits those buyers hold, no longer covering"
    )


class SanctionList(Schema):
    items: list[SanctionRead]
    next_cursor: str | None
