"""Underwriting views: rows of the books (and the rules' answers) as the API's read models. Pure:
no session, no clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from services.underwriting import rules
from services.underwriting.models import (
    Buyer,
    BuyerGrade,
    BuyerSignal,
    CreditLimit,
    IndicatorDeclaration,
    LimitAmount,
    LimitRequest,
    Policy,
    PolicyAssignment,
    PolicyRow,
    Sanction,
)
from services.underwriting.schemas import (
    AgeingBucket,
    AssignmentRead,
    BuyerRead,
    BuyerSignalRead,
    ConcentrationRead,
    DecisionReason,
    ExposureRead,
    GradeEntryRead,
    GradeFactorRead,
    HistoryRead,
    IndicatorDeclarationRead,
    IndicatorsIn,
    LimitChangeRead,
    LimitRead,
    LimitRequestRead,
    PolicyRead,
    PortfolioHealthRead,
    PremiumRead,
    ReasonRead,
    SanctionRead,
    ScheduledAmountRead,
    SupersededEntryRead,
    WarningRead,
)
from shared.auth import Caller
from shared.contracts import MoneyModel, money_json, plain_decimal, rounded_money_json
from shared.money import Money
from shared.usecase import money_read


def money_or_none(amount: Decimal | None, currency: str) -> MoneyModel | None:
    return None if amount is None else money_read(amount, currency)


def same_named(row: object, names: Sequence[str]) -> dict[str, Any]:
    """The attributes of a row that a read model carries as they are kept, under their names."""
    return {name: getattr(row, name) for name in names}


def policy_answer(policy: Policy | PolicyRow, banks: list[str]) -> dict[str, Any]:
    """A policy as `PolicyRead` shows it, as plain JSON data (`shared.contracts.json_data`)."""
    c = policy.currency

    def money(amount: Decimal | None) -> dict[str, str] | None:
        return None if amount is None else money_json(Money(amount, c))

    zero = money_json(Money.zero(c))
    return {
        "id": policy.id, "created_at": policy.created_at,
        "policyholder_id": policy.policyholder_id, "currency": c,
        "start_date": policy.start_date, "end_date": policy.end_date,
        "cover_type": policy.cover_type, "max_liability": money(policy.max_liability) or zero,
        "premium_rate_pct": plain_decimal(policy.premium_rate_pct),
        "indemnity_pct": plain_decimal(policy.indemnity_pct),
        "political_risk_cover": policy.political_risk_cover,
        "political_indemnity_pct": plain_decimal(policy.political_indemnity_pct),
        "covered_countries": policy.covered_countries,
        "max_credit_period_days": policy.max_credit_period_days,
        "deductible": money(policy.deductible) or zero,
        "claim_threshold": money(policy.claim_threshold) or zero,
        "discretionary_limit": money(policy.discretionary_limit) or zero,
        "single_buyer_cap": money(policy.single_buyer_cap),
        "claim_filing_days": policy.claim_filing_days,
        "documents_grace_days": policy.documents_grace_days,
        "overdue_notification_days": policy.overdue_notification_days,
        "max_extension_days": policy.max_extension_days,
        "protracted_default_wait_days": policy.protracted_default_wait_days,
        "reduction_notice_days": policy.reduction_notice_days,
        "claims_calendar_country": policy.claims_calendar_country,
        "collection_ladder": policy.collection_ladder, "assigned_bank_ids": banks,
    }  # fmt: skip


def policy_read(policy: Policy | PolicyRow, banks: list[str]) -> PolicyRead:
    return PolicyRead.model_validate(policy_answer(policy, banks))


def assignment_read(a: PolicyAssignment) -> AssignmentRead:
    return AssignmentRead(
        id=a.id, created_at=a.created_at, policy_id=a.policy_id, bank_id=a.bank_id
    )


def factors_json(grade: rules.Grade) -> list[dict[str, Any]]:
    """A grade's factors as they are kept with the buyer and in its grade history."""
    return [
        {"factor": f.factor, "value": f.value, "points": str(f.points), "note": f.note}
        for f in grade.factors
    ]


def buyer_read(
    buyer: Buyer, caller: Caller, declarations: Sequence[IndicatorDeclaration] = ()
) -> BuyerRead:
    """A buyer with its grade; staff also see the factors and the indicators behind it, and every
    pending declaration with its declarer; a policyholder only its own declaration
    (`declarations`: those the caller may see, `declarations_seen`)."""
    staff = caller.is_staff
    seen = declarations_seen(declarations, caller)
    pending = [d for d in seen if d.status == "pending"]
    return BuyerRead(
        id=buyer.id,
        created_at=buyer.created_at,
        name=buyer.name,
        country=buyer.country,
        registration_number=buyer.registration_number,
        legal_form=buyer.legal_form,
        grade=buyer.grade,
        insolvent_since=buyer.insolvent_since,
        grade_factors=[GradeFactorRead(**f) for f in buyer.grade_factors] if staff else None,
        indicators=IndicatorsIn(**buyer.indicators) if staff and buyer.indicators else None,
        declared_indicators=IndicatorsIn(**pending[0].indicators) if len(pending) == 1 else None,
        declarations=[declaration_read(d, caller) for d in seen],
        indicators_confirmed=not pending,
    )


def declarations_seen(
    declarations: Sequence[IndicatorDeclaration], caller: Caller
) -> list[IndicatorDeclaration]:
    """What a caller sees of a buyer's declarations: staff, the pending ones; a policyholder, its
    own only (whatever became of it); anyone else, none."""
    if caller.is_staff:
        return [d for d in declarations if d.status == "pending"]
    if caller.role == "policyholder" and caller.party_id:
        return [d for d in declarations if d.policyholder_id == caller.party_id]
    return []


def declaration_read(declaration: IndicatorDeclaration, caller: Caller) -> IndicatorDeclarationRead:
    return IndicatorDeclarationRead(
        policyholder_id=declaration.policyholder_id,
        indicators=IndicatorsIn(**declaration.indicators),
        status=declaration.status,
        declared_by=declaration.declared_by, declared_at=declaration.declared_at,
        decided_by=declaration.decided_by if caller.is_staff else None,
        decided_at=declaration.decided_at,
    )  # fmt: skip


def grade_entry_read(entry: BuyerGrade, caller: Caller) -> GradeEntryRead:
    """An entry of a buyer's grade history; as with the buyer, only staff see its factors."""
    staff = caller.is_staff
    return GradeEntryRead(
        id=entry.id, created_at=entry.created_at, buyer_id=entry.buyer_id,
        graded_on=entry.graded_on, grade=entry.grade, cause=entry.cause,
        country_risk_level=entry.country_risk_level,
        factors=[GradeFactorRead(**f) for f in entry.factors] if staff else None,
        recorded_by=entry.created_by if staff else None,
    )  # fmt: skip


def signal_entry_read(signal: BuyerSignal, caller: Caller) -> BuyerSignalRead:
    return BuyerSignalRead(
        id=signal.id, created_at=signal.created_at, buyer_id=signal.buyer_id, kind=signal.kind,
        observed_on=signal.observed_on, policy_id=signal.policy_id, details=signal.details,
        creditor_id=signal.creditor_id if caller.is_staff else None,
        case_id=signal.case_id if caller.is_staff else None,
        points=signal.points, grade_before=signal.grade_before, grade=signal.grade_after,
        weighed=signal.weighed, unweighed_reason=unweighed_reason_read(signal.weighed),
        recorded_by=signal.created_by if caller.is_staff else None,
    )  # fmt: skip


def unweighed_reason_read(weighed: bool) -> ReasonRead | None:
    """Why a signal does not weigh on its buyer's grade (`rules.unweighed_reason`)."""
    reason = rules.unweighed_reason(weighed)
    return None if reason is None else ReasonRead(code=reason[0], message=reason[1])


def sanction_read(s: Sanction) -> SanctionRead:
    return SanctionRead(
        id=s.id, created_at=s.created_at, country=s.country, buyer_id=s.buyer_id, reason=s.reason
    )


def request_read(r: LimitRequest, currency: str) -> LimitRequestRead:
    reasons = [DecisionReason(**x) for x in r.reasons]
    return LimitRequestRead(
        id=r.id,
        created_at=r.created_at,
        policy_id=r.policy_id,
        buyer_id=r.buyer_id,
        status=rules.LimitRequestStatus(r.status),
        requested_amount=money_read(r.requested_amount, currency),
        decided_amount=money_or_none(r.decided_amount, currency),
        payment_terms_days=r.payment_terms_days,
        grade=r.grade,
        reasons=reasons,
        message=" ".join(x.message.rstrip(".") + "." for x in reasons),
        limit_id=r.limit_id,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
    )


def limit_acts(recorded: Sequence[LimitAmount]) -> list[rules.LimitAct]:
    """A limit's entries, superseded ones included, in the order recorded, as
    `rules.standing_reduction` reads them."""
    return [rules.LimitAct(e.amount, e.effective_from, e.source, e.decided_by == rules.ENGINE)
            for e in sorted(recorded, key=lambda e: (e.created_at, e.id))]  # fmt: skip


def history_entries(history: Sequence[LimitAmount]) -> list[rules.HistoryEntry]:
    """A limit's history as the rules read it, newest first."""
    return [
        rules.HistoryEntry(
            e.amount,
            e.effective_from,
            e.effective_to,
            e.payment_terms_days,
            recorded_elsewhere=e.source == rules.RECORDED_SOURCE,
        )
        for e in sorted(history, key=lambda e: e.effective_from, reverse=True)
    ]


# What an entry of a limit's history carries as it is kept.
_HISTORY_AS_KEPT = (
    "id", "payment_terms_days", "effective_from", "effective_to", "reason", "source", "decided_by",
)  # fmt: skip


def limit_read(
    limit: CreditLimit, kept: list[LimitAmount], currency: str, today: dt.date
) -> LimitRead:
    """A limit with its history in force and, apart, the entries later ones replaced (`kept`:
    every entry, superseded ones included, oldest first)."""
    history = [e for e in kept if e.superseded_at is None]
    entries = history_entries(history)
    return LimitRead(
        id=limit.id,
        created_at=limit.created_at,
        policy_id=limit.policy_id,
        buyer_id=limit.buyer_id,
        payment_terms_days=rules.terms_on(entries, today),
        amount_in_force=money_or_none(rules.amount_in_force(entries, today), currency),
        history=[HistoryRead(**_entry_as_kept(e, currency)) for e in history],
        superseded=[
            SupersededEntryRead(**_entry_as_kept(e, currency), superseded_at=e.superseded_at)
            for e in kept
            if e.superseded_at is not None
        ],
    )


def _entry_as_kept(entry: LimitAmount, currency: str) -> dict[str, Any]:
    return {**same_named(entry, _HISTORY_AS_KEPT), "amount": money_read(entry.amount, currency),
            "recorded_at": entry.created_at}  # fmt: skip


def scheduled_amount_read(entry: LimitAmount, currency: str) -> ScheduledAmountRead:
    return ScheduledAmountRead(
        amount=MoneyModel.of(Money(entry.amount, currency)),
        effective_from=entry.effective_from, payment_terms_days=entry.payment_terms_days,
    )  # fmt: skip


def limit_change_read(
    entry: LimitAmount, limit: CreditLimit, old: Decimal | None, new_amount: Money,
    effective_from: dt.date, reason: str,
) -> LimitChangeRead:  # fmt: skip
    """A change as its answer shows it: the history `entry` it put in force (its id and when it
    was recorded), from `old` to `new_amount`."""
    return LimitChangeRead(
        id=entry.id,
        created_at=entry.created_at,
        limit_id=limit.id,
        policy_id=limit.policy_id,
        buyer_id=limit.buyer_id,
        old_amount=money_or_none(old, new_amount.currency),
        new_amount=MoneyModel.of(new_amount),
        effective_from=effective_from,
        reason=reason,
    )


def exposure_read(
    buyer_id: str, limit_id: str | None, limit: rules.LimitThatCounts, used: Decimal,
    currency: str,
) -> ExposureRead:  # fmt: skip
    """A buyer's exposure under the limit that counts today (none: zero, no headroom)."""
    in_force = limit.amount or Decimal(0)
    return ExposureRead(
        buyer_id=buyer_id, limit_id=limit_id, limit_in_force=money_read(in_force, currency),
        limit_source=limit.source, exposure=money_read(used, currency),
        headroom=money_read(max(Decimal(0), in_force - used), currency),
    )  # fmt: skip


def premium_read(
    policy: Policy, start: dt.date, end: dt.date, turnover: rules.InsurableTurnover
) -> PremiumRead:
    insured = Money(turnover.amount, policy.currency)
    return PremiumRead(
        policy_id=policy.id, period_from=start, period_to=end,
        insured_turnover=MoneyModel.of(insured), premium_rate_pct=policy.premium_rate_pct,
        premium=MoneyModel.of(rules.premium(insured, policy.premium_rate_pct)),
        invoices_counted=turnover.invoices_counted, invoices_excluded=turnover.invoices_excluded,
    )  # fmt: skip


def portfolio_health_read(
    policy: Policy, today: dt.date, health: rules.PortfolioHealth
) -> PortfolioHealthRead:
    c = policy.currency
    return PortfolioHealthRead(
        policy_id=policy.id, as_of=today, outstanding=money_read(health.outstanding, c),
        dso_days=health.dso_days, dso_prior_year_days=health.dso_prior_year_days,
        dso_change=health.dso_change, overdue_ratio=health.overdue_ratio,
        ageing=[AgeingBucket(bucket=name, amount=money_read(a, c)) for name, a in health.ageing],
        concentration=[ConcentrationRead(buyer_id=b, outstanding=money_read(a, c), share=s)
                       for b, a, s in health.concentration],
        top_buyers_share=health.top_buyers_share,
        warnings=[WarningRead(code=w.code, figure=w.figure, threshold=w.threshold,
                              message=w.message, buyer_id=w.buyer_id) for w in health.warnings],
    )  # fmt: skip


def coverage_json(policy_id: str, buyer_id: str, a: rules.CoverageAnswer) -> dict[str, Any]:
    """The answer as it goes on the wire (the shape of `CoverageRead`), built as plain data: a
    batch builds 10,000 of these per request, and model instances would cost most of its time.
    Its amounts are rounded once already, by `rules.assess_coverage`."""
    return {
        "policy_id": policy_id, "buyer_id": buyer_id, "covered": a.covered,
        "fully_covered": a.fully_covered, "covered_amount": rounded_money_json(a.covered_amount),
        "insured_amount": rounded_money_json(a.insured_amount),
        "indemnity_pct": plain_decimal(a.indemnity_pct),
        "limit_in_force": None if a.limit_in_force is None else rounded_money_json(a.limit_in_force),
        "limit_source": a.limit_source, "exposure": rounded_money_json(a.exposure),
        "reasons": list(a.reasons),
        "conditions": _conditions_json(a.conditions),
    }  # fmt: skip


# The conditions as they go on the wire, built once for each outcome (at most one per set of
# conditions held: a few dozen), shared by the answers that have it (they are only serialised).
_CONDITIONS_JSON: dict[tuple[rules.Condition, ...], tuple[dict[str, Any], ...]] = {}


def _conditions_json(conditions: tuple[rules.Condition, ...]) -> tuple[dict[str, Any], ...]:
    found = _CONDITIONS_JSON.get(conditions)
    if found is None:
        found = tuple({"condition": c.name, "held": c.held} for c in conditions)
        _CONDITIONS_JSON[conditions] = found
    return found
