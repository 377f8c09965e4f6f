"""Underwriting use cases on credit limits: requests and the decision table, an underwriter's
decision, recorded limits and changes, and what signals and country risk do to limits. They read
through the repository, decide with the rules, and leave the single commit to the request's
command."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from services.underwriting import repository as repo
from services.underwriting import rules, views
from services.underwriting import whole_book as book
from services.underwriting.events import (
    GradeCause,
    LimitChanged,
    LimitRequestDecided,
    LimitSource,
    StopShipmentCleared,
    StopShipmentStarted,
    limit_change_kind,
)
from services.underwriting.models import (
    Buyer,
    BuyerSignal,
    CreditLimit,
    IndicatorDeclaration,
    LimitAmount,
    LimitRequest,
    Policy,
    StopShipment,
    events,
)
from services.underwriting.schemas import (
    BuyerGradedRead,
    CountryRiskRead,
    DecisionCreate,
    DecisionReason,
    ExternalLimitCreate,
    IndicatorsConfirm,
    IndicatorsIn,
    LimitChangeCreate,
    LimitChangeRead,
    LimitList,
    LimitNotHalvedRead,
    LimitRead,
    LimitRequestCreate,
    LimitRequestList,
    LimitRequestRead,
    RecordedLimitRead,
    SignalCreate,
    SignalRead,
)
from services.underwriting.service import (
    Context,
    buyer_indicators,
    declare_indicators,
    grade_profile,
    listed_level,
    owned_policy_and_parties,
    policy_parties,
    regrade,
    signals_for,
    stored_indicators,
    visible_buyer,
    visible_policy,
)
from shared.calendar import in_history
from shared.contracts import UNDERWRITER_SIGNAL_KINDS, money_json
from shared.db import UnitsOfWork, new_id, utcnow
from shared.events import Party, announce
from shared.metrics import LIMIT_DECISIONS, count_at_commit
from shared.money import Money, minor_units
from shared.pagination import PageRequest, fetch_page
from shared.problems import (
    ALREADY_DECIDED,
    BUYER_NOT_COVERED,
    DECLARER_REQUIRED,
    NO_PENDING_DECLARATION,
    POLICY_INACTIVE,
    RETROACTIVE_REDUCTION,
    SINGLE_BUYER_CAP_EXCEEDED,
    Problem,
    conflict,
    invalid,
    not_found,
    unprocessable,
)
from shared.usecase import amount_in, money_read, non_negative_amount_in, positive_amount_in

# Distinct grading profiles graded per round trip of the whole-book re-grade (fixed memory).
_PROFILE_CHUNK = 1000

# ---------------------------------------------------------------- limits


async def _history_of(ctx: Context, limit_id: str) -> list[LimitAmount]:
    return (await repo.history(ctx.session, [limit_id])).get(limit_id, [])


def _refuse_above_cap(policy: Policy, amount: Money) -> None:
    """A person may not grant, record or change a limit above the single-buyer cap."""
    if rules.exceeds_single_buyer_cap(amount.amount, policy.single_buyer_cap):
        cap = Money(policy.single_buyer_cap or Decimal(0), policy.currency)
        raise unprocessable(
            SINGLE_BUYER_CAP_EXCEEDED,
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
    source: LimitSource,
    payment_terms_days: int | None = None,
    previous: Decimal | None = None,
    history: list[LimitAmount] | None = None,
    parties: list[Party] | None = None,
    decided_by: str | None = None,
) -> LimitChangeRead:
    """Record a new amount in force from `effective_from` on (decided by `decided_by`, else the
    caller): the entry running on that date ends
    there, and entries that had not started by then are superseded (kept for audit). The amount
    carries the payment terms given, else those of the amount it replaces. The policy's parties
    hear of it (`limit.changed`), with `previous` as the amount it replaces if given, else the
    one in force on that date. The limit's `history` and the policy's `parties` are read unless
    the caller has them already."""
    if history is None:
        history = await _history_of(ctx, limit.id)
    entries = views.history_entries(history)
    old = rules.amount_in_force(entries, effective_from) if previous is None else previous
    terms = payment_terms_days if payment_terms_days is not None else rules.terms_on(
        entries, effective_from)  # fmt: skip
    now = utcnow()
    cancelled = []
    for entry in history:
        superseded, entry.effective_to = rules.entry_after_change(
            entry.effective_from, entry.effective_to, effective_from)  # fmt: skip
        if superseded and entry.superseded_at is None:
            entry.superseded_at = now
            if entry.effective_from > ctx.today:  # scheduled, now never to take effect
                cancelled.append(entry)
    return await _put_amount(
        ctx, limit, old=old, new_amount=new_amount, effective_from=effective_from,
        effective_to=None, terms=terms, reason=reason, source=source, now=now, parties=parties,
        decided_by=decided_by, cancelled=cancelled,
    )  # fmt: skip


async def _put_amount(
    ctx: Context,
    limit: CreditLimit,
    *,
    old: Decimal | None,
    new_amount: Money,
    effective_from: dt.date,
    effective_to: dt.date | None,
    terms: int | None,
    reason: str,
    source: LimitSource,
    now: dt.datetime,
    halving: bool = False,
    parties: list[Party] | None = None,
    decided_by: str | None = None,
    cancelled: Sequence[LimitAmount] = (),
) -> LimitChangeRead:
    """An amount of the limit's history from `effective_from` until `effective_to` (the entries
    it replaces already ended or superseded: `cancelled`, those that were to start later),
    heard of by the policy's parties (`limit.changed`, from `old`)."""
    entry = LimitAmount(
        id=new_id("lam"), limit_id=limit.id, amount=new_amount.amount,
        payment_terms_days=terms, effective_from=effective_from, effective_to=effective_to,
        reason=reason, source=source, decided_by=decided_by or ctx.caller.subject,
        created_at=now,
    )  # fmt: skip
    ctx.session.add(entry)
    await ctx.session.flush()
    currency = new_amount.currency
    scheduled = [views.scheduled_amount_read(e, currency)
                 for e in sorted(cancelled, key=lambda e: e.effective_from)]  # fmt: skip
    changed = LimitChanged(
        limit_id=limit.id, policy_id=limit.policy_id, buyer_id=limit.buyer_id,
        change=limit_change_kind(old, new_amount.amount, halving=halving),
        previous_amount=None if old is None else money_read(old, currency),
        new_amount=money_read(new_amount.amount, currency), effective_from=effective_from,
        payment_terms_days=terms, reason=reason, source=source, cancelled=scheduled,
    )  # fmt: skip
    if parties is None:
        parties = await repo.parties_of_policy(ctx.session, limit.policy_id)
    await announce(ctx.session, events, changed, subject_id=limit.id, parties=parties)
    read = views.limit_change_read(entry, limit, old, new_amount, effective_from, reason)
    return read.model_copy(update={"cancelled": scheduled}) if scheduled else read


async def _limit_for(ctx: Context, policy_id: str, buyer_id: str) -> CreditLimit:
    """The limit of a (policy, buyer), created on the first decision, locked until the commit:
    concurrent first decisions on one pair create it once and then take their turns (the one
    that inserts it holds it until its commit; the others wait on the insert, then lock it)."""
    limit = await repo.credit_limit(ctx.session, policy_id, buyer_id, for_update=True)
    if limit is not None:
        return limit
    limit = CreditLimit(id=new_id("lim"), policy_id=policy_id, buyer_id=buyer_id,
                        decided_on=ctx.today, created_at=utcnow())  # fmt: skip
    if await repo.add_unless_taken(ctx.session, limit, "policy_id", "buyer_id"):
        return limit
    raced = await repo.credit_limit(ctx.session, policy_id, buyer_id, for_update=True)
    assert raced is not None
    return raced


async def _grant(
    ctx: Context, request: LimitRequest, amount: Money, reason: str, parties: list[Party],
    max_credit_period_days: int, limit: CreditLimit | None = None,
    history: list[LimitAmount] | None = None, reduction_notice_days: int = 0,
) -> LimitChangeRead | None:  # fmt: skip
    """Announce a request's decision to the policy's `parties`, then put the decided amount, on
    the request's payment terms, in force: from today, or from tomorrow when it takes cover away
    (a lower amount or shorter terms, the policy's `max_credit_period_days` being the terms of an
    amount granted without any), and a lower amount only after `reduction_notice_days` (an
    underwriter's decision: `rules.grant_effective_from`). `limit`: the request's limit, locked
    already, with its `history` (the entries not superseded) when it existed."""
    if limit is None:
        limit = await _limit_for(ctx, request.policy_id, request.buyer_id)
    if amount.is_positive():
        request.limit_id = limit.id
    await _announce_decision(ctx, request, amount.currency, parties)
    if not amount.is_positive():
        return None
    if history is None:
        history = await _history_of(ctx, limit.id)
    entries = views.history_entries(history)
    effective = rules.grant_effective_from(
        current=rules.amount_in_force(entries, ctx.today),
        current_terms=rules.terms_on(entries, ctx.today), amount=amount.amount,
        terms=request.payment_terms_days, today=ctx.today,
        max_credit_period_days=max_credit_period_days,
        reduction_notice_days=reduction_notice_days,
    )  # fmt: skip
    if effective is None:
        return None
    return await apply_limit_change(
        ctx, limit, new_amount=amount, effective_from=effective, reason=reason, source="request",
        payment_terms_days=request.payment_terms_days, history=history, parties=parties,
        decided_by=request.decided_by,  # "engine" when the decision table decided it
    )  # fmt: skip


async def _announce_decision(
    ctx: Context, request: LimitRequest, currency: str, parties: list[Party]
) -> None:
    """The policy's `parties` hear of a request's decision (`limit_request.decided`)."""
    assert request.decided_at is not None
    decided = LimitRequestDecided(
        request_id=request.id, policy_id=request.policy_id, buyer_id=request.buyer_id,
        status=rules.LimitRequestStatus(request.status),
        requested_amount=money_read(request.requested_amount, currency),
        decided_amount=None if request.decided_amount is None
        else money_read(request.decided_amount, currency),
        payment_terms_days=request.payment_terms_days,
        reasons=[DecisionReason(code=r["code"], message=r["message"]) for r in request.reasons],
        decided_by="engine" if request.decided_by == "engine" else "underwriter",
        decided_at=request.decided_at, limit_id=request.limit_id,
    )  # fmt: skip
    await announce(ctx.session, events, decided, subject_id=request.id, parties=parties)


async def get_limit_request(ctx: Context, request_id: str) -> LimitRequestRead:
    """A limit request for staff or the policyholder of its policy; another party's is a 404
    naming only the id asked for, as for one that does not exist."""
    found = await repo.limit_request(ctx.session, request_id)
    if found is None:
        raise not_found("limit request", request_id)
    policy = await _policy_seen_through(ctx, found.policy_id, "limit request", request_id)
    return views.request_read(found, policy.currency)


async def list_limit_requests(
    ctx: Context, status: rules.LimitRequestStatus | None, page: PageRequest
) -> LimitRequestList:
    """The underwriters' review queue, oldest first."""
    rows, cursor = await fetch_page(ctx.session, repo.limit_requests_listed(status=status), page,
                                    created_at=LimitRequest.created_at,
                                    ident=LimitRequest.id)  # fmt: skip
    currencies = await repo.policy_currencies(ctx.session, [r.policy_id for r in rows])
    items = [views.request_read(r, currencies[r.policy_id]) for r in rows]
    return LimitRequestList(items=items, next_cursor=cursor)


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


async def request_limit(ctx: Context, policy_id: str, data: LimitRequestCreate) -> LimitRequestRead:
    """A policyholder asks for a limit on a buyer; the decision table answers at once."""
    policy, parties = await owned_policy_and_parties(ctx, policy_id)
    # The buyer's row is held (FOR KEY SHARE, the lock the request's row takes on it) before the
    # limit is locked: a signal, which locks the buyer and then its limits, waits for this
    # request instead of deadlocking with it.
    standing = await repo.buyer_standing(ctx.session, data.buyer_id, policy_id=policy.id)
    if standing is None:
        raise not_found("buyer", data.buyer_id)
    buyer = standing.buyer
    c = policy.currency
    amount = Money(positive_amount_in(data.amount, c, ["body", "amount", "amount"]), c)
    # The limit (if any) is locked before it is read: an underwriter's change made meanwhile is
    # either seen by this request (and refers it) or waits for it.
    limit = await repo.credit_limit(ctx.session, policy.id, buyer.id, for_update=True)
    recorded = [] if limit is None else (
        await repo.history(ctx.session, [limit.id], superseded_too=True)).get(limit.id, [])  # fmt: skip
    equity = buyer.indicators.get("equity") or {}
    known_equity = buyer_indicators(buyer.indicators).equity
    facts = rules.RequestFacts(
        amount=amount, payment_terms_days=data.payment_terms_days,
        max_credit_period_days=policy.max_credit_period_days, legal_form=buyer.legal_form,
        related_to_policyholder=data.related_to_policyholder or standing.declared_affiliate,
        grade=buyer.grade,
        sanctioned=standing.sanctioned,
        country_risk_level=listed_level(ctx, standing.country_risk_level),
        country_covered=rules.country_covered(buyer.country, policy.covered_countries),
        policy_open=rules.policy_open(ctx.today, policy.end_date),
        single_buyer_cap=None if policy.single_buyer_cap is None
        else Money(policy.single_buyer_cap, c),
        equity=rules.equity_that_counts(known_equity, equity.get("currency"), c),
        equity_currency_elsewhere=rules.equity_currency_elsewhere(known_equity,
                                                                  equity.get("currency"), c),
        reduction=rules.standing_reduction(views.limit_acts(recorded)),
    )  # fmt: skip
    decision = rules.decide_limit_request(facts, ctx.settings.decision_table())
    now = utcnow()
    decided = not rules.awaits_decision(decision.status)
    request = LimitRequest(
        id=new_id("lrq"), policy_id=policy.id, buyer_id=buyer.id, requested_amount=amount.amount,
        decided_amount=None if decision.decided_amount is None else decision.decided_amount.amount,
        payment_terms_days=data.payment_terms_days,
        related_to_policyholder=data.related_to_policyholder, status=decision.status,
        reasons=[{"code": r.code, "message": r.message} for r in decision.reasons],
        grade=buyer.grade, requested_by=ctx.caller.subject,
        decided_by=rules.ENGINE if decided else None, decided_at=now if decided else None,
        created_at=now,
    )  # fmt: skip
    ctx.session.add(request)  # inserted with the limit it names, if any, by the next flush
    if not decided:  # a referral announces nothing (no event), but is counted
        count_at_commit(ctx.session, LIMIT_DECISIONS.labels(decision.status, "engine"))
    if decision.decided_amount is not None:
        await _grant(ctx, request, decision.decided_amount,
                     f"limit request {request.id}: {decision.status}", parties,
                     policy.max_credit_period_days, limit,
                     None if limit is None else [e for e in recorded if e.superseded_at is None])  # fmt: skip
    await ctx.session.flush()
    return views.request_read(request, policy.currency)


async def decide_request(ctx: Context, request_id: str, data: DecisionCreate) -> LimitRequestRead:
    """An underwriter's final decision on a referred request; deciding twice is a conflict."""
    request = await repo.limit_request(ctx.session, request_id, for_update=True)
    if request is None:
        raise not_found("limit request", request_id)
    policy = await repo.policy(ctx.session, request.policy_id)
    assert policy is not None
    if not rules.awaits_decision(request.status):
        raise conflict(
            ALREADY_DECIDED,
            f"limit request {request_id} was already decided: {request.status}",
            decided_status=request.status,
        )
    if data.decision != rules.UnderwriterAct.REFUSE and not rules.policy_open(
        ctx.today, policy.end_date
    ):
        raise _policy_ended(policy, "a referred request on it can only be refused")
    c = policy.currency
    given = None
    if data.amount is not None and data.decision == rules.UnderwriterAct.REFUSE:
        given = data.amount.amount  # refused by the rules (ambiguous), whatever its currency
    elif data.amount is not None:
        given = amount_in(data.amount, c, ["body", "amount", "amount"])
    buyer = await repo.buyer(ctx.session, request.buyer_id)
    assert buyer is not None
    try:
        answer = rules.underwriter_decision(
            data.decision, requested=request.requested_amount, amount=given,
            not_covered=await _why_not_covered(ctx, buyer, policy.id,
                                               related=request.related_to_policyholder),
        )  # fmt: skip
    except rules.BuyerNotCovered as refused:
        raise unprocessable(BUYER_NOT_COVERED, refused.message) from None
    except rules.DecisionRefused as refused:
        raise invalid(["body", *refused.loc], refused.message) from None
    decided = Money(answer.decided, c)
    if answer.status != rules.REFUSED:
        _refuse_above_cap(policy, decided)
    request.status, request.decided_amount = answer.status, decided.amount
    request.decided_by, request.decided_at = ctx.caller.subject, utcnow()
    request.decision_reason = data.reason
    request.reasons = [*request.reasons, {"code": answer.code, "message": data.reason}]
    await _grant(ctx, request, decided, f"underwriter decision on {request.id}: {data.reason}",
                 await repo.parties_of_policy(ctx.session, policy.id),
                 policy.max_credit_period_days,
                 reduction_notice_days=policy.reduction_notice_days)  # fmt: skip
    await ctx.session.flush()
    return views.request_read(request, policy.currency)


async def record_external_limit(
    ctx: Context, policy_id: str, data: ExternalLimitCreate
) -> RecordedLimitRead:
    """A limit granted outside the engine (a migrated book), possibly from a past date: a first
    recording or a raise may start in the past, but the cover already answered stands
    (`rules.recording_allowed_from`): a recording may lower what is in force from tomorrow on
    only, whoever granted it. Its date is not after the policy's end; the
    amount already in force from that date on, with its terms, is not recorded again (a
    migration replayed: `unchanged`, no entry, no event)."""
    policy = await repo.policy(ctx.session, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    # Held until the commit, so that an insolvency recorded meanwhile either waits for this
    # recording (and withdraws it) or is seen by it (and refuses it).
    buyer = await repo.buyer_held_against_signals(ctx.session, data.buyer_id)
    if buyer is None:
        raise not_found("buyer", data.buyer_id)
    c = policy.currency
    amount = Money(positive_amount_in(data.amount, c, ["body", "amount", "amount"]), c)
    _refuse_after_policy_end(policy, data.effective_from)
    if data.payment_terms_days and data.payment_terms_days > policy.max_credit_period_days:
        raise invalid(["body", "payment_terms_days"],
                      "must not exceed the policy's maximum credit period "
                      f"({policy.max_credit_period_days} days)")  # fmt: skip
    _refuse_above_cap(policy, amount)
    limit = await _limit_for(ctx, policy_id, data.buyer_id)
    history = await _history_of(ctx, limit.id)
    entries = views.history_entries(history)
    await _refuse_raise_on_uncovered_buyer(ctx, buyer, policy_id, entries, amount.amount,
                                           data.effective_from)  # fmt: skip
    terms = data.payment_terms_days or rules.terms_on(entries, data.effective_from)
    allowed_from = rules.recording_allowed_from(
        entries, amount=amount.amount, terms=terms, effective_from=data.effective_from,
        today=ctx.today, max_credit_period_days=policy.max_credit_period_days,
    )  # fmt: skip
    if allowed_from is not None:
        raise unprocessable(
            RETROACTIVE_REDUCTION,
            "a recorded limit may not lower the amount or shorten the terms in force on a day "
            "already past, nor today: goods shipped today stay covered",
            earliest_effective_from=allowed_from.isoformat(),
        )
    unchanged = rules.changes_nothing(entries, amount=amount.amount, terms=terms,
                                      effective_from=data.effective_from,
                                      max_credit_period_days=policy.max_credit_period_days)  # fmt: skip
    if not unchanged:
        limit.decided_on = min(limit.decided_on, data.effective_from)
        await apply_limit_change(ctx, limit, new_amount=amount,
                                 effective_from=data.effective_from, reason=data.reason,
                                 source="external", payment_terms_days=data.payment_terms_days,
                                 history=history)  # fmt: skip
    read = await limit_read(ctx, limit, policy.currency)
    return RecordedLimitRead.model_construct(**dict(read), unchanged=unchanged)


async def change_limit(ctx: Context, limit_id: str, data: LimitChangeCreate) -> LimitChangeRead:
    """An underwriter changes a limit: an increase may apply today; a reduction or withdrawal
    only to shipments from tomorrow on (by default after the notice period); a date given is
    not after the policy's end, and a policy that has ended takes no change at all. The amount
    already in force from that date on is not recorded again (`unchanged`, no entry, no event)."""
    limit = await repo.credit_limit_by_id(ctx.session, limit_id, for_update=True)
    if limit is None:
        raise not_found("limit", limit_id)
    policy = await repo.policy(ctx.session, limit.policy_id)
    assert policy is not None
    if not rules.policy_open(ctx.today, policy.end_date):
        raise _policy_ended(policy, "its limits no longer change")
    c = policy.currency
    new_amount = Money(
        non_negative_amount_in(data.new_amount, c, ["body", "new_amount", "amount"]), c
    )
    if data.effective_from is not None:
        _refuse_after_policy_end(policy, data.effective_from)
    _refuse_above_cap(policy, new_amount)
    history = await _history_of(ctx, limit.id)
    entries = views.history_entries(history)
    current = rules.amount_in_force(entries, ctx.today)
    effective, allowed = rules.change_effective_from(
        current=current, new_amount=new_amount.amount, requested=data.effective_from,
        today=ctx.today, notice_days=policy.reduction_notice_days,
    )  # fmt: skip
    if data.effective_from is None:
        _refuse_notice_past_policy_end(policy, effective, ctx.today)
    buyer = await repo.buyer(ctx.session, limit.buyer_id)
    assert buyer is not None
    await _refuse_raise_on_uncovered_buyer(ctx, buyer, policy.id, entries, new_amount.amount,
                                           effective)  # fmt: skip
    if not allowed and rules.is_reduction(current, new_amount.amount):
        raise unprocessable(
            RETROACTIVE_REDUCTION,
            "a reduction or withdrawal applies only to shipments from tomorrow on",
            earliest_effective_from=rules.earliest_reduction_date(ctx.today).isoformat(),
        )
    if not allowed:
        raise invalid(["body", "effective_from"], "must not be in the past")
    if rules.changes_nothing(
        entries,
        amount=new_amount.amount,
        terms=rules.terms_on(entries, effective),
        effective_from=effective,
        max_credit_period_days=policy.max_credit_period_days,
    ):
        old = rules.amount_in_force(entries, effective)
        in_force = next(e for e in history
                        if in_history(effective, e.effective_from, e.effective_to))  # fmt: skip
        read = views.limit_change_read(in_force, limit, old, new_amount, effective, data.reason)
        return read.model_copy(update={"unchanged": True})
    return await apply_limit_change(ctx, limit, new_amount=new_amount, effective_from=effective,
                                    reason=data.reason, source="change", history=history)  # fmt: skip


def _policy_ended(policy: Policy, consequence: str) -> Problem:
    """The answer to granting or changing a limit on a policy that has ended."""
    return unprocessable(
        POLICY_INACTIVE,
        f"the policy ended on {policy.end_date.isoformat()}: it covers no shipment after that, "
        f"so {consequence} (a limit request on it is refused too)",
        end_date=policy.end_date.isoformat(),
    )


def _refuse_after_policy_end(policy: Policy, effective_from: dt.date) -> None:
    """A person's amount takes effect by the policy's end date (`rules.policy_open`)."""
    if not rules.policy_open(effective_from, policy.end_date):
        raise invalid(
            ["body", "effective_from"],
            f"must not be after the policy's end date ({policy.end_date.isoformat()}): from then "
            "on the limit covers no shipment of the policy",
        )


def _refuse_notice_past_policy_end(policy: Policy, effective_from: dt.date, today: dt.date) -> None:
    """A reduction sent with no date takes effect after the reduction notice period; on a policy
    that ends within that period the day falls after the end, when the limit covers nothing
    any more: the underwriter dates it by the end (from tomorrow on) or lets it lapse with the
    policy (`rules.policy_open`, the rule of a date given)."""
    if rules.policy_open(effective_from, policy.end_date):
        return
    end = policy.end_date.isoformat()
    remedy = (
        f"give an effective_from from {rules.earliest_reduction_date(today).isoformat()} to {end}"
        if rules.policy_open(rules.earliest_reduction_date(today), policy.end_date)
        else "the limit lapses with the policy"
    )
    raise invalid(
        ["body", "effective_from"],
        f"the policy ends on {end}, within the reduction notice period of "
        f"{policy.reduction_notice_days} days: a reduction dated by default (today + the notice "
        f"period, {effective_from.isoformat()}) would never take effect; {remedy}",
    )


async def _why_not_covered(
    ctx: Context, buyer: Buyer, policy_id: str, *, related: bool = False
) -> str | None:
    """Why no person may grant or raise a limit on the buyer under the policy
    (`rules.why_not_covered`: insolvent, sanctioned, or not insurable), None when one may."""
    sanctioned, affiliate = await repo.buyer_barred(ctx.session, buyer.id, policy_id=policy_id)
    return rules.why_not_covered(
        insolvent=buyer.grade >= ctx.settings.decision_table().insolvent_grade,
        sanctioned=sanctioned, legal_form=buyer.legal_form,
        related_to_policyholder=related or affiliate,
    )  # fmt: skip


async def _refuse_raise_on_uncovered_buyer(
    ctx: Context, buyer: Buyer, policy_id: str, entries: list[rules.HistoryEntry],
    new_amount: Decimal, effective_from: dt.date,
) -> None:  # fmt: skip
    """A person's new amount for the limit of a buyer the insurer does not cover (changed or
    recorded) stands from its date on: it may not be above what is in force on any of those
    days, so that it never undoes the withdrawal an insolvency made, nor covers a sanctioned or
    uninsurable buyer."""
    why = await _why_not_covered(ctx, buyer, policy_id)
    if rules.raises_an_uncovered_buyers_limit(
        uncovered=why is not None, new_amount=new_amount,
        in_force=rules.lowest_in_force_from(entries, effective_from),
    ):  # fmt: skip
        raise unprocessable(BUYER_NOT_COVERED, f"{why}: its limit may be lowered, never raised")


async def limit_read(ctx: Context, limit: CreditLimit, currency: str) -> LimitRead:
    kept = await repo.history(ctx.session, [limit.id], superseded_too=True)
    return views.limit_read(limit, kept.get(limit.id, []), currency, ctx.today)


async def list_limits(ctx: Context, policy_id: str, page: PageRequest) -> LimitList:
    """One limit per buyer of a policy the caller may see, with its history of amounts."""
    policy, _ = await visible_policy(ctx, policy_id)
    limits, cursor = await limits_page(ctx, policy_id, page)
    kept = await repo.history(ctx.session, [lim.id for lim in limits], superseded_too=True)
    items = [views.limit_read(lim, kept.get(lim.id, []), policy.currency, ctx.today)
             for lim in limits]  # fmt: skip
    return LimitList(items=items, next_cursor=cursor)


async def limits_page(
    ctx: Context, policy_id: str, page: PageRequest
) -> tuple[list[CreditLimit], str | None]:
    rows, cursor = await fetch_page(ctx.session, repo.limits_with_history(policy_id), page,
                                    created_at=CreditLimit.created_at, ident=CreditLimit.id)  # fmt: skip
    return list(rows), cursor


# ---------------------------------------------------------------- signals


async def record_signal(ctx: Context, buyer_id: str, data: SignalCreate) -> SignalRead:
    """A signal on a buyer: recorded, the grade recomputed, and the limits and shipments changed
    as `rules.signal_effect` says. The grade is computed with the signal counted before its row
    is written, so the row is inserted once, with the grade it led to. A signal that does not
    weigh (`rules.signal_weighs`: a creditor's without a stake in the buyer) is recorded as such,
    with no points, and changes nothing: no grade, no limit, no shipment. An underwriter sends
    the kinds api.md lists, a service also those only the services report."""
    if not rules.may_record_signal(
        data.kind,
        by_service=ctx.caller.role == "service",
        underwriters_kinds=UNDERWRITER_SIGNAL_KINDS,
    ):
        raise invalid(["body", "kind"],
                      f"{data.kind} is sent only by the services; an underwriter sends one of "
                      f"{', '.join(UNDERWRITER_SIGNAL_KINDS)}")  # fmt: skip
    if ctx.caller.role != "service":  # who reports a collection case's delay: collections only
        for field in ("creditor_id", "case_id"):
            if getattr(data, field) is not None:
                raise invalid(["body", field], "is set by the collections service only")
    if data.observed_on > ctx.today:  # domain.md: a signal cannot be observed after today
        raise invalid(["body", "observed_on"], f"must not be after today ({ctx.today})")
    found = await repo.buyer_to_grade(ctx.session, buyer_id)
    if found is None:
        raise not_found("buyer", buyer_id)
    buyer, level = found
    named: repo.PolicyOfSignal | None = None
    if data.kind in rules.POLICY_SIGNALS and data.policy_id is None:
        raise invalid(["body", "policy_id"], f"a {data.kind} signal needs a policy_id")
    if data.policy_id is not None:
        named = await repo.policy_of_signal(ctx.session, data.policy_id, buyer.id)
        if named is None:
            raise not_found("policy", data.policy_id)
    grade_before = buyer.grade
    weighed = await _weighs(ctx, buyer.id, data)
    points, grade_after = Decimal(0), grade_before
    if weighed:
        points, grade_after = await _weigh_signal(ctx, buyer, level, data)
    signal = BuyerSignal(
        id=new_id("sig"), buyer_id=buyer.id, policy_id=data.policy_id, kind=data.kind,
        observed_on=data.observed_on, details=data.details, creditor_id=data.creditor_id,
        case_id=data.case_id, points=points, grade_before=grade_before,
        grade_after=grade_after, weighed=weighed, created_by=ctx.caller.subject,
        created_at=utcnow(),
    )  # fmt: skip
    ctx.session.add(signal)  # inserted by the next flush
    changes_made: list[LimitChangeRead] = []
    not_halved: list[LimitNotHalvedRead] = []
    stop = None
    if weighed:
        effect = rules.signal_effect(data.kind, grade_before=grade_before, grade_after=grade_after,
                                     halve_from_grade=ctx.settings.halve_from_grade)  # fmt: skip
        if effect.limits == rules.LimitAction.WITHDRAW:
            changes_made = await _withdraw_all(ctx, buyer, data.observed_on)
        elif effect.limits == rules.LimitAction.HALVE:
            changes_made, not_halved = await _halve_all(ctx, buyer, grade_after)
        stop = None if named is None else effect.stop_shipment
    if stop is not None and named is not None:
        await _stop_or_clear(ctx, named, buyer, stop, data.observed_on)
    await ctx.session.flush()
    return SignalRead(
        id=signal.id, created_at=signal.created_at, buyer_id=buyer.id, kind=data.kind,
        observed_on=data.observed_on, policy_id=data.policy_id, details=data.details,
        creditor_id=data.creditor_id, case_id=data.case_id,
        points=signal.points, grade_before=grade_before, grade=grade_after,
        weighed=weighed, unweighed_reason=views.unweighed_reason_read(weighed),
        limit_changes=changes_made, limits_not_halved=not_halved, stop_shipment=stop,
    )  # fmt: skip


async def regrade_aged(ctx: Context) -> int:
    """The buyers whose grade still counts a signal that has stopped weighing since they were
    last graded (a signal weighs through its day + the memory, `rules.signals_counted_after`)
    are graded again as of today, as a signal's grade change is: their grade history takes the
    entry, the parties hear of a change, and a grade newly reaching the halving grades halves
    their limits (a favourable signal forgotten may worsen a grade). Idempotent: a buyer graded
    since is left alone. How many buyers were graded again."""
    memory = ctx.settings.signal_memory_days
    through = rules.signals_counted_after(ctx.today, memory)
    since = through - dt.timedelta(days=memory + 1)  # a year of expiries back: a long outage
    graded = 0
    for buyer_id, graded_on, observed in await repo.buyers_with_signals_aged(
        ctx.session, since=since, through=through
    ):  # fmt: skip
        if graded_on >= observed + dt.timedelta(days=memory + 1):  # graded once it was forgotten
            continue
        found = await repo.buyer_to_grade(ctx.session, buyer_id)
        if found is None:
            continue
        buyer, level = found
        await _regrade_following(ctx, buyer, cause="signal", level=listed_level(ctx, level))
        graded += 1
    await ctx.session.flush()
    return graded


async def _regrade_following(
    ctx: Context, buyer: Buyer, *, cause: GradeCause, level: int | None = None
) -> tuple[list[LimitChangeRead], list[LimitNotHalvedRead]]:
    """The buyer graded again (`regrade`) and its limits following the new grade as after a
    signal's: halved when it newly reaches the halving grade (`_halve_all`); the changes made
    and the limits left at their amount."""
    before = buyer.grade
    grade = await regrade(ctx, buyer, cause=cause, level=level)
    if rules.reaches_halving_grade(before, grade.grade,
                                   halve_from_grade=ctx.settings.halve_from_grade):  # fmt: skip
        return await _halve_all(ctx, buyer, grade.grade)
    return [], []


async def update_indicators(ctx: Context, buyer_id: str, data: IndicatorsIn) -> BuyerGradedRead:
    """A policyholder declares indicators (kept as its own declaration, not graded) on its own
    buyers only; an underwriter's are confirmed: they grade the buyer again, and its limits
    follow (unless they are the figures it has already). A pending declaration of any indicator
    the underwriter's figures give is superseded by them (confirmed later, it would put an older
    figure back); one declaring none of them stays pending, as declared (the answer lists it)."""
    buyer = await visible_buyer(ctx, buyer_id, for_update=True)
    values = stored_indicators(data)
    if not values:
        raise invalid(
            ["body"], "name at least one indicator: a declaration of nothing says nothing"
        )
    if ctx.caller.role == "policyholder":
        party = ctx.caller.party_id or ""
        own = await repo.declarations_of(ctx.session, [buyer.id], policyholder_id=party)
        declared = declare_indicators(ctx, buyer, values, next(iter(own.get(buyer.id, [])), None))
        changes: tuple[list[LimitChangeRead], list[LimitNotHalvedRead]] = ([], [])
        return await _graded_read(ctx, buyer, [declared], *changes)
    entered = {**buyer.indicators, **values}
    unchanged = entered == buyer.indicators
    buyer.indicators = entered
    found = await repo.declarations_of(ctx.session, [buyer.id], pending_only=True)
    left: list[IndicatorDeclaration] = []
    for declaration in found.get(buyer.id, []):
        if rules.declaration_decided(declaration.indicators, values):
            _decide(ctx, declaration, "superseded")
        else:
            left.append(declaration)
    changes = ([], [])
    if not unchanged:  # figures the buyer already has grade nothing again (no history entry)
        changes = await _regrade_following(ctx, buyer, cause="indicators")
    return await _graded_read(ctx, buyer, left, *changes)


async def confirm_indicators(
    ctx: Context, buyer_id: str, data: IndicatorsConfirm | None = None
) -> BuyerGradedRead:
    """An underwriter confirms the indicators one policyholder declared: they grade the buyer
    again, and its limits follow. `policyholder_id` names the declaration (null: the one kept
    unattributed); not named, the only pending one. Several pending and none named is a 409
    (`declarer-required`), as is a declarer named with nothing pending; none pending and none
    named answers the buyer as it is. Only a confirmation that changes the buyer's indicators
    grades it again (a grade history entry says something changed)."""
    buyer = await repo.buyer(ctx.session, buyer_id, for_update=True)
    if buyer is None:
        raise not_found("buyer", buyer_id)
    found = await repo.declarations_of(ctx.session, [buyer.id], pending_only=True)
    pending = found.get(buyer.id, [])
    declarers = [d.policyholder_id for d in pending]
    named = data is not None and "policyholder_id" in data.model_fields_set
    if named:
        assert data is not None
        chosen = [d for d in pending if d.policyholder_id == data.policyholder_id]
        if not chosen:
            raise conflict(NO_PENDING_DECLARATION, "the policyholder named has no pending "
                           "declaration of indicators on this buyer",
                           pending_declarers=declarers)  # fmt: skip
    elif len(pending) > 1:
        raise conflict(DECLARER_REQUIRED, "several policyholders' declarations are pending: name "
                       "the one to confirm by its `policyholder_id`",
                       pending_declarers=declarers)  # fmt: skip
    else:
        chosen = pending
    confirmed = dict(buyer.indicators)
    for declaration in chosen:
        confirmed.update(declaration.indicators)
        _decide(ctx, declaration, "confirmed")
    changes: tuple[list[LimitChangeRead], list[LimitNotHalvedRead]] = ([], [])
    if confirmed != buyer.indicators:
        buyer.indicators = confirmed
        changes = await _regrade_following(ctx, buyer, cause="indicators")
    left = [d for d in pending if d not in chosen]
    return await _graded_read(ctx, buyer, left, *changes)


def _decide(ctx: Context, declaration: IndicatorDeclaration, status: str) -> None:
    """A pending declaration confirmed or superseded, by whom and when (kept: who declared the
    figures now confirmed stays known)."""
    declaration.status = status
    declaration.decided_by = ctx.caller.subject
    declaration.decided_at = utcnow()


async def _graded_read(
    ctx: Context, buyer: Buyer, declarations: Sequence[IndicatorDeclaration],
    changes: list[LimitChangeRead], left: list[LimitNotHalvedRead],
) -> BuyerGradedRead:  # fmt: skip
    await ctx.session.flush()
    read = views.buyer_read(buyer, ctx.caller, declarations)
    return BuyerGradedRead.model_construct(**dict(read), limit_changes=changes,
                                           limits_not_halved=left)  # fmt: skip


async def _weighs(ctx: Context, buyer_id: str, data: SignalCreate) -> bool:
    """Whether the signal weighs on the buyer's grade (`rules.signal_weighs`), the creditor's
    stake read only for a signal that needs one."""
    has_stake = False
    if data.creditor_id is not None and rules.stake_needed(data.kind, data.creditor_id):
        has_stake = await repo.creditor_has_stake(ctx.session, data.creditor_id, buyer_id)
    return rules.signal_weighs(data.kind, data.creditor_id, creditor_has_stake=has_stake)


async def _weigh_signal(
    ctx: Context, buyer: Buyer, level: int | None, data: SignalCreate
) -> tuple[Decimal, int]:
    """The signal counted on the buyer: its indicators and insolvency as it changes them, the
    points it adds and the grade it leads to (regraded, from the day it was observed)."""
    indicators = rules.indicators_after_signal(data.kind, buyer.indicators)
    if indicators != buyer.indicators:
        buyer.indicators = indicators
    buyer.insolvent_since = rules.insolvent_since_after_signal(
        data.kind, data.observed_on, buyer.insolvent_since)  # fmt: skip
    # The grade is worked out with the signal counted, before its row is written: the known
    # signals are read once, for both. Recorded whatever it adds: a delay notified again under a
    # policy adds nothing to its grade.
    observed = rules.ObservedSignal(data.kind, data.observed_on, data.policy_id, data.creditor_id)
    known = await signals_for(ctx, buyer.id, data.observed_on)
    points = rules.points_when_recorded(
        observed, known, points=ctx.settings.signal_weights(),
        memory_days=ctx.settings.signal_memory_days,
    )  # fmt: skip
    grade = await regrade(ctx, buyer, cause="signal", graded_on=data.observed_on,
                          level=listed_level(ctx, level), signal=observed, known=known)  # fmt: skip
    return points, grade.grade


async def _stop_or_clear(
    ctx: Context, named: repo.PolicyOfSignal, buyer: Buyer, stop: bool, observed_on: dt.date
) -> None:
    """An overdue notified stops shipments to the buyer under the policy (once); arrears cleared
    end every open stop. The policy's parties hear of each start and end. (`named.stopped` says
    whether a stop is open: the open stops are read only to be cleared.)"""
    policy = named.policy
    parties = policy_parties(policy, named.banks)
    if stop and not named.stopped:
        started = StopShipment(
            id=new_id("stp"), policy_id=policy.id, buyer_id=buyer.id, notified_on=observed_on,
            cleared_on=None, created_at=utcnow())  # fmt: skip
        ctx.session.add(started)
        await announce(ctx.session, events, StopShipmentStarted(
            stop_shipment_id=started.id, policy_id=policy.id, buyer_id=buyer.id,
            notified_on=observed_on), subject_id=started.id, parties=parties)  # fmt: skip
    if not stop and named.stopped:
        for open_stop in await repo.open_stops(ctx.session, policy.id, buyer.id):
            cleared_on = rules.stop_cleared_on(observed_on, open_stop.notified_on)
            open_stop.cleared_on = cleared_on
            await announce(ctx.session, events, StopShipmentCleared(
                stop_shipment_id=open_stop.id, policy_id=policy.id, buyer_id=buyer.id,
                notified_on=open_stop.notified_on, cleared_on=cleared_on,
            ), subject_id=open_stop.id, parties=parties)  # fmt: skip


async def _withdraw_all(ctx: Context, buyer: Buyer, observed_on: dt.date) -> list[LimitChangeRead]:
    """An insolvency withdraws every limit on the buyer that has an amount above zero then or
    later (one starting after the withdrawal date too, reported as the amount it withdraws:
    `rules.amount_withdrawn`; their histories read at once)."""
    effective = rules.insolvency_withdrawal_date(observed_on, ctx.today)
    limits = await repo.limits_on_buyer(ctx.session, buyer.id)
    histories = await repo.history(ctx.session, [limit.id for limit, _, _ in limits])
    changes: list[LimitChangeRead] = []
    for limit, policy, banks in limits:
        history = histories.get(limit.id, [])
        entries = views.history_entries(history)
        if not rules.covers_from(entries, effective):
            continue  # nothing above zero from then on, nor starting later
        changes.append(await apply_limit_change(
            ctx, limit, new_amount=Money.zero(policy.currency), effective_from=effective,
            reason=f"buyer insolvency observed on {observed_on.isoformat()}: limit withdrawn",
            source="signal", previous=rules.amount_withdrawn(entries, effective),
            history=history, parties=policy_parties(policy, banks)))  # fmt: skip
    return changes


async def _halve_all(
    ctx: Context, buyer: Buyer, grade: int
) -> tuple[list[LimitChangeRead], list[LimitNotHalvedRead]]:
    """A downgrade to the halving grade halves every limit on the buyer after its policy's
    notice period (their histories read at once): each amount `rules.halved_again` says, a
    change of its own (a cut of a downgrade still to come is not halved again). A limit whose
    policy ends before that date is left as it is, with the reason (`rules.halving_lapses`)."""
    limits = await repo.limits_on_buyer(ctx.session, buyer.id)
    histories = await repo.history(ctx.session, [limit.id for limit, _, _ in limits])
    changes: list[LimitChangeRead] = []
    left: list[LimitNotHalvedRead] = []
    for limit, policy, banks in limits:
        days = policy.reduction_notice_days
        effective = rules.halving_effective_from(ctx.today, days)
        history = histories.get(limit.id, [])
        if rules.halving_lapses(effective, policy.end_date):
            if rules.covers_from(views.history_entries(history), ctx.today):
                left.append(LimitNotHalvedRead(
                    limit_id=limit.id, policy_id=policy.id, buyer_id=buyer.id,
                    reason=rules.LAPSES_WITH_POLICY,
                    message=rules.lapsing_message(effective, policy.end_date, days)))  # fmt: skip
            continue
        changes += await _halve(
            ctx, limit, history, effective=effective, currency=policy.currency,
            reason=_halving_reason(grade, days), parties=policy_parties(policy, banks),
        )  # fmt: skip
    return changes, left


async def _halve(
    ctx: Context, limit: CreditLimit, history: list[LimitAmount], *, effective: dt.date,
    currency: str, reason: str, parties: list[Party],
) -> list[LimitChangeRead]:  # fmt: skip
    """Halve every amount of the limit's `history` that a halving from `effective` halves
    (`rules.halved_again`): the one running then ends there, one starting later is superseded
    (kept for audit), and each is replaced by its half, on its terms, from `rules.halved_from`
    until its own end; each a change announced (`limit.changed`). Amounts of zero stay as they
    are, and so do the halves of a downgrade's cut still to come."""
    now = utcnow()
    written = {e.id: rules.WrittenAmount(e.source, e.effective_from, e.amount, e.created_at)
               for e in history}  # fmt: skip
    to_come = rules.halvings_to_come(written.values(), ctx.today)
    changes = []
    for entry in sorted(history, key=lambda e: e.effective_from):
        if not rules.halved_again(written[entry.id], entry.effective_to, effective, to_come):
            continue
        until = entry.effective_to
        superseded, entry.effective_to = rules.entry_after_change(
            entry.effective_from, until, effective)  # fmt: skip
        if superseded:
            entry.superseded_at = now
        changes.append(await _put_amount(
            ctx, limit, old=entry.amount, new_amount=rules.halved(entry.amount, currency),
            effective_from=rules.halved_from(entry.effective_from, effective),
            effective_to=until, terms=entry.payment_terms_days, reason=reason, source="signal",
            now=now, halving=True, parties=parties,
        ))  # fmt: skip
    return changes


def _halving_reason(grade: int, notice_days: int) -> str:
    return (
        f"buyer downgraded to grade {grade}: limit halved after the {notice_days}-day notice period"
    )


# ---------------------------------------------------------------- country risk


async def set_country_risk(
    ctx: Context, units: UnitsOfWork, country: str, level: int
) -> CountryRiskRead:
    """A country's risk level changes: every buyer of that country is graded again (an entry of
    its grade history), and its limits follow the new grade as after any other grade change,
    set-based over the whole book (`whole_book`), a slice of buyers per transaction, some slices
    at once. The level is committed first (a buyer graded meanwhile is graded at it), then the
    slices; the country keeps when its run began until every slice is done, so that a run cut
    short (a process killed) is taken up again by the next setting of the country, whatever its
    level. One run at a time per country, across replicas. The same level again changes nothing
    (but finishing a run cut short)."""
    async with units.hold(_regrade_lock_key(country)):
        async with units.open() as session:
            # Every grading at the level before is committed first: the run takes it up.
            await repo.hold_country_level(session, country)
            risk = await repo.country_risk_for_update(
                session, country, level=ctx.settings.default_country_risk_level,
                updated_by=ctx.caller.subject,
            )  # fmt: skip
            if level != risk.level:
                risk.regrading_since = utcnow()
            risk.level, risk.updated_by, risk.updated_at = level, ctx.caller.subject, utcnow()
            since = risk.regrading_since
            await session.commit()
        regraded = changed = 0
        if since is not None:
            regraded, changed = await _regrade_book(ctx, units, book.Slice(country, since), level)
            async with units.open() as session:
                await repo.regrade_done(session, country, since)
                await session.commit()
    return CountryRiskRead(country=country, level=level, listed=True, buyers_regraded=regraded,
                           limits_changed=changed)  # fmt: skip


def _regrade_lock_key(country: str) -> int:
    """The advisory lock of one country's re-grade runs (a fixed class, the country's letters)."""
    return 7_412_000_000 + int.from_bytes(country.encode(), "big")


async def _regrade_book(
    ctx: Context, units: UnitsOfWork, whole: book.Slice, level: int
) -> tuple[int, int]:
    """Every buyer of `whole` re-graded and its limits following, a slice at a time in its own
    transaction (`regrade_slice_buyers` each, up to `regrade_parallel_slices` at once): how many
    buyers were re-graded and how many limits changed. A failing slice stops the others; what
    was committed stays, the rest is left to the next run."""
    async with units.open() as session:
        bounds = await book.slice_bounds(session, whole, ctx.settings.regrade_slice_buyers)
    slices = iter([whole._replace(after_id=after, through_id=through)
                   for after, through in zip([None, *bounds], [*bounds, None], strict=True)])  # fmt: skip
    totals = [0, 0]

    async def work() -> None:
        for part in slices:  # one iterator: each slice is taken by one worker
            async with units.open() as session:
                in_slice = replace(ctx, session=session)
                regraded = await _regrade_slice(in_slice, part, level)
                changed = await _halve_book(in_slice, part)
                await session.commit()
            totals[0] += regraded
            totals[1] += changed

    workers = min(ctx.settings.regrade_parallel_slices, units.parallel)
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(work())
    return totals[0], totals[1]


async def _regrade_slice(ctx: Context, part: book.Slice, level: int) -> int:
    """Grade each distinct profile of the slice's buyers once through the rule, a chunk at a
    time, then give every buyer its profile's grade, a grade history entry and, if the grade
    moved, a `buyer.grade_changed`; how many buyers."""
    session = ctx.session
    after = rules.signals_counted_after(ctx.today, ctx.settings.signal_memory_days)
    await book.start(session)
    await book.collect_profiles(session, part, signals_after=after)
    last = 0
    while chunk := await book.profiles_after(session, last, _PROFILE_CHUNK):
        graded = []
        for profile in chunk:
            grade = grade_profile(ctx, profile.indicators, level=level, signals=profile.signals,
                                  insolvent=profile.insolvent)  # fmt: skip
            graded.append({"pid": profile.id, "grade": grade.grade,
                           "factors": views.factors_json(grade)})  # fmt: skip
        await book.grade_profiles(session, graded)
        last = chunk[-1].id
    regraded = await book.mark_regraded(session, part, signals_after=after)
    await book.apply_grades(session, part, today=ctx.today, level=level, by=ctx.caller.subject,
                            now=utcnow())  # fmt: skip
    await book.announce_grades(session, part, today=ctx.today)
    return regraded


async def _halve_book(ctx: Context, part: book.Slice) -> int:
    """The limits of the re-graded buyers newly at the halving grade are halved after their
    policy's notice period (`rules.reaches_halving_grade`, asked once per distinct move and
    notice period), each announced (`limit.changed`); how many limits."""
    session = ctx.session
    notices = [
        {"grade_before": before, "grade_after": after, "notice_days": days,
         "effective_from": rules.halving_effective_from(ctx.today, days),
         "reason": _halving_reason(after, days)}
        for before, after, days in await book.grade_moves(session, part)
        if rules.reaches_halving_grade(before, after,
                                       halve_from_grade=ctx.settings.halve_from_grade)
    ]  # fmt: skip
    await book.add_notices(session, notices)
    units = {c: minor_units(c) for c in await book.policy_currencies(session)}
    halved = await book.collect_halvings(session, minor_units=units, today=ctx.today)
    if halved:
        await book.halve(session, by=ctx.caller.subject, now=utcnow())
        await book.announce_halvings(session, minor_units=units)
    return halved
