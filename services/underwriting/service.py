"""Underwriting use cases: they read through the repository, decide with the rules, and leave
the single commit to the request's command."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.underwriting import repository as repo
from services.underwriting import rules
from services.underwriting.config import UnderwritingSettings
from services.underwriting.models import (
    Buyer,
    BuyerGrade,
    BuyerSignal,
    CountryRisk,
    CreditLimit,
    LimitAmount,
    LimitRequest,
    Policy,
    PolicyAssignment,
    Sanction,
    StopShipment,
)
from services.underwriting.schemas import (
    AgeingBucket,
    AssignmentRead,
    BuyerCreate,
    BuyerRead,
    ConcentrationRead,
    CountryRiskRead,
    CoverageCheckCreate,
    DecisionCreate,
    DeclarationCreate,
    DeclarationRead,
    ExposureRead,
    ExternalLimitCreate,
    GradeFactorRead,
    HistoryRead,
    IndicatorsIn,
    InvoiceDeclaration,
    LimitChangeCreate,
    LimitChangeRead,
    LimitRead,
    LimitRequestCreate,
    LimitRequestRead,
    PolicyCreate,
    PolicyRead,
    PortfolioHealthRead,
    PremiumRead,
    ReasonRead,
    SanctionCreate,
    SanctionRead,
    SignalCreate,
    SignalRead,
    WarningRead,
)
from shared.auth import Caller, ensure_party
from shared.contracts import MoneyModel, money_json, plain_decimal
from shared.db import Reader, new_id, utcnow
from shared.money import Money
from shared.problems import Problem, conflict, invalid, not_found, unprocessable, validation_problem


@dataclass(frozen=True)
class Context:
    """Who is asking, when (today in the business time zone) and with which settings."""

    session: AsyncSession
    caller: Caller
    today: dt.date
    settings: UnderwritingSettings


def _money(amount: Decimal | None, currency: str) -> MoneyModel | None:
    return None if amount is None else MoneyModel.of(Money(amount, currency))


def _in_currency(value: MoneyModel, currency: str, field: str) -> Money:
    if value.currency != currency:
        raise unprocessable(
            "currency-mismatch",
            f"{field} is in {value.currency} but the policy is in {currency}",
            field=field,
            policy_currency=currency,
        )
    return value.to_money()


def _positive(money: Money, loc: list[str | int]) -> None:
    if not money.is_positive():
        raise invalid(loc, "must be greater than zero")


# ---------------------------------------------------------------- policies


async def create_policy(ctx: Context, data: PolicyCreate) -> PolicyRead:
    currency = data.currency
    amounts: dict[str, Decimal | None] = {}
    for name in ("max_liability", "deductible", "claim_threshold", "discretionary_limit",
                 "single_buyer_cap"):  # fmt: skip
        value: MoneyModel | None = getattr(data, name)
        if value is None:
            amounts[name] = None if name == "single_buyer_cap" else Decimal(0)
            continue
        money = _in_currency(value, currency, name)
        if money.amount < 0 or (name in ("max_liability", "single_buyer_cap") and
                                not money.is_positive()):  # fmt: skip
            raise invalid(["body", name, "amount"], "must be greater than zero"
                          if name in ("max_liability", "single_buyer_cap") else
                          "must not be negative")  # fmt: skip
        amounts[name] = money.amount
    if data.premium_rate_pct <= 0:
        raise invalid(["body", "premium_rate_pct"], "must be greater than zero")
    # One policy per policyholder, currency and period: the check and the insert are one step for
    # concurrent creations of the pair (the lock lasts until the commit).
    await repo.serialise_policies_of(ctx.session, data.policyholder_id, currency)
    existing = await repo.overlapping_policy(
        ctx.session, data.policyholder_id, currency, data.start_date, data.end_date
    )
    if existing is not None:
        raise conflict(
            "policy-overlap",
            f"policyholder {data.policyholder_id!r} already has a policy in {currency} whose "
            "dates overlap these",
            existing_policy_id=existing,
        )
    policy = Policy(
        id=new_id("pol"),
        policyholder_id=data.policyholder_id,
        currency=currency,
        start_date=data.start_date,
        end_date=data.end_date,
        cover_type=data.cover_type,
        premium_rate_pct=data.premium_rate_pct,
        indemnity_pct=data.indemnity_pct,
        political_risk_cover=data.political_risk_cover,
        political_indemnity_pct=data.political_indemnity_pct,
        covered_countries=sorted(set(data.covered_countries))
        if data.covered_countries is not None
        else None,
        max_credit_period_days=data.max_credit_period_days,
        claim_filing_days=data.claim_filing_days,
        documents_grace_days=data.documents_grace_days,
        overdue_notification_days=data.overdue_notification_days,
        max_extension_days=data.max_extension_days,
        protracted_default_wait_days=data.protracted_default_wait_days,
        reduction_notice_days=data.reduction_notice_days,
        claims_calendar_country=data.claims_calendar_country,
        collection_ladder=data.collection_ladder,
        created_by=ctx.caller.subject,
        created_at=utcnow(),
        **amounts,
    )
    ctx.session.add(policy)
    await ctx.session.flush()
    return policy_read(policy, [])


def policy_read(policy: Policy, banks: list[str]) -> PolicyRead:
    c = policy.currency
    zero = MoneyModel.of(Money.zero(c))
    return PolicyRead(
        id=policy.id,
        created_at=policy.created_at,
        policyholder_id=policy.policyholder_id,
        currency=c,
        start_date=policy.start_date,
        end_date=policy.end_date,
        cover_type=policy.cover_type,
        max_liability=_money(policy.max_liability, c) or zero,
        premium_rate_pct=policy.premium_rate_pct.normalize(),
        indemnity_pct=policy.indemnity_pct.normalize(),
        political_risk_cover=policy.political_risk_cover,
        political_indemnity_pct=policy.political_indemnity_pct.normalize(),
        covered_countries=policy.covered_countries,
        max_credit_period_days=policy.max_credit_period_days,
        deductible=_money(policy.deductible, c) or zero,
        claim_threshold=_money(policy.claim_threshold, c) or zero,
        discretionary_limit=_money(policy.discretionary_limit, c) or zero,
        single_buyer_cap=_money(policy.single_buyer_cap, c),
        claim_filing_days=policy.claim_filing_days,
        documents_grace_days=policy.documents_grace_days,
        overdue_notification_days=policy.overdue_notification_days,
        max_extension_days=policy.max_extension_days,
        protracted_default_wait_days=policy.protracted_default_wait_days,
        reduction_notice_days=policy.reduction_notice_days,
        claims_calendar_country=policy.claims_calendar_country,
        collection_ladder=policy.collection_ladder,
        assigned_bank_ids=banks,
    )


async def visible_policy(ctx: Context, policy_id: str) -> tuple[Policy, list[str]]:
    """The policy if the caller may see it: staff, its policyholder, or a bank it is assigned to;
    anything else is a 404, as if it did not exist."""
    policy = await repo.policy(ctx.session, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    banks = await repo.bank_ids(ctx.session, policy_id)
    if ctx.caller.role == "policyholder":
        ensure_party(ctx.caller, policy.policyholder_id, "policy", policy_id)
    elif ctx.caller.role == "bank" and ctx.caller.party_id not in banks:
        raise not_found("policy", policy_id)
    return policy, banks


async def owned_policy(ctx: Context, policy_id: str) -> Policy:
    """The policy for a change by its policyholder (staff may act on any)."""
    policy, _ = await visible_policy(ctx, policy_id)
    if ctx.caller.role == "bank":
        raise not_found("policy", policy_id)
    return policy


async def get_policy(ctx: Context, policy_id: str) -> PolicyRead:
    policy, banks = await visible_policy(ctx, policy_id)
    return policy_read(policy, _banks_shown(ctx, banks))


def _banks_shown(ctx: Context, banks: list[str]) -> list[str]:
    """A bank sees itself among a policy's loss payees, not the other banks."""
    return [b for b in banks if b == ctx.caller.party_id] if ctx.caller.role == "bank" else banks


def policies_listed(ctx: Context, policyholder_id: str | None) -> Any:
    """The policies a list shows the caller: staff every policy (or one policyholder's); a
    policyholder its own; a bank those assigned to it."""
    if ctx.caller.role == "policyholder":
        if policyholder_id is not None and policyholder_id != ctx.caller.party_id:
            policyholder_id = ""  # another party's: nothing to show, as if it had none
        else:
            policyholder_id = ctx.caller.party_id or ""
    bank_id = ctx.caller.party_id or "" if ctx.caller.role == "bank" else None
    return repo.policies_listed(policyholder_id=policyholder_id, bank_id=bank_id)


async def read_policies(ctx: Context, policies: list[Policy]) -> list[PolicyRead]:
    banks = await repo.bank_ids_of(ctx.session, [p.id for p in policies])
    return [policy_read(p, _banks_shown(ctx, banks.get(p.id, []))) for p in policies]


async def assign_policy(ctx: Context, policy_id: str, bank_id: str) -> AssignmentRead:
    policy = await repo.policy(ctx.session, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    assignment = PolicyAssignment(
        id=new_id("asg"), policy_id=policy_id, bank_id=bank_id, created_by=ctx.caller.subject,
        created_at=utcnow(),
    )  # fmt: skip
    if not await repo.add_unless_taken(ctx.session, assignment, "policy_id", "bank_id"):
        raise conflict("already-assigned", f"bank {bank_id!r} is already assigned to this policy")
    return AssignmentRead(
        id=assignment.id, created_at=assignment.created_at, policy_id=policy_id, bank_id=bank_id
    )


# ---------------------------------------------------------------- buyers and grades


def _indicators(raw: dict[str, Any] | None) -> rules.Indicators:
    raw = raw or {}

    def dec(name: str) -> Decimal | None:
        value = raw.get(name)
        return None if value is None else Decimal(str(value))

    equity = raw.get("equity")
    return rules.Indicators(
        current_ratio=dec("current_ratio"),
        dso_days=dec("dso_days"),
        dso_prior_year_days=dec("dso_prior_year_days"),
        overdue_ratio=dec("overdue_ratio"),
        litigation_count=raw.get("litigation_count"),
        management_changes_12m=raw.get("management_changes_12m"),
        equity=None if equity is None else Decimal(str(equity["amount"])),
    )


def _stored_indicators(data: IndicatorsIn | None) -> dict[str, Any]:
    return {} if data is None else data.model_dump(mode="json", exclude_none=True)


async def country_level(ctx: Context, country: str) -> int:
    risk = await repo.country_risk(ctx.session, country)
    return risk.level if risk is not None else ctx.settings.default_country_risk_level


def _factors(grade: rules.Grade) -> list[dict[str, Any]]:
    return [
        {"factor": f.factor, "value": f.value, "points": str(f.points), "note": f.note}
        for f in grade.factors
    ]


async def _grade_today(ctx: Context, buyer: Buyer) -> rules.Grade:
    """Today's grade of a buyer from its confirmed indicators, country and recent signals."""
    signals = await repo.signals_of(ctx.session, buyer.id)
    grade = rules.grade_buyer(
        _indicators(buyer.indicators),
        country_risk_level=await country_level(ctx, buyer.country),
        signal_points=rules.recent_signal_points(signals, today=ctx.today),
        insolvent=buyer.insolvent_since is not None,
    )
    buyer.grade = grade.grade
    buyer.grade_factors = _factors(grade)
    buyer.graded_at = utcnow()
    return grade


async def regrade(
    ctx: Context, buyer: Buyer, *, cause: str, graded_on: dt.date | None = None
) -> rules.Grade:
    """Recompute a buyer's grade and keep it in its grade history from `graded_on` on (today,
    or for a signal the day it was observed)."""
    grade = await _grade_today(ctx, buyer)
    await _record_grade(ctx, buyer, cause=cause, graded_on=graded_on or ctx.today)
    return grade


async def _record_grade(ctx: Context, buyer: Buyer, *, cause: str, graded_on: dt.date) -> None:
    """An entry of the grade history: the grade in force from `graded_on`. A grade dated before
    today (a signal observed earlier) is graded as of that date, and every later date of the
    history is graded again with it (a new entry, from what was known on that date), so that a
    past shipment reads what was true on its date."""
    level = await country_level(ctx, buyer.country)
    signals = await repo.signals_of(ctx.session, buyer.id)
    later = await repo.grade_entries_after(ctx.session, buyer.id, graded_on)
    if graded_on >= ctx.today:
        grade, factors = buyer.grade, buyer.grade_factors
    else:
        then = rules.grade_on(_indicators(buyer.indicators), day=graded_on,
                              country_risk_level=level, signals=signals,
                              insolvent_since=buyer.insolvent_since)  # fmt: skip
        grade, factors = then.grade, _factors(then)
    entries = [(graded_on, grade, factors, buyer.indicators, level)]
    last_of_day = {entry.graded_on: entry for entry in later}
    for day, entry in sorted(last_of_day.items()):
        again = rules.grade_on(_indicators(entry.indicators), day=day,
                               country_risk_level=entry.country_risk_level or level,
                               signals=signals, insolvent_since=buyer.insolvent_since)  # fmt: skip
        if again.grade != entry.grade or _factors(again) != entry.factors:
            entries.append((day, again.grade, _factors(again), entry.indicators,
                            entry.country_risk_level or level))  # fmt: skip
    for day, grade, factors, indicators, country_level_then in entries:
        ctx.session.add(BuyerGrade(
            id=new_id("grd"), buyer_id=buyer.id, graded_on=day, grade=grade, factors=factors,
            indicators=indicators, country_risk_level=country_level_then, cause=cause,
            created_by=ctx.caller.subject, created_at=utcnow()))  # fmt: skip
    await ctx.session.flush()


def buyer_read(buyer: Buyer, caller: Caller) -> BuyerRead:
    staff = caller.is_staff
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
        declared_indicators=IndicatorsIn(**buyer.declared_indicators)
        if staff and buyer.declared_indicators
        else None,
        indicators_confirmed=not buyer.declared_indicators,
    )


async def register_buyer(ctx: Context, data: BuyerCreate) -> BuyerRead:
    """A new buyer, graded at once. Indicators an underwriter gives are confirmed; those a
    policyholder declares are kept and move the grade only once an underwriter confirms them."""
    existing = await repo.buyer_by_registration(ctx.session, data.country, data.registration_number)
    if existing is not None:
        raise _duplicate_buyer(existing.id)
    indicators = _stored_indicators(data.indicators)
    confirmed = ctx.caller.role != "policyholder"
    buyer = Buyer(
        id=new_id("buy"),
        name=data.name,
        country=data.country,
        registration_number=data.registration_number,
        legal_form=data.legal_form,
        indicators=indicators if confirmed else {},
        declared_indicators=None if confirmed or not indicators else indicators,
        grade=0,
        grade_factors=[],
        registered_by=ctx.caller.party_id or ctx.caller.subject,
        created_at=utcnow(),
    )
    await _grade_today(ctx, buyer)
    if not await repo.add_unless_taken(ctx.session, buyer, "country", "registration_number"):
        raced = await repo.buyer_by_registration(
            ctx.session, data.country, data.registration_number
        )
        raise _duplicate_buyer(raced.id if raced else "")
    await _record_grade(ctx, buyer, cause="registration", graded_on=ctx.today)
    return buyer_read(buyer, ctx.caller)


def _duplicate_buyer(buyer_id: str) -> Problem:
    return conflict(
        "buyer-exists",
        "a buyer with this country and registration number is already registered",
        existing_buyer_id=buyer_id,
    )


async def visible_buyer(ctx: Context, buyer_id: str, *, for_update: bool = False) -> Buyer:
    """The buyer if the caller may see it: staff any; a policyholder those it registered or holds
    a limit or a limit request on. Anything else is a 404, as if it did not exist."""
    buyer = await repo.buyer(ctx.session, buyer_id, for_update=for_update)
    if buyer is None:
        raise not_found("buyer", buyer_id)
    if ctx.caller.role == "policyholder" and not await repo.party_holds_buyer(
        ctx.session, ctx.caller.party_id or "", buyer_id
    ):
        raise not_found("buyer", buyer_id)
    if ctx.caller.role == "bank":  # not a reader of buyers (the route refuses it first)
        raise not_found("buyer", buyer_id)
    return buyer


async def get_buyer(ctx: Context, buyer_id: str) -> BuyerRead:
    return buyer_read(await visible_buyer(ctx, buyer_id), ctx.caller)


def buyers_listed(ctx: Context, country: str | None, registration_number: str | None) -> Any:
    """The buyers a list shows the caller: staff every buyer; a policyholder its own, or any
    buyer looked up by its exact country and registration number."""
    return repo.buyers_listed(
        country=country, registration_number=registration_number,
        party_id=ctx.caller.party_id or "" if ctx.caller.role == "policyholder" else None,
    )  # fmt: skip


async def update_indicators(ctx: Context, buyer_id: str, data: IndicatorsIn) -> BuyerRead:
    """A policyholder declares indicators (kept, not graded) on its own buyers only; an
    underwriter's are confirmed and regrade the buyer."""
    buyer = await visible_buyer(ctx, buyer_id, for_update=True)
    values = _stored_indicators(data)
    if ctx.caller.role == "policyholder":
        buyer.declared_indicators = {**(buyer.declared_indicators or {}), **values}
    else:
        buyer.indicators = {**buyer.indicators, **values}
        buyer.declared_indicators = None
        await regrade(ctx, buyer, cause="indicators")
    await ctx.session.flush()
    return buyer_read(buyer, ctx.caller)


async def confirm_indicators(ctx: Context, buyer_id: str) -> BuyerRead:
    buyer = await repo.buyer(ctx.session, buyer_id, for_update=True)
    if buyer is None:
        raise not_found("buyer", buyer_id)
    if buyer.declared_indicators:
        buyer.indicators = {**buyer.indicators, **buyer.declared_indicators}
        buyer.declared_indicators = None
    await regrade(ctx, buyer, cause="indicators")
    await ctx.session.flush()
    return buyer_read(buyer, ctx.caller)


async def set_country_risk(ctx: Context, country: str, level: int) -> CountryRiskRead:
    """A country's risk level changes: every buyer of that country is graded again (an entry of
    its grade history), and its limits follow the new grade as after any other grade change."""
    risk = await repo.country_risk(ctx.session, country)
    if risk is None:
        ctx.session.add(CountryRisk(country=country, level=level, updated_by=ctx.caller.subject,
                                    updated_at=utcnow()))  # fmt: skip
    else:
        risk.level, risk.updated_by, risk.updated_at = level, ctx.caller.subject, utcnow()
    await ctx.session.flush()
    for buyer in await repo.buyers_of_country(ctx.session, country):
        grade_before = buyer.grade
        grade = await regrade(ctx, buyer, cause="country_risk")
        if _reached_reduction_grade(ctx, grade_before, grade.grade):
            await _halve_all(ctx, buyer, grade.grade)
    await ctx.session.flush()
    return CountryRiskRead(country=country, level=level, listed=True)


def _reached_reduction_grade(ctx: Context, before: int, after: int) -> bool:
    """A buyer newly at grade 8–9 (not insolvent) has its limits halved after the notice period."""
    return (
        ctx.settings.refer_from_grade <= after < rules.DEFAULT_GRADING.insolvent_grade
        and before < ctx.settings.refer_from_grade
    )


async def get_country_risk(ctx: Context, country: str) -> CountryRiskRead:
    risk = await repo.country_risk(ctx.session, country)
    if risk is None:
        return CountryRiskRead(
            country=country, level=ctx.settings.default_country_risk_level, listed=False
        )
    return CountryRiskRead(country=country, level=risk.level, listed=True)


async def add_sanction(ctx: Context, data: SanctionCreate) -> SanctionRead:
    if data.buyer_id is not None and await repo.buyer(ctx.session, data.buyer_id) is None:
        raise not_found("buyer", data.buyer_id)
    sanction = Sanction(
        id=new_id("snc"), country=data.country, buyer_id=data.buyer_id, reason=data.reason,
        created_by=ctx.caller.subject, created_at=utcnow(),
    )  # fmt: skip
    ctx.session.add(sanction)
    await ctx.session.flush()
    return sanction_read(sanction)


def sanction_read(s: Sanction) -> SanctionRead:
    return SanctionRead(
        id=s.id, created_at=s.created_at, country=s.country, buyer_id=s.buyer_id, reason=s.reason
    )


async def remove_sanction(ctx: Context, sanction_id: str) -> SanctionRead:
    sanction = await ctx.session.get(Sanction, sanction_id)
    if sanction is None:
        raise not_found("sanction", sanction_id)
    answer = sanction_read(sanction)
    await ctx.session.delete(sanction)
    await ctx.session.flush()
    return answer


# ---------------------------------------------------------------- limits


async def _history_of(ctx: Context, limit_id: str) -> list[LimitAmount]:
    return (await repo.history(ctx.session, [limit_id])).get(limit_id, [])


def _entries(history: list[LimitAmount]) -> list[rules.HistoryEntry]:
    return [
        rules.HistoryEntry(e.amount, e.effective_from, e.effective_to)
        for e in sorted(history, key=lambda e: e.effective_from, reverse=True)
    ]


def _terms_on(history: list[LimitAmount], day: dt.date) -> int | None:
    """The payment terms of the amount in force on `day` (else of the last one before it, else
    of the first one)."""
    ordered = sorted(history, key=lambda e: e.effective_from)
    started = [e for e in ordered if e.effective_from <= day]
    if started:
        return started[-1].payment_terms_days
    return ordered[0].payment_terms_days if ordered else None


def _refuse_above_cap(policy: Policy, amount: Money) -> None:
    """A person may not grant, record or change a limit above the single-buyer cap."""
    if rules.exceeds_single_buyer_cap(amount.amount, policy.single_buyer_cap):
        cap = Money(policy.single_buyer_cap or Decimal(0), policy.currency)
        raise unprocessable(
            "single-buyer-cap-exceeded",
            f"{amount} is above the policy's single-buyer cap of {cap}",
            single_buyer_cap=money_json(cap),
        )


async def apply_limit_change(
    ctx: Context,
    limit: CreditLimit,
    *,
    new_amount: Money,
    effective_from: dt.date,
    reason: str,
    source: str,
    payment_terms_days: int | None = None,
) -> LimitChangeRead:
    """Record a new amount in force from `effective_from` on: the entry running on that date ends
    there, and entries that had not started by then are superseded (kept for audit). The amount
    carries the payment terms given, else those of the amount it replaces."""
    history = await _history_of(ctx, limit.id)
    old = rules.amount_in_force(_entries(history), effective_from)
    terms = payment_terms_days if payment_terms_days is not None else _terms_on(
        history, effective_from)  # fmt: skip
    now = utcnow()
    for entry in history:
        if entry.effective_from >= effective_from:
            entry.superseded_at = now
        elif entry.effective_to is None or entry.effective_to > effective_from:
            entry.effective_to = effective_from
    ctx.session.add(
        LimitAmount(
            id=new_id("lam"), limit_id=limit.id, amount=new_amount.amount,
            payment_terms_days=terms, effective_from=effective_from, effective_to=None, reason=reason, source=source,
            decided_by=ctx.caller.subject, created_at=now,
        )
    )  # fmt: skip
    await ctx.session.flush()
    return LimitChangeRead(
        limit_id=limit.id,
        policy_id=limit.policy_id,
        buyer_id=limit.buyer_id,
        old_amount=_money(old, new_amount.currency),
        new_amount=MoneyModel.of(new_amount),
        effective_from=effective_from,
        reason=reason,
    )


async def _limit_for(ctx: Context, policy_id: str, buyer_id: str) -> CreditLimit:
    """The limit of a (policy, buyer), created on the first decision, locked until the commit:
    concurrent first decisions on one pair create it once and then take their turns."""
    await repo.add_credit_limit_if_absent(
        ctx.session, limit_id=new_id("lim"), policy_id=policy_id, buyer_id=buyer_id,
        decided_on=ctx.today,
    )  # fmt: skip
    limit = await repo.credit_limit(ctx.session, policy_id, buyer_id, for_update=True)
    assert limit is not None
    return limit


async def _grant(
    ctx: Context, request: LimitRequest, amount: Money, reason: str
) -> LimitChangeRead | None:
    """Put a decided amount, on the request's payment terms, in force: from today, or from
    tomorrow when it takes cover away (a lower amount or shorter terms)."""
    limit = await _limit_for(ctx, request.policy_id, request.buyer_id)
    if not amount.is_positive():
        return None
    request.limit_id = limit.id
    history = await _history_of(ctx, limit.id)
    current = rules.amount_in_force(_entries(history), ctx.today)
    effective = rules.grant_effective_from(
        current=current, current_terms=_terms_on(history, ctx.today), amount=amount.amount,
        terms=request.payment_terms_days, today=ctx.today,
    )  # fmt: skip
    if effective is None:
        return None
    return await apply_limit_change(
        ctx, limit, new_amount=amount, effective_from=effective, reason=reason, source="request",
        payment_terms_days=request.payment_terms_days,
    )  # fmt: skip


async def get_limit_request(ctx: Context, request_id: str) -> LimitRequestRead:
    """A limit request for staff or the policyholder of its policy; another party's is a 404
    naming only the id asked for, as for one that does not exist."""
    found = await repo.limit_request(ctx.session, request_id)
    if found is None:
        raise not_found("limit request", request_id)
    policy = await _policy_seen_through(ctx, found.policy_id, "limit request", request_id)
    return request_read(found, policy.currency)


async def list_limit_requests(ctx: Context, requests: list[LimitRequest]) -> list[LimitRequestRead]:
    currencies = await repo.policy_currencies(ctx.session, [r.policy_id for r in requests])
    return [request_read(r, currencies[r.policy_id]) for r in requests]


async def get_limit(ctx: Context, limit_id: str) -> LimitRead:
    """A limit for staff, the policyholder of its policy or a bank assigned to it; anything else
    is a 404 naming only the id asked for."""
    limit = await repo.credit_limit_by_id(ctx.session, limit_id)
    if limit is None:
        raise not_found("limit", limit_id)
    policy = await _policy_seen_through(ctx, limit.policy_id, "limit", limit_id)
    return await limit_read(ctx, limit, policy.currency)


async def _policy_seen_through(ctx: Context, policy_id: str, what: str, ident: str) -> Policy:
    """The policy of an object the caller asked for by the object's id: when the caller may not
    see the policy, the object does not exist for it (the 404 names the object, not the policy)."""
    try:
        policy, _ = await visible_policy(ctx, policy_id)
    except Problem as problem:
        if problem.status == 404:
            raise not_found(what, ident) from None
        raise
    return policy


def request_read(r: LimitRequest, currency: str) -> LimitRequestRead:
    reasons = [ReasonRead(**x) for x in r.reasons]
    return LimitRequestRead(
        id=r.id,
        created_at=r.created_at,
        policy_id=r.policy_id,
        buyer_id=r.buyer_id,
        status=r.status,
        requested_amount=MoneyModel.of(Money(r.requested_amount, currency)),
        decided_amount=_money(r.decided_amount, currency),
        payment_terms_days=r.payment_terms_days,
        grade=r.grade,
        reasons=reasons,
        message=" ".join(x.message.rstrip(".") + "." for x in reasons),
        limit_id=r.limit_id,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
    )


async def request_limit(ctx: Context, policy_id: str, data: LimitRequestCreate) -> LimitRequestRead:
    """A policyholder asks for a limit on a buyer; the decision table answers at once."""
    policy = await owned_policy(ctx, policy_id)
    buyer = await repo.buyer(ctx.session, data.buyer_id)
    if buyer is None:
        raise not_found("buyer", data.buyer_id)
    amount = _in_currency(data.amount, policy.currency, "amount")
    _positive(amount, ["body", "amount", "amount"])
    equity = _indicators(buyer.indicators).equity
    equity_currency = (buyer.indicators.get("equity") or {}).get("currency")
    facts = rules.RequestFacts(
        amount=amount,
        payment_terms_days=data.payment_terms_days,
        max_credit_period_days=policy.max_credit_period_days,
        legal_form=buyer.legal_form,
        related_to_policyholder=data.related_to_policyholder,
        grade=buyer.grade,
        sanctioned=await repo.sanctioned(ctx.session, buyer.id, buyer.country),
        country_risk_level=await country_level(ctx, buyer.country),
        country_covered=policy.covered_countries is None
        or buyer.country in policy.covered_countries,
        policy_open=ctx.today <= policy.end_date,
        single_buyer_cap=None
        if policy.single_buyer_cap is None
        else Money(policy.single_buyer_cap, policy.currency),
        equity=Money(equity, policy.currency)
        if equity is not None and equity_currency == policy.currency
        else None,
    )
    decision = rules.decide_limit_request(facts, ctx.settings.decision_table())
    now = utcnow()
    request = LimitRequest(
        id=new_id("lrq"),
        policy_id=policy.id,
        buyer_id=buyer.id,
        requested_amount=amount.amount,
        decided_amount=None if decision.decided_amount is None else decision.decided_amount.amount,
        payment_terms_days=data.payment_terms_days,
        related_to_policyholder=data.related_to_policyholder,
        status=decision.status,
        reasons=[{"code": r.code, "message": r.message} for r in decision.reasons],
        grade=buyer.grade,
        requested_by=ctx.caller.subject,
        decided_by=None if decision.status == rules.REFERRED else "engine",
        decided_at=None if decision.status == rules.REFERRED else now,
        created_at=now,
    )
    ctx.session.add(request)
    await ctx.session.flush()
    if decision.decided_amount is not None:
        await _grant(ctx, request, decision.decided_amount,
                     f"limit request {request.id}: {decision.status}")  # fmt: skip
    await ctx.session.flush()
    return request_read(request, policy.currency)


async def decide_request(ctx: Context, request_id: str, data: DecisionCreate) -> LimitRequestRead:
    """An underwriter's final decision on a referred request; deciding twice is a conflict."""
    request = (
        await ctx.session.execute(
            select(LimitRequest).where(LimitRequest.id == request_id).with_for_update()
        )
    ).scalar_one_or_none()
    if request is None:
        raise not_found("limit request", request_id)
    policy = await repo.policy(ctx.session, request.policy_id)
    assert policy is not None
    if request.status != rules.REFERRED:
        raise conflict(
            "already-decided",
            f"limit request {request_id} was already decided: {request.status}",
            decided_status=request.status,
        )
    requested = Money(request.requested_amount, policy.currency)
    if data.decision == "refuse":
        decided = Money.zero(policy.currency)
        status, code = rules.REFUSED, "underwriter_refused"
    else:
        if data.amount is None and data.decision == "partially_approve":
            raise invalid(["body", "amount"], "a partial approval needs an amount")
        decided = (
            requested
            if data.amount is None
            else _in_currency(data.amount, policy.currency, "amount")
        )
        _positive(decided, ["body", "amount", "amount"])
        if decided > requested:
            raise invalid(["body", "amount"], "must not exceed the requested amount")
        if data.decision == "partially_approve" and decided == requested:
            raise invalid(["body", "amount"], "a partial approval is below the requested amount")
        _refuse_above_cap(policy, decided)
        status = rules.APPROVED if decided == requested else rules.PARTIAL
        code = "underwriter_approved" if status == rules.APPROVED else "underwriter_partial"
    request.status = status
    request.decided_amount = decided.amount
    request.decided_by = ctx.caller.subject
    request.decided_at = utcnow()
    request.decision_reason = data.reason
    request.reasons = [*request.reasons, {"code": code, "message": data.reason}]
    await _grant(ctx, request, decided, f"underwriter decision on {request.id}: {data.reason}")
    await ctx.session.flush()
    return request_read(request, policy.currency)


async def record_external_limit(
    ctx: Context, policy_id: str, data: ExternalLimitCreate
) -> LimitRead:
    """A limit granted outside the engine (a migrated book), possibly from a past date."""
    policy = await repo.policy(ctx.session, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    if await repo.buyer(ctx.session, data.buyer_id) is None:
        raise not_found("buyer", data.buyer_id)
    amount = _in_currency(data.amount, policy.currency, "amount")
    _positive(amount, ["body", "amount", "amount"])
    if data.payment_terms_days and data.payment_terms_days > policy.max_credit_period_days:
        raise invalid(["body", "payment_terms_days"],
                      "must not exceed the policy's maximum credit period")  # fmt: skip
    _refuse_above_cap(policy, amount)
    limit = await _limit_for(ctx, policy_id, data.buyer_id)
    limit.decided_on = min(limit.decided_on, data.effective_from)
    await apply_limit_change(ctx, limit, new_amount=amount, effective_from=data.effective_from,
                             reason=data.reason, source="external",
                             payment_terms_days=data.payment_terms_days)  # fmt: skip
    return await limit_read(ctx, limit, policy.currency)


async def change_limit(ctx: Context, limit_id: str, data: LimitChangeCreate) -> LimitChangeRead:
    """An underwriter changes a limit: an increase may apply today; a reduction or withdrawal
    only to shipments from tomorrow on (by default after the notice period)."""
    limit = await repo.credit_limit_by_id(ctx.session, limit_id, for_update=True)
    if limit is None:
        raise not_found("limit", limit_id)
    policy = await repo.policy(ctx.session, limit.policy_id)
    assert policy is not None
    new_amount = _in_currency(data.new_amount, policy.currency, "new_amount")
    if new_amount.amount < 0:
        raise invalid(["body", "new_amount", "amount"], "must not be negative")
    _refuse_above_cap(policy, new_amount)
    history = _entries(await _history_of(ctx, limit.id))
    current = rules.amount_in_force(history, ctx.today)
    effective, allowed = rules.change_effective_from(
        current=current, new_amount=new_amount.amount, requested=data.effective_from,
        today=ctx.today, notice_days=policy.reduction_notice_days,
    )  # fmt: skip
    if not allowed:
        reduction = current is not None and new_amount.amount < current
        if reduction:
            raise unprocessable(
                "retroactive-reduction",
                "a reduction or withdrawal applies only to shipments from tomorrow on",
                earliest_effective_from=rules.earliest_reduction_date(ctx.today).isoformat(),
            )
        raise invalid(["body", "effective_from"], "must not be in the past")
    return await apply_limit_change(ctx, limit, new_amount=new_amount, effective_from=effective,
                                    reason=data.reason, source="change")  # fmt: skip


async def limit_read(ctx: Context, limit: CreditLimit, currency: str) -> LimitRead:
    history = (await repo.history(ctx.session, [limit.id])).get(limit.id, [])
    return _limit_read(limit, history, currency, ctx.today)


def _limit_read(
    limit: CreditLimit, history: list[LimitAmount], currency: str, today: dt.date
) -> LimitRead:
    return LimitRead(
        id=limit.id,
        created_at=limit.created_at,
        policy_id=limit.policy_id,
        buyer_id=limit.buyer_id,
        payment_terms_days=_terms_on(history, today),
        amount_in_force=_money(rules.amount_in_force(_entries(history), today), currency),
        history=[
            HistoryRead(
                amount=MoneyModel.of(Money(e.amount, currency)),
                payment_terms_days=e.payment_terms_days,
                effective_from=e.effective_from,
                effective_to=e.effective_to,
                reason=e.reason,
                source=e.source,
                decided_by=e.decided_by,
                recorded_at=e.created_at,
            )
            for e in history
        ],
    )


async def limits_of_policy(
    ctx: Context, policy: Policy, limits: list[CreditLimit]
) -> list[LimitRead]:
    histories = await repo.history(ctx.session, [lim.id for lim in limits])
    return [
        _limit_read(lim, histories.get(lim.id, []), policy.currency, ctx.today) for lim in limits
    ]


# ---------------------------------------------------------------- signals


async def record_signal(ctx: Context, buyer_id: str, data: SignalCreate) -> SignalRead:
    """A signal on a buyer: recorded, the grade recomputed, and the limits changed as the rules
    say (insolvency withdraws them from the next day; reaching grade 8–9 halves them after the
    notice period; an overdue notified stops shipments on that policy until cleared)."""
    if data.observed_on > ctx.today:  # domain.md: a signal cannot be observed after today
        raise invalid(["body", "observed_on"], f"must not be after today ({ctx.today})")
    buyer = await repo.buyer(ctx.session, buyer_id, for_update=True)
    if buyer is None:
        raise not_found("buyer", buyer_id)
    policy: Policy | None = None
    if data.kind in rules.POLICY_SIGNALS and data.policy_id is None:
        raise invalid(["body", "policy_id"], f"a {data.kind} signal needs a policy_id")
    if data.policy_id is not None:
        policy = await repo.policy(ctx.session, data.policy_id)
        if policy is None:
            raise not_found("policy", data.policy_id)
    grade_before = buyer.grade
    if data.kind == "management_change":
        changes = buyer.indicators.get("management_changes_12m") or 0
        buyer.indicators = {**buyer.indicators, "management_changes_12m": changes + 1}
    if data.kind == "insolvency_filing" and buyer.insolvent_since is None:
        buyer.insolvent_since = data.observed_on
    signal = BuyerSignal(
        id=new_id("sig"), buyer_id=buyer.id, policy_id=data.policy_id, kind=data.kind,
        observed_on=data.observed_on, details=data.details,
        points=rules.DEFAULT_SIGNAL_POINTS.get(data.kind, Decimal(0)),
        grade_before=grade_before, grade_after=grade_before, created_by=ctx.caller.subject,
        created_at=utcnow(),
    )  # fmt: skip
    ctx.session.add(signal)
    await ctx.session.flush()
    grade = await regrade(ctx, buyer, cause="signal", graded_on=data.observed_on)
    signal.grade_after = grade.grade
    changes_made: list[LimitChangeRead] = []
    stop: bool | None = None
    if data.kind == "insolvency_filing":
        changes_made = await _withdraw_all(ctx, buyer, data.observed_on)
    elif ctx.settings.refer_from_grade <= grade.grade < rules.DEFAULT_GRADING.insolvent_grade and (
        grade_before < ctx.settings.refer_from_grade
    ):
        changes_made = await _halve_all(ctx, buyer, grade.grade)
    if data.kind == "overdue_notified" and policy is not None:
        if not await repo.open_stops(ctx.session, policy.id, buyer.id):
            ctx.session.add(StopShipment(
                id=new_id("stp"), policy_id=policy.id, buyer_id=buyer.id,
                notified_on=data.observed_on, cleared_on=None, created_at=utcnow()))  # fmt: skip
        stop = True
    if data.kind == "arrears_cleared" and policy is not None:
        for open_stop in await repo.open_stops(ctx.session, policy.id, buyer.id):
            open_stop.cleared_on = max(data.observed_on, open_stop.notified_on)
        stop = False
    await ctx.session.flush()
    return SignalRead(
        id=signal.id, created_at=signal.created_at, buyer_id=buyer.id, kind=data.kind,
        observed_on=data.observed_on, policy_id=data.policy_id, details=data.details,
        points=signal.points, grade_before=grade_before, grade=grade.grade,
        limit_changes=changes_made, stop_shipment=stop,
    )  # fmt: skip


async def _withdraw_all(ctx: Context, buyer: Buyer, observed_on: dt.date) -> list[LimitChangeRead]:
    effective = rules.insolvency_withdrawal_date(observed_on, ctx.today)
    changes: list[LimitChangeRead] = []
    for limit, policy in await repo.limits_on_buyer(ctx.session, buyer.id):
        current = rules.amount_in_force(_entries(await _history_of(ctx, limit.id)), effective)
        if current is None or current == 0:
            continue
        changes.append(await apply_limit_change(
            ctx, limit, new_amount=Money.zero(policy.currency), effective_from=effective,
            reason=f"buyer insolvency observed on {observed_on.isoformat()}: limit withdrawn",
            source="signal"))  # fmt: skip
    return changes


async def _halve_all(ctx: Context, buyer: Buyer, grade: int) -> list[LimitChangeRead]:
    changes: list[LimitChangeRead] = []
    for limit, policy in await repo.limits_on_buyer(ctx.session, buyer.id):
        effective = ctx.today + dt.timedelta(days=policy.reduction_notice_days)
        effective = max(effective, rules.earliest_reduction_date(ctx.today))
        current = rules.amount_in_force(_entries(await _history_of(ctx, limit.id)), effective)
        if current is None or current == 0:
            continue
        changes.append(await apply_limit_change(
            ctx, limit, new_amount=rules.halved(current, policy.currency),
            effective_from=effective,
            reason=f"buyer downgraded to grade {grade}: limit halved after the "
                   f"{policy.reduction_notice_days}-day notice period",
            source="signal"))  # fmt: skip
    return changes


# ---------------------------------------------------------------- declarations and premium


async def declare_receivables(
    ctx: Context, policy_id: str, data: DeclarationCreate
) -> DeclarationRead:
    """The policyholder declares its receivables; a known invoice number is updated."""
    policy = await owned_policy(ctx, policy_id)
    numbers = [i.number for i in data.invoices]
    seen: set[str] = set()
    for index, invoice in enumerate(data.invoices):
        loc: list[str | int] = ["body", "invoices", index]
        if invoice.number in seen:
            raise invalid([*loc, "number"], "an invoice number appears twice in one declaration")
        seen.add(invoice.number)
        amount = _in_currency(invoice.amount, policy.currency, "amount")
        _positive(amount, [*loc, "amount", "amount"])
        if invoice.due_date < invoice.shipment_date:
            raise unprocessable("due-before-shipment",
                                f"invoice {invoice.number}: due date is before the shipment date",
                                errors=[{"loc": [*loc, "due_date"],
                                         "msg": "before the shipment date"}])  # fmt: skip
        if invoice.paid_amount is not None:
            paid = _in_currency(invoice.paid_amount, policy.currency, "paid_amount")
            if paid.amount < 0 or paid > amount:
                raise invalid([*loc, "paid_amount"], "must be between zero and the amount")
            if paid.is_positive() and invoice.paid_on is None:
                raise invalid([*loc, "paid_on"], "a payment needs its date")
    missing = set(i.buyer_id for i in data.invoices) - await repo.existing_buyer_ids(
        ctx.session, [i.buyer_id for i in data.invoices]
    )
    if missing:
        raise not_found("buyer", sorted(missing)[0])
    now = utcnow()

    def settled(invoice: InvoiceDeclaration) -> Decimal:
        return invoice.paid_amount.amount if invoice.paid_amount else Decimal(0)

    # New numbers are inserted unless known (or being declared by a concurrent request): those
    # not inserted are updated, so concurrent declarations of one new number create it once.
    created = await repo.add_receivables_unless_known(ctx.session, [
        {"id": new_id("rcv"), "policy_id": policy.id, "buyer_id": invoice.buyer_id,
         "invoice_number": invoice.number, "amount": invoice.amount.amount,
         "shipment_date": invoice.shipment_date, "due_date": invoice.due_date,
         "paid_amount": settled(invoice), "paid_on": invoice.paid_on, "created_at": now,
         "updated_at": now}
        for invoice in data.invoices
    ])  # fmt: skip
    known = await repo.receivables_by_number(
        ctx.session, policy.id, [n for n in numbers if n not in created]
    )
    for invoice in data.invoices:
        if invoice.number in created:
            continue
        row = known[invoice.number]
        row.buyer_id, row.amount = invoice.buyer_id, invoice.amount.amount
        row.shipment_date, row.due_date = invoice.shipment_date, invoice.due_date
        row.paid_amount, row.paid_on, row.updated_at = settled(invoice), invoice.paid_on, now
    await ctx.session.flush()
    return DeclarationRead(
        policy_id=policy.id, created=len(created), updated=len(data.invoices) - len(created)
    )


async def premium_for(
    ctx: Context, policy_id: str, period_from: dt.date | None, period_to: dt.date | None
) -> PremiumRead:
    policy = await owned_policy(ctx, policy_id)
    start = period_from or policy.start_date
    end = period_to or policy.end_date
    if end < start:
        raise invalid(["query", "to"], "must not be before 'from'")
    total, counted, excluded = Decimal(0), 0, 0
    for line in await repo.turnover(ctx.session, policy, start, end):
        if rules.bears_premium(
            legal_form=line.legal_form, country=line.country,
            covered_countries=policy.covered_countries, sanctioned=line.sanctioned,
            related_to_policyholder=line.related_to_policyholder,
        ):  # fmt: skip
            total, counted = total + line.amount, counted + line.invoices
        else:
            excluded += line.invoices
    turnover = Money(total, policy.currency)
    return PremiumRead(
        policy_id=policy.id, period_from=start, period_to=end,
        insured_turnover=MoneyModel.of(turnover), premium_rate_pct=policy.premium_rate_pct,
        premium=MoneyModel.of(rules.premium(turnover, policy.premium_rate_pct)),
        invoices_counted=counted, invoices_excluded=excluded,
    )  # fmt: skip


async def portfolio_health(ctx: Context, policy_id: str) -> PortfolioHealthRead:
    policy = await owned_policy(ctx, policy_id)
    rows = await repo.receivables_of_policy(ctx.session, policy.id)
    invoices = [
        rules.Invoice(r.buyer_id, r.amount, r.shipment_date, r.due_date, r.paid_amount, r.paid_on)
        for r in rows
    ]
    ratios = await repo.current_ratios(ctx.session, sorted({i.buyer_id for i in invoices}))
    health = rules.portfolio_health(invoices, today=ctx.today,
                                    thresholds=ctx.settings.health_thresholds(),
                                    current_ratios=ratios)  # fmt: skip
    c = policy.currency

    def m(amount: Decimal) -> MoneyModel:
        return MoneyModel.of(Money(amount, c))

    return PortfolioHealthRead(
        policy_id=policy.id, as_of=ctx.today, outstanding=m(health.outstanding),
        dso_days=health.dso_days, dso_prior_year_days=health.dso_prior_year_days,
        dso_change=health.dso_change, overdue_ratio=health.overdue_ratio,
        ageing=[AgeingBucket(bucket=name, amount=m(a)) for name, a in health.ageing],
        concentration=[ConcentrationRead(buyer_id=b, outstanding=m(a), share=s)
                       for b, a, s in health.concentration],
        top_buyers_share=health.top_buyers_share,
        warnings=[WarningRead(code=w.code, figure=w.figure, threshold=w.threshold,
                              message=w.message, buyer_id=w.buyer_id) for w in health.warnings],
    )  # fmt: skip


# ---------------------------------------------------------------- coverage


def _answer(policy_id: str, buyer_id: str, a: rules.CoverageAnswer) -> dict[str, Any]:
    """The answer as it goes on the wire (the shape of `CoverageRead`), built as plain data: a
    batch builds 10,000 of these per request, and model instances would cost most of its time."""
    return {
        "policy_id": policy_id, "buyer_id": buyer_id, "covered": a.covered,
        "fully_covered": a.fully_covered, "covered_amount": money_json(a.covered_amount),
        "insured_amount": money_json(a.insured_amount),
        "indemnity_pct": plain_decimal(a.indemnity_pct),
        "limit_in_force": None if a.limit_in_force is None else money_json(a.limit_in_force),
        "limit_source": a.limit_source, "exposure": money_json(a.exposure),
        "reasons": list(a.reasons),
        "conditions": [{"condition": c.name, "held": c.held} for c in a.conditions],
    }  # fmt: skip


def _validate_item(item: CoverageCheckCreate, currency: str) -> Money:
    if item.due_date < item.shipment_date:
        raise unprocessable("due-before-shipment", "the due date is before the shipment date")
    amount = _in_currency(item.invoice_amount, currency, "invoice_amount")
    _positive(amount, ["body", "invoice_amount", "amount"])
    return amount


async def check_coverage(
    reader: Reader, caller: Caller, today: dt.date, item: CoverageCheckCreate
) -> dict[str, Any]:
    """Whether one receivable is covered, read from the books in one statement (the hot path:
    no session, no transaction, one round trip)."""
    row = await repo.coverage_row(
        reader, policy_id=item.policy_id, buyer_id=item.buyer_id,
        shipment_date=item.shipment_date, today=today, invoice_number=item.invoice_number,
        bank_id=caller.party_id if caller.role == "bank" else None,
    )  # fmt: skip
    return _coverage_answer(caller, item, row)


async def check_coverage_batch(
    reader: Reader,
    caller: Caller,
    today: dt.date,
    raw_items: list[Any],
    settings: UnderwritingSettings,
) -> list[dict[str, Any]]:
    """Each item answered as the single check would answer it: the books of the items are read
    set-based (a statement per chunk of items, several in flight while the answers to the first
    are worked out), then each is judged by the same code as a single check."""
    parsed: list[CoverageCheckCreate | Problem]
    try:
        parsed = list(_BATCH_ITEMS.validate_python(raw_items))
    except ValidationError:  # some items are malformed: find which, one by one
        parsed = []
        for raw in raw_items:
            try:
                parsed.append(CoverageCheckCreate.model_validate(raw))
            except ValidationError as exc:
                parsed.append(validation_problem(exc.errors()))
    results: list[dict[str, Any] | None] = [None] * len(parsed)
    valid: list[repo.BatchItem] = []
    for index, item in enumerate(parsed):
        if isinstance(item, Problem):
            results[index] = {"index": index, "error": item.body()}
        else:
            valid.append(repo.BatchItem(index, item.policy_id, item.buyer_id,
                                        item.shipment_date, item.invoice_number))  # fmt: skip
    chunks = repo.coverage_rows(
        reader, valid, today=today, bank_id=caller.party_id if caller.role == "bank" else None,
        chunk=settings.coverage_batch_chunk, parallel=settings.coverage_batch_parallel,
    )  # fmt: skip
    async for rows in chunks:
        for index, row in rows:
            item = parsed[index]
            assert isinstance(item, CoverageCheckCreate)
            try:
                results[index] = _coverage_answer(caller, item, row)
            except Problem as problem:
                results[index] = {"index": index, "error": problem.body()}
    missing = [index for index, result in enumerate(results) if result is None]
    if missing:  # every item has its row; anything else is a bug, not an answer
        raise RuntimeError(f"no coverage row for batch items {missing[:10]}")
    return results  # type: ignore[return-value]


_BATCH_ITEMS = TypeAdapter(list[CoverageCheckCreate])


def _coverage_answer(
    caller: Caller, item: CoverageCheckCreate, row: repo.CoverageRow
) -> dict[str, Any]:
    """The single check's judgement of one receivable from its row of the books (a batch runs
    the same for each of its items)."""
    if row.policy_id is None or (
        (caller.role == "policyholder" and row.policyholder_id != caller.party_id)
        or (caller.role == "bank" and not row.bank_assigned)
    ):
        raise not_found("policy", item.policy_id)
    if row.buyer_id is None:
        raise not_found("buyer", item.buyer_id)
    amount = _validate_item(item, row.currency)
    facts = rules.CoverageFacts(
        amount=amount, shipment_date=item.shipment_date, due_date=item.due_date,
        policy_start=row.start_date, policy_end=row.end_date,
        covered_countries=row.covered_countries,
        max_credit_period_days=row.max_credit_period_days, indemnity_pct=row.indemnity_pct,
        whole_turnover=row.cover_type == "whole_turnover",
        discretionary_limit=row.discretionary_limit, buyer_country=row.buyer_country,
        buyer_legal_form=row.buyer_legal_form, buyer_grade=row.buyer_grade,
        sanctioned=bool(row.sanctioned), stopped=bool(row.stopped),
        has_limit=row.limit_id is not None, decided_on=row.decided_on,
        limit_terms_days=row.limit_terms_days, limit_amount=row.limit_amount,
        exposure=row.exposure or Decimal(0), related_to_policyholder=bool(row.related),
        single_buyer_cap=row.single_buyer_cap,
    )  # fmt: skip
    return _answer(item.policy_id, item.buyer_id, rules.assess_coverage(facts))


async def exposure_page(
    ctx: Context, policy: Policy, limits: list[CreditLimit]
) -> list[ExposureRead]:
    """Per buyer: the limit in force today, the exposure (declared, unpaid) and the headroom."""
    histories = await repo.history(ctx.session, [lim.id for lim in limits])
    receivables = await repo.receivables_of_policy(ctx.session, policy.id)
    by_buyer: dict[str, list[rules.Receivable]] = {}
    for r in receivables:
        by_buyer.setdefault(r.buyer_id, []).append(
            rules.Receivable(r.invoice_number, r.amount, r.shipment_date, r.paid_amount, r.paid_on)
        )
    items = []
    for lim in limits:
        in_force = rules.within_single_buyer_cap(
            rules.amount_in_force(_entries(histories.get(lim.id, [])), ctx.today) or Decimal(0),
            policy.single_buyer_cap,
        )
        used = rules.exposure(by_buyer.get(lim.buyer_id, []), shipment_date=dt.date.max,
                              today=ctx.today)  # fmt: skip
        c = policy.currency
        items.append(ExposureRead(
            buyer_id=lim.buyer_id, limit_id=lim.id,
            limit_in_force=MoneyModel.of(Money(in_force, c)),
            exposure=MoneyModel.of(Money(used, c)),
            headroom=MoneyModel.of(Money(max(Decimal(0), in_force - used), c)),
        ))  # fmt: skip
    return items
