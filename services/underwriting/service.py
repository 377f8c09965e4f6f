"""Underwriting use cases: they read through the repository, decide with the rules, and leave
the single commit to the request's command."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from services.underwriting import repository as repo
from services.underwriting import rules, views, whole_book
from services.underwriting.config import UnderwritingSettings
from services.underwriting.events import BuyerGradeChanged, GradeCause
from services.underwriting.models import (
    Buyer,
    BuyerGrade,
    BuyerSignal,
    IndicatorDeclaration,
    Policy,
    PolicyAssignment,
    PolicyRow,
    Sanction,
    events,
)
from services.underwriting.rules.cash_flow import health_from_totals
from services.underwriting.schemas import (
    AssignmentRead,
    BuyerCreate,
    BuyerList,
    BuyerRead,
    BuyerSignalList,
    BuyerSignalRead,
    CountryRiskRead,
    DeclarationCreate,
    DeclarationRead,
    GradeHistoryList,
    IndicatorsIn,
    InvoiceDeclaration,
    PolicyCreate,
    PolicyRead,
    PortfolioHealthRead,
    PremiumRead,
    SanctionCreate,
    SanctionList,
    SanctionRead,
)
from shared.auth import Caller, ensure_party
from shared.contracts import MoneyModel
from shared.db import Reader, new_id, utcnow
from shared.events import Party, announce, bank, policyholder
from shared.pagination import Page, PageRequest, fetch_page
from shared.problems import (
    ALREADY_ASSIGNED,
    BUYER_EXISTS,
    DUE_BEFORE_SHIPMENT,
    POLICY_OVERLAP,
    SANCTION_EXISTS,
    Problem,
    conflict,
    invalid,
    not_found,
    unprocessable,
)
from shared.usecase import Context as UseCaseContext
from shared.usecase import amount_in, non_negative_amount_in, positive_amount_in

Context = UseCaseContext[UnderwritingSettings]


# ---------------------------------------------------------------- policies


async def create_policy(ctx: Context, data: PolicyCreate) -> PolicyRead:
    currency = data.currency
    amounts: dict[str, Decimal | None] = {}
    for name in ("max_liability", "deductible", "claim_threshold", "discretionary_limit",
                 "single_buyer_cap"):  # fmt: skip
        value: MoneyModel | None = getattr(data, name)
        loc: list[str | int] = ["body", name, "amount"]
        if name not in ("max_liability", "single_buyer_cap"):
            amounts[name] = non_negative_amount_in(value, currency, loc)
        elif value is not None:
            amounts[name] = positive_amount_in(value, currency, loc)
        else:
            amounts[name] = None if name == "single_buyer_cap" else Decimal(0)
    if data.premium_rate_pct <= 0:
        raise invalid(["body", "premium_rate_pct"], "must be greater than zero")
    _refuse_terms_that_insure_nothing(data)
    # One policy per policyholder, currency and period: the check and the insert are one step for
    # concurrent creations of the pair (the lock lasts until the commit).
    await repo.serialise_policies_of(ctx.session, data.policyholder_id, currency)
    existing = await repo.overlapping_policy(
        ctx.session, data.policyholder_id, currency, data.start_date, data.end_date
    )
    if existing is not None:
        raise conflict(
            POLICY_OVERLAP,
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
        covered_countries=None
        if data.covered_countries is None
        else sorted(data.covered_countries),
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
    return views.policy_read(policy, [])


def _refuse_terms_that_insure_nothing(data: PolicyCreate) -> None:
    """An indemnity percentage of 0 pays nothing (the political one, when political risk is
    covered); a list of covered countries names at least one (null covers all), each once."""
    if data.indemnity_pct <= 0:
        raise invalid(["body", "indemnity_pct"], "must be greater than zero: a policy that "
                      "pays 0% of a loss insures nothing")  # fmt: skip
    if data.political_risk_cover and data.political_indemnity_pct <= 0:
        raise invalid(["body", "political_indemnity_pct"], "must be greater than zero with "
                      "political risk cover: 0% of a political loss insures nothing")  # fmt: skip
    countries = data.covered_countries
    if countries is not None and not countries:
        raise invalid(["body", "covered_countries"], "an empty list covers no country: leave "
                      "it out (or null) to cover every country, or name the countries covered")  # fmt: skip
    repeated = rules.first_repeated(countries or [])
    if repeated is not None:
        index, country = repeated
        raise invalid(["body", "covered_countries", index],
                      f"{country!r} appears twice in covered_countries: name each country once")  # fmt: skip


async def visible_policy(ctx: Context, policy_id: str) -> tuple[Policy, list[str]]:
    """The policy if the caller may see it: staff, its policyholder, or a bank it is assigned to;
    anything else is a 404, as if it did not exist. Read in one statement with its banks."""
    found = await repo.policy_and_banks(ctx.session, policy_id)
    if found is None:
        raise not_found("policy", policy_id)
    policy, banks = found
    _ensure_visible(ctx.caller, policy, banks)
    return policy, banks


def _ensure_visible(caller: Caller, policy: Policy | PolicyRow, banks: list[str]) -> None:
    if caller.role == "policyholder":
        ensure_party(caller, policy.policyholder_id, "policy", policy.id)
    elif caller.role == "bank" and caller.party_id not in banks:
        raise not_found("policy", policy.id)


async def owned_policy(ctx: Context, policy_id: str) -> Policy:
    """The policy for a change by its policyholder (staff may act on any); a bank's, or another
    party's, is a 404 (whichever banks it is assigned to, so they are not read)."""
    policy = await repo.policy(ctx.session, policy_id)
    if policy is None or ctx.caller.role == "bank":
        raise not_found("policy", policy_id)
    _ensure_visible(ctx.caller, policy, [])
    return policy


async def owned_policy_and_parties(ctx: Context, policy_id: str) -> tuple[Policy, list[Party]]:
    """`owned_policy`, and the parties that hear of its events (`policy_parties`), read in one
    statement."""
    policy, banks = await visible_policy(ctx, policy_id)
    if ctx.caller.role == "bank":
        raise not_found("policy", policy_id)
    return policy, policy_parties(policy, banks)


def policy_parties(policy: Policy, banks: list[str]) -> list[Party]:
    """The parties that hear of a policy's events: its policyholder and the banks assigned to it
    (`repository.parties_of_policy`, from a policy read with its banks), each as its role."""
    return sorted({policyholder(policy.policyholder_id), *(bank(b) for b in banks)})


async def get_policy(reader: Reader, caller: Caller, policy_id: str) -> dict[str, Any]:
    """A policy the caller may see (`visible_policy`'s rule), read in one statement with its
    banks (no session, no transaction, one round trip), as plain JSON data (`PolicyRead`)."""
    found = await repo.policy_with_banks(reader, policy_id)
    if found is None:
        raise not_found("policy", policy_id)
    policy, banks = found
    _ensure_visible(caller, policy, banks)
    return views.policy_answer(policy, _banks_shown(caller, banks))


async def get_policy_and_buyer(
    reader: Reader, caller: Caller, policy_id: str, buyer_id: str
) -> dict[str, Any]:
    """A policy the caller may see and a buyer's standing (None: no such buyer), read in one
    statement, as plain JSON data (`PolicyAndBuyerRead`)."""
    found = await repo.policy_banks_and_buyer(reader, policy_id, buyer_id)
    if found is None:
        raise not_found("policy", policy_id)
    policy, banks, buyer = found
    _ensure_visible(caller, policy, banks)
    return {"policy": views.policy_answer(policy, _banks_shown(caller, banks)),
            "buyer": None if buyer is None else buyer._asdict()}  # fmt: skip


def _banks_shown(caller: Caller, banks: list[str]) -> list[str]:
    """A bank sees itself among a policy's loss payees, not the other banks."""
    return [b for b in banks if b == caller.party_id] if caller.role == "bank" else banks


async def list_policies(
    ctx: Context, policyholder_id: str | None, page: PageRequest, *, ids: list[str] | None = None
) -> Page[PolicyRead]:
    """The policies a list shows the caller: staff every policy (or one policyholder's); a
    policyholder its own; a bank those assigned to it."""
    if ctx.caller.role == "policyholder":
        if policyholder_id is not None and policyholder_id != ctx.caller.party_id:
            policyholder_id = ""  # another party's: nothing to show, as if it had none
        else:
            policyholder_id = ctx.caller.party_id or ""
    bank_id = ctx.caller.party_id or "" if ctx.caller.role == "bank" else None
    statement = repo.policies_listed(policyholder_id=policyholder_id, bank_id=bank_id, ids=ids)
    rows, cursor = await fetch_page(ctx.session, statement, page, created_at=Policy.created_at,
                                    ident=Policy.id)  # fmt: skip
    banks = await repo.bank_ids_of(ctx.session, [p.id for p in rows])
    items = [views.policy_read(p, _banks_shown(ctx.caller, banks.get(p.id, []))) for p in rows]
    return Page[PolicyRead](items=items, next_cursor=cursor)


async def assign_policy(ctx: Context, policy_id: str, bank_id: str) -> AssignmentRead:
    policy = await repo.policy(ctx.session, policy_id)
    if policy is None:
        raise not_found("policy", policy_id)
    assignment = PolicyAssignment(
        id=new_id("asg"), policy_id=policy_id, bank_id=bank_id, created_by=ctx.caller.subject,
        created_at=utcnow(),
    )  # fmt: skip
    if not await repo.add_unless_taken(ctx.session, assignment, "policy_id", "bank_id"):
        raise conflict(ALREADY_ASSIGNED, f"bank {bank_id!r} is already assigned to this policy")
    return views.assignment_read(assignment)


async def get_assignment(ctx: Context, policy_id: str, assignment_id: str) -> AssignmentRead:
    """A bank's assignment to a policy (where its 201 pointed), for whoever may see the policy; a
    bank sees its own assignment only, as it sees only itself among the policy's banks."""
    await visible_policy(ctx, policy_id)
    assignment = await repo.assignment(ctx.session, assignment_id)
    if (
        assignment is None
        or assignment.policy_id != policy_id
        or assignment.bank_id not in _banks_shown(ctx.caller, [assignment.bank_id])
    ):
        raise not_found("assignment", assignment_id)
    return views.assignment_read(assignment)


# ---------------------------------------------------------------- buyers and grades


def buyer_indicators(raw: dict[str, Any] | None) -> rules.Indicators:
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


def stored_indicators(data: IndicatorsIn | None) -> dict[str, Any]:
    return {} if data is None else data.model_dump(mode="json", exclude_none=True)


async def country_level(ctx: Context, country: str) -> int:
    """The level a buyer of `country` is graded at in this transaction
    (`repo.country_level_to_grade`)."""
    return listed_level(ctx, await repo.country_level_to_grade(ctx.session, country))


def listed_level(ctx: Context, level: int | None) -> int:
    """A country's risk level as listed, or the default level when the country is not listed."""
    return level if level is not None else ctx.settings.default_country_risk_level


def grade_profile(
    ctx: Context,
    indicators: dict[str, Any] | None,
    *,
    level: int,
    signals: Sequence[rules.SignalSeen],
    insolvent: bool,
) -> rules.Grade:
    """Today's grade of a buyer with these confirmed indicators, country risk level, signals (in
    the order recorded) and insolvency: the one way every re-grade of today applies the rule (one
    buyer, or the whole book one distinct profile at a time)."""
    return rules.grade_buyer(
        buyer_indicators(indicators),
        country_risk_level=level,
        signals=rules.recent_signals(
            signals, today=ctx.today, points=ctx.settings.signal_weights(),
            memory_days=ctx.settings.signal_memory_days,
        ),
        insolvent=insolvent,
    )  # fmt: skip


async def signals_for(ctx: Context, buyer_id: str, day: dt.date) -> list[rules.ObservedSignal]:
    """The buyer's signals that may weigh on its grade on `day` or any later day."""
    after = rules.signals_counted_after(min(day, ctx.today), ctx.settings.signal_memory_days)
    return await repo.signals_of(ctx.session, buyer_id, after=after)


def _grade_today(
    ctx: Context, buyer: Buyer, *, level: int, signals: Sequence[rules.SignalSeen]
) -> rules.Grade:
    """Today's grade of a buyer from its confirmed indicators, its country's risk level and its
    recent signals, given to the buyer."""
    grade = grade_profile(ctx, buyer.indicators, level=level, signals=signals,
                          insolvent=buyer.insolvent_since is not None)  # fmt: skip
    buyer.grade = grade.grade
    buyer.grade_factors = views.factors_json(grade)
    buyer.graded_at = utcnow()
    return grade


async def regrade(
    ctx: Context,
    buyer: Buyer,
    *,
    cause: GradeCause,
    graded_on: dt.date | None = None,
    level: int | None = None,
    signal: rules.ObservedSignal | None = None,
    known: Sequence[rules.ObservedSignal] | None = None,
) -> rules.Grade:
    """Recompute a buyer's grade and keep it in its grade history from `graded_on` on (today,
    or for a signal the day it was observed). A grade that changed is heard of by the parties
    holding a limit or a limit request on the buyer (`buyer.grade_changed`, without factors).
    `level`: the country's risk level as listed, when the caller read it with the buyer;
    `signal`: a signal being recorded, counted before it is written (its row carries the grade
    this computes), after the `known` ones when the caller read them (`signals_for`)."""
    before = buyer.grade
    signals = (list(known) if known is not None
               else await signals_for(ctx, buyer.id, graded_on or ctx.today))  # fmt: skip
    if signal is not None:
        signals.append(signal)
    if level is None:
        level = await country_level(ctx, buyer.country)
    grade = _grade_today(ctx, buyer, level=level, signals=signals)
    await _record_grade(ctx, buyer, cause=cause, graded_on=graded_on or ctx.today,
                        signals=signals, level=level)  # fmt: skip
    if grade.grade != before:
        changed = BuyerGradeChanged(buyer_id=buyer.id, previous_grade=before, grade=grade.grade,
                                    graded_on=graded_on or ctx.today, cause=cause)  # fmt: skip
        await announce(ctx.session, events, changed, subject_id=buyer.id,
                       parties=await repo.parties_on_buyer(ctx.session, buyer.id))  # fmt: skip
    return grade


async def _record_grade(
    ctx: Context,
    buyer: Buyer,
    *,
    cause: str,
    graded_on: dt.date,
    signals: Sequence[rules.SignalSeen],
    level: int,
    registered: bool = False,
) -> None:
    """An entry of the grade history: the grade in force from `graded_on`. A grade dated before
    today (a signal observed earlier) is graded as of that date, and every later date of the
    history is graded again with it (a new entry, from what was known on that date), so that a
    past shipment reads what was true on its date (`signals`: those that may weigh on
    `graded_on` or later; `level`: the country's risk level now; a buyer just `registered` has
    no history yet)."""
    later = [] if registered else await repo.grade_entries_after(ctx.session, buyer.id, graded_on)
    if graded_on >= ctx.today:
        grade, factors = buyer.grade, buyer.grade_factors
    else:
        then = rules.grade_on(buyer_indicators(buyer.indicators), day=graded_on,
                              country_risk_level=level, signals=signals,
                              insolvent_since=buyer.insolvent_since,
                              points=ctx.settings.signal_weights(),
                              memory_days=ctx.settings.signal_memory_days)  # fmt: skip
        grade, factors = then.grade, views.factors_json(then)
    entries = [(graded_on, grade, factors, buyer.indicators, level)]
    last_of_day = {entry.graded_on: entry for entry in later}
    for day, entry in sorted(last_of_day.items()):
        again = rules.grade_on(buyer_indicators(entry.indicators), day=day,
                               country_risk_level=entry.country_risk_level or level,
                               signals=signals, insolvent_since=buyer.insolvent_since,
                               points=ctx.settings.signal_weights(),
                               memory_days=ctx.settings.signal_memory_days)  # fmt: skip
        if again.grade != entry.grade or views.factors_json(again) != entry.factors:
            entries.append((day, again.grade, views.factors_json(again), entry.indicators,
                            entry.country_risk_level or level))  # fmt: skip
    for day, grade, factors, indicators, country_level_then in entries:
        ctx.session.add(BuyerGrade(
            id=new_id("grd"), buyer_id=buyer.id, graded_on=day, grade=grade, factors=factors,
            indicators=indicators, country_risk_level=country_level_then, cause=cause,
            created_by=ctx.caller.subject, created_at=utcnow()))  # fmt: skip
    await ctx.session.flush()


def _registrant(caller: Caller) -> str:
    """Who registered a buyer: a policyholder by its party id (the buyer is then its own); anyone
    else by role and subject, never read as a party (a staff token carrying a party id gives
    that party nothing)."""
    if caller.role == "policyholder" and caller.party_id:
        return caller.party_id
    return f"{caller.role}:{caller.subject}"


async def register_buyer(ctx: Context, data: BuyerCreate) -> BuyerRead:
    """A new buyer, graded at once. Indicators an underwriter gives are confirmed; those a
    policyholder declares are kept and move the grade only once an underwriter confirms them."""
    indicators = stored_indicators(data.indicators)
    confirmed = ctx.caller.role != "policyholder"
    buyer = Buyer(
        id=new_id("buy"),
        name=data.name,
        country=data.country,
        registration_number=data.registration_number,
        registration_key=rules.registration_key(data.registration_number),
        legal_form=data.legal_form,
        indicators=indicators if confirmed else {},
        grade=0,
        grade_factors=[],
        registered_by=_registrant(ctx.caller),
        created_at=utcnow(),
    )
    level = await country_level(ctx, buyer.country)
    _grade_today(ctx, buyer, level=level, signals=[])  # a buyer just made: no signal names it yet
    # A registered buyer (or one a concurrent request registers, waited for) is not inserted:
    # the insert is the duplicate check.
    if not await repo.add_unless_taken(ctx.session, buyer, "country", "registration_key"):
        existing = await repo.buyer_by_registration(
            ctx.session, buyer.country, buyer.registration_key or ""
        )
        raise _duplicate_buyer(existing.id if existing else "")
    await _record_grade(ctx, buyer, cause="registration", graded_on=ctx.today, signals=[],
                        level=level, registered=True)  # fmt: skip
    declared = [] if confirmed or not indicators else [declare_indicators(ctx, buyer, indicators)]
    return views.buyer_read(buyer, ctx.caller, declared)


def declare_indicators(
    ctx: Context, buyer: Buyer, values: dict[str, Any],
    declaration: IndicatorDeclaration | None = None,
) -> IndicatorDeclaration:  # fmt: skip
    """The calling policyholder's declaration on the buyer, with who declared it and when: its
    pending one with these values added, else (none yet, or one decided) these values pending."""
    now = utcnow()
    if declaration is None:
        declaration = IndicatorDeclaration(
            id=new_id("dcl"), buyer_id=buyer.id, policyholder_id=ctx.caller.party_id,
            indicators={}, status="pending", created_at=now)  # fmt: skip
        ctx.session.add(declaration)
    pending = declaration.status == "pending"
    declaration.indicators = {**declaration.indicators, **values} if pending else dict(values)
    declaration.status = "pending"
    declaration.declared_by = ctx.caller.subject
    declaration.declared_at = now
    declaration.decided_by = declaration.decided_at = None
    return declaration


def _duplicate_buyer(buyer_id: str) -> Problem:
    return conflict(
        BUYER_EXISTS,
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
    [read] = await buyer_reads(ctx, [await visible_buyer(ctx, buyer_id)])
    return read


async def buyer_reads(ctx: Context, buyers: Sequence[Buyer]) -> list[BuyerRead]:
    """The buyers as the caller reads them, each with the indicator declarations it may see
    (`views.declarations_seen`: staff the pending ones, a policyholder its own), read at once."""
    declarations: dict[str, list[IndicatorDeclaration]] = {}
    if buyers and ctx.caller.is_staff:
        declarations = await repo.declarations_of(ctx.session, [b.id for b in buyers],
                                                  pending_only=True)  # fmt: skip
    elif buyers and ctx.caller.role == "policyholder" and ctx.caller.party_id:
        declarations = await repo.declarations_of(ctx.session, [b.id for b in buyers],
                                                  policyholder_id=ctx.caller.party_id)  # fmt: skip
    return [views.buyer_read(b, ctx.caller, declarations.get(b.id, ())) for b in buyers]


async def grade_history(ctx: Context, buyer_id: str, page: PageRequest) -> GradeHistoryList:
    """A buyer's grade history, newest recorded first, for whoever may see the buyer (factors
    for staff only)."""
    await visible_buyer(ctx, buyer_id)
    rows, cursor = await fetch_page(ctx.session, repo.grade_history_listed(buyer_id), page,
                                    created_at=BuyerGrade.created_at, ident=BuyerGrade.id,
                                    newest_first=True)  # fmt: skip
    items = [views.grade_entry_read(entry, ctx.caller) for entry in rows]
    return GradeHistoryList(items=items, next_cursor=cursor)


async def buyer_signals(ctx: Context, buyer_id: str, page: PageRequest) -> BuyerSignalList:
    """A buyer's signals, newest recorded first: staff every one; a policyholder that may see
    the buyer those recorded under its own policies."""
    await visible_buyer(ctx, buyer_id)
    party = ctx.caller.party_id or "" if ctx.caller.role == "policyholder" else None
    rows, cursor = await fetch_page(ctx.session, repo.signals_listed(buyer_id, party_id=party),
                                    page, created_at=BuyerSignal.created_at, ident=BuyerSignal.id,
                                    newest_first=True)  # fmt: skip
    items = [views.signal_entry_read(signal, ctx.caller) for signal in rows]
    return BuyerSignalList(items=items, next_cursor=cursor)


async def buyer_signal(ctx: Context, buyer_id: str, signal_id: str) -> BuyerSignalRead:
    """One signal of a buyer (where its 201 pointed), as the buyer's signal list shows it to the
    caller: a policyholder sees only those recorded under its own policies."""
    await visible_buyer(ctx, buyer_id)
    party = ctx.caller.party_id or "" if ctx.caller.role == "policyholder" else None
    signal = await repo.listed_signal(ctx.session, buyer_id, signal_id, party_id=party)
    if signal is None:
        raise not_found("signal", signal_id)
    return views.signal_entry_read(signal, ctx.caller)


async def list_buyers(
    ctx: Context, country: str | None, registration_number: str | None, page: PageRequest, *,
    ids: list[str] | None = None,
) -> BuyerList:  # fmt: skip
    """The buyers a list shows the caller: staff every buyer; a policyholder its own, or any
    buyer looked up by its exact country and registration number (however it is written: by its
    registration key)."""
    key = rules.registration_key(registration_number) if registration_number else None
    statement = repo.buyers_listed(
        country=country, registration_key=key, ids=ids,
        party_id=ctx.caller.party_id or "" if ctx.caller.role == "policyholder" else None,
    )  # fmt: skip
    rows, cursor = await fetch_page(ctx.session, statement, page, created_at=Buyer.created_at,
                                    ident=Buyer.id)  # fmt: skip
    return BuyerList(items=await buyer_reads(ctx, rows), next_cursor=cursor)


async def get_country_risk(ctx: Context, country: str) -> CountryRiskRead:
    risk = await repo.country_risk(ctx.session, country)
    if risk is None:
        return CountryRiskRead(
            country=country, level=ctx.settings.default_country_risk_level, listed=False
        )
    return CountryRiskRead(country=country, level=risk.level, listed=True,
                           regrading_since=risk.regrading_since)  # fmt: skip


async def add_sanction(ctx: Context, data: SanctionCreate) -> SanctionRead:
    """List a country or a buyer, once: what is listed already is a 409 naming its listing (so
    that lifting that one lifts the sanction), concurrent listings of one target included."""
    if data.buyer_id is not None and await repo.buyer(ctx.session, data.buyer_id) is None:
        raise not_found("buyer", data.buyer_id)
    target = {"country": data.country, "buyer_id": data.buyer_id}
    existing = await repo.sanction_listing(ctx.session, **target)
    if existing is not None:
        raise _already_listed(existing.id)
    sanction = Sanction(
        id=new_id("snc"), country=data.country, buyer_id=data.buyer_id, reason=data.reason,
        created_by=ctx.caller.subject, created_at=utcnow(),
    )  # fmt: skip
    if not await repo.add_unless_taken(ctx.session, sanction,
                                       "country" if data.country is not None else "buyer_id"):  # fmt: skip
        raced = await repo.sanction_listing(ctx.session, **target)
        raise _already_listed(raced.id if raced else "")
    buyers, limits = await whole_book.sanctioned_book(ctx.session, country=data.country,
                                                      buyer_id=data.buyer_id)  # fmt: skip
    return views.sanction_read(sanction).model_copy(
        update={"buyers_affected": buyers, "limits_affected": limits}
    )


def _already_listed(sanction_id: str) -> Problem:
    return conflict(SANCTION_EXISTS, "this country or buyer is already on the sanctions list",
                    existing_sanction_id=sanction_id)  # fmt: skip


async def list_sanctions(ctx: Context, page: PageRequest) -> SanctionList:
    rows, cursor = await fetch_page(ctx.session, repo.sanctions_listed(), page,
                                    created_at=Sanction.created_at, ident=Sanction.id)  # fmt: skip
    return SanctionList(items=[views.sanction_read(s) for s in rows], next_cursor=cursor)


async def get_sanction(ctx: Context, sanction_id: str) -> SanctionRead:
    sanction = await repo.sanction(ctx.session, sanction_id)
    if sanction is None:
        raise not_found("sanction", sanction_id)
    return views.sanction_read(sanction)


async def remove_sanction(ctx: Context, sanction_id: str) -> SanctionRead:
    sanction = await repo.sanction(ctx.session, sanction_id)
    if sanction is None:
        raise not_found("sanction", sanction_id)
    answer = views.sanction_read(sanction)
    await repo.delete(ctx.session, sanction)
    return answer


# ---------------------------------------------------------------- declarations and premium


async def declare_receivables(
    ctx: Context, policy_id: str, data: DeclarationCreate
) -> DeclarationRead:
    """The policyholder declares its receivables; a known invoice number is updated. Each
    invoice's dates lie within what the policy reads (`rules.invoice_dates_fault`), judged by
    arithmetic on the item alone (a declaration holds up to 50,000 invoices)."""
    policy = await owned_policy(ctx, policy_id)
    earliest = rules.earliest_declared_day(policy.start_date,
                                           ctx.settings.health_thresholds().history_days)  # fmt: skip
    credit_days = rules.declared_credit_days(policy.max_credit_period_days,
                                             ctx.settings.declared_credit_days_at_most)  # fmt: skip
    seen: set[str] = set()
    for index, invoice in enumerate(data.invoices):
        loc: list[str | int] = ["body", "invoices", index]
        if invoice.number in seen:
            raise invalid([*loc, "number"], "an invoice number appears twice in one declaration")
        seen.add(invoice.number)
        amount = positive_amount_in(invoice.amount, policy.currency, [*loc, "amount", "amount"])
        if invoice.due_date < invoice.shipment_date:
            raise unprocessable(DUE_BEFORE_SHIPMENT,
                                f"invoice {invoice.number}: due date is before the shipment date",
                                errors=[{"loc": [*loc, "due_date"],
                                         "msg": "before the shipment date"}])  # fmt: skip
        dates_fault = rules.invoice_dates_fault(
            invoice.shipment_date, invoice.due_date, invoice.paid_on, today=ctx.today,
            earliest=earliest, credit_days_at_most=credit_days,
        )  # fmt: skip
        if dates_fault is not None:
            field, why = dates_fault
            raise invalid([*loc, field], f"invoice {invoice.number}: {field} {why}")
        paid = (None if invoice.paid_amount is None
                else amount_in(invoice.paid_amount, policy.currency, [*loc, "paid_amount"]))  # fmt: skip
        fault = rules.payment_fault(amount, paid, invoice.paid_on, today=ctx.today)
        if fault is not None:
            field, why = fault
            raise invalid([*loc, field], f"invoice {invoice.number}: {field} {why}")
    now = utcnow()

    def settled(invoice: InvoiceDeclaration) -> Decimal:
        return invoice.paid_amount.amount if invoice.paid_amount else Decimal(0)

    # One upsert by invoice number: a new number is inserted, a known one (or one a concurrent
    # request is declaring, waited for) updated, so concurrent declarations create it once. A
    # buyer that does not exist refuses the whole declaration (404 naming the first).
    declared = await repo.upsert_receivables(ctx.session, [
        {"id": new_id("rcv"), "policy_id": policy.id, "buyer_id": invoice.buyer_id,
         "invoice_number": invoice.number, "amount": invoice.amount.amount,
         "shipment_date": invoice.shipment_date, "due_date": invoice.due_date,
         "paid_amount": settled(invoice), "paid_on": invoice.paid_on, "created_at": now,
         "updated_at": now}
        for invoice in data.invoices
    ])  # fmt: skip
    if declared.unknown_buyers:
        raise not_found("buyer", min(declared.unknown_buyers))
    if not await repo.declared_total_fits(ctx.session, policy.id):
        raise invalid(["body", "invoices"],
                      "the policy's declared receivables would add up to more than the embedded "
                      "database (SQLite) can sum, about 9.2 × 10^14; run on PostgreSQL for such a "
                      "book")  # fmt: skip
    return DeclarationRead(
        policy_id=policy.id, created=declared.created,
        updated=len(data.invoices) - declared.created,
    )  # fmt: skip


async def premium_for(
    ctx: Context, policy_id: str, period_from: dt.date | None, period_to: dt.date | None
) -> PremiumRead:
    policy = await owned_policy(ctx, policy_id)
    start = period_from or policy.start_date
    end = period_to or policy.end_date
    if end < start:
        raise invalid(["query", "to"], "must not be before 'from'")
    lines = await repo.turnover(ctx.session, policy, start, end)
    turnover = rules.insurable_turnover(lines, policy.covered_countries)
    return views.premium_read(policy, start, end, turnover)


async def portfolio_health(ctx: Context, policy_id: str) -> PortfolioHealthRead:
    policy = await owned_policy(ctx, policy_id)
    thresholds = ctx.settings.health_thresholds()
    # The sums come from SQL aggregates (rules.health_totals' twin); the rule computes the rest.
    figures = await repo.portfolio_health_figures(ctx.session, policy, ctx.today, thresholds)
    ratios = {buyer_id: ratio for buyer_id, (confirmed, declared) in figures.indicators.items()
              if (ratio := rules.current_ratio_that_counts(confirmed, declared)) is not None}  # fmt: skip
    health = health_from_totals(figures.totals, thresholds=thresholds, current_ratios=ratios)
    return views.portfolio_health_read(policy, ctx.today, health)
