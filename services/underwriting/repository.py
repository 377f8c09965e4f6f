"""Every underwriting query."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    CompoundSelect,
    Date,
    Integer,
    Numeric,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    inspect,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    type_coerce,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY as postgresql_array
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from services.underwriting.models import (
    Buyer,
    BuyerBrief,
    BuyerGrade,
    BuyerSignal,
    CountryRisk,
    CreditLimit,
    IndicatorDeclaration,
    LimitAmount,
    LimitRequest,
    Policy,
    PolicyAssignment,
    PolicyRow,
    Receivable,
    Sanction,
    StopShipment,
)
from services.underwriting.rules import LimitRequestStatus, ObservedSignal, TurnoverLine
from services.underwriting.rules.cash_flow import PRIOR_YEAR_DAYS, HealthThresholds, HealthTotals
from shared.db import Amount, Query, Reader, take_turns, utcnow
from shared.events import Party
from shared.pagination import KeyPageRequest


async def policy(session: AsyncSession, policy_id: str) -> Policy | None:
    return await session.get(Policy, policy_id)


# A policy and the banks assigned to it, in the order they were assigned: one row per bank, or
# one row with no bank.
_POLICY_WITH_BANKS = Query(
    select(*(Policy.__table__.c[name] for name in PolicyRow._fields), PolicyAssignment.bank_id)
    .outerjoin(PolicyAssignment, PolicyAssignment.policy_id == Policy.id)
    .where(Policy.id == bindparam("policy_id", type_=String))
    .order_by(PolicyAssignment.created_at)
)
# The same with a buyer's standing on each row (its columns null when there is no such buyer).
_POLICY_BANKS_AND_BUYER = Query(
    select(*(Policy.__table__.c[name] for name in PolicyRow._fields), PolicyAssignment.bank_id,
           Buyer.id, Buyer.country, Buyer.legal_form, Buyer.grade)
    .outerjoin(PolicyAssignment, PolicyAssignment.policy_id == Policy.id)
    .outerjoin(Buyer, Buyer.id == bindparam("buyer_id", type_=String))
    .where(Policy.id == bindparam("policy_id", type_=String))
    .order_by(PolicyAssignment.created_at)
)  # fmt: skip


async def policy_with_banks(reader: Reader, policy_id: str) -> tuple[PolicyRow, list[str]] | None:
    """A policy (its row, no ORM object: for reading) and the banks assigned to it, in one
    statement."""
    rows = await reader.all(_POLICY_WITH_BANKS, {"policy_id": policy_id})
    if not rows:
        return None
    return PolicyRow._make(rows[0][:-1]), [row[-1] for row in rows if row[-1] is not None]


async def policy_banks_and_buyer(
    reader: Reader, policy_id: str, buyer_id: str
) -> tuple[PolicyRow, list[str], BuyerBrief | None] | None:
    """A policy, the banks assigned to it and a buyer's standing (None: no such buyer), in one
    statement: what the other services read before they act on a (policy, buyer)."""
    rows = await reader.all(_POLICY_BANKS_AND_BUYER, {"policy_id": policy_id, "buyer_id": buyer_id})
    if not rows:
        return None
    *policy, _, buyer, country, legal_form, grade = rows[0]
    standing = None if buyer is None else BuyerBrief(buyer, country, legal_form, grade)
    return PolicyRow._make(policy), [row[-5] for row in rows if row[-5] is not None], standing


def _policy_with_banks_statement(*extra: Any) -> Select[Any]:
    return (
        select(Policy, PolicyAssignment.bank_id, *extra)
        .outerjoin(PolicyAssignment, PolicyAssignment.policy_id == Policy.id)
        .where(Policy.id == bindparam("policy_id", type_=String))
        .order_by(PolicyAssignment.created_at)
    )


# The statements of the write paths that take no other input than their parameters, built once
# (building one per request cost a limit request about a sixth of its CPU).
_POLICY_AND_BANKS = _policy_with_banks_statement()


async def _policy_with_banks(session: AsyncSession, policy_id: str) -> list[Any]:
    """Rows of (the policy, one of its banks or None), its banks in the order they were
    assigned: one statement."""
    return list((await session.execute(_POLICY_AND_BANKS, {"policy_id": policy_id})).all())


async def policy_and_banks(
    session: AsyncSession, policy_id: str
) -> tuple[Policy, list[str]] | None:
    """A policy (in the session) and the banks assigned to it, in the order they were assigned,
    in one statement."""
    rows = await _policy_with_banks(session, policy_id)
    if not rows:
        return None
    return rows[0][0], [row[1] for row in rows if row[1] is not None]


class PolicyOfSignal(NamedTuple):
    """A policy a signal names, the banks assigned to it, and whether shipments to the signal's
    buyer under it are stopped now (a stop-shipment not cleared)."""

    policy: Policy
    banks: list[str]
    stopped: bool


async def policy_of_signal(
    session: AsyncSession, policy_id: str, buyer_id: str
) -> PolicyOfSignal | None:
    """The policy a signal on `buyer_id` names, with its banks and its open stop-shipment on the
    buyer, in one statement."""
    rows = (await session.execute(
        _POLICY_OF_SIGNAL, {"policy_id": policy_id, "buyer_id": buyer_id})).all()  # fmt: skip
    if not rows:
        return None
    banks = [row[1] for row in rows if row[1] is not None]
    return PolicyOfSignal(rows[0][0], banks, bool(rows[0][2]))


_POLICY_OF_SIGNAL = _policy_with_banks_statement(
    exists().where(StopShipment.policy_id == Policy.id,
                   StopShipment.buyer_id == bindparam("buyer_id", type_=String),
                   StopShipment.cleared_on.is_(None))
)  # fmt: skip
_BUYER = select(Buyer).where(Buyer.id == bindparam("buyer_id", type_=String))
_BUYER_LOCKED = _BUYER.with_for_update()
_BUYER_SHARED = _BUYER.with_for_update(read=True)


async def buyer(session: AsyncSession, buyer_id: str, *, for_update: bool = False) -> Buyer | None:
    statement = _BUYER_LOCKED if for_update else _BUYER
    return (await session.execute(statement, {"buyer_id": buyer_id})).scalar_one_or_none()


async def buyer_held_against_signals(session: AsyncSession, buyer_id: str) -> Buyer | None:
    """A buyer held FOR SHARE until the commit: a signal on it (which takes it FOR UPDATE,
    `buyer_to_grade`) waits for this change, or this change reads the buyer as the signal left
    it. Declarations and other readers (FOR KEY SHARE) are not held up."""
    return (await session.execute(_BUYER_SHARED, {"buyer_id": buyer_id})).scalar_one_or_none()


async def buyer_to_grade(session: AsyncSession, buyer_id: str) -> tuple[Buyer, int | None] | None:
    """A buyer locked FOR UPDATE until the commit, with its country's risk level (None when the
    country is not listed) read under the country's level lock (`country_level_to_grade`)."""
    if _postgresql(session):
        # The buyer and the level lock in one statement; the level in the next, whose snapshot
        # is taken once the lock is held.
        row = (await session.execute(_BUYER_TO_GRADE_LOCKED, {"buyer_id": buyer_id})).first()
        if row is None:
            return None
        level = await session.execute(_COUNTRY_LEVEL, {"country": row[0].country})
        return row[0], level.scalar_one_or_none()
    row = (await session.execute(_BUYER_TO_GRADE, {"buyer_id": buyer_id})).first()
    return None if row is None else (row[0], row[1])


def _postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# A country's level lock (PostgreSQL, transaction-scoped, keyed by the country): held shared by
# every transaction that grades a buyer at the level it reads, from before it reads it to its
# commit, and exclusively by the setting of a new level while it commits the level and notes
# when its re-grade began (`hold_country_level`). A buyer graded at the old level is thus
# committed before the re-grade's start, which then takes it up; one graded after reads the new
# level (domain.md: every buyer of the country re-graded).
_LEVEL_LOCK_CLASS = 7413


def _level_lock(country: Any, *, shared: bool) -> Any:
    take = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    return take(literal_column(str(_LEVEL_LOCK_CLASS), Integer), func.hashtext(country))


_BUYER_TO_GRADE = (
    select(Buyer, CountryRisk.level)
    .outerjoin(CountryRisk, CountryRisk.country == Buyer.country)
    .where(Buyer.id == bindparam("buyer_id", type_=String))
    .with_for_update(of=Buyer)
)
_BUYER_TO_GRADE_LOCKED = (
    select(Buyer, _level_lock(Buyer.country, shared=True))
    .where(Buyer.id == bindparam("buyer_id", type_=String))
    .with_for_update(of=Buyer)
)
_COUNTRY_LEVEL = select(CountryRisk.level).where(
    CountryRisk.country == bindparam("country", type_=String)
)


async def country_level_to_grade(session: AsyncSession, country: str) -> int | None:
    """A country's risk level (None when not listed) for grading a buyer of it in this
    transaction: read under the country's level lock, held shared until the commit."""
    if _postgresql(session):
        await session.execute(select(_level_lock(bindparam("country", country), shared=True)))
    return (await session.execute(_COUNTRY_LEVEL, {"country": country})).scalar_one_or_none()


async def hold_country_level(session: AsyncSession, country: str) -> None:
    """The country's level lock, exclusively until the commit: every grading at the level
    before waits for it, and is committed before (PostgreSQL; one writer at a time elsewhere)."""
    if _postgresql(session):
        await session.execute(select(_level_lock(bindparam("country", country), shared=False)))


class BuyerStanding(NamedTuple):
    """A buyer, whether it or its country is sanctioned, its country's risk level (None when
    the country is not listed), and whether the holder of the policy asked about declared it an
    affiliate (`_affiliate`)."""

    buyer: Buyer
    sanctioned: bool
    country_risk_level: int | None
    declared_affiliate: bool


def _buyer_or_country_sanctioned() -> Any:
    return exists().where(or_(Sanction.buyer_id == Buyer.id, Sanction.country == Buyer.country))


def _declared_affiliate() -> Any:
    """Whether the holder of the policy `:policy_id` declared the buyer an affiliate (a limit
    request of its, under any of its policies, related to it)."""
    holder = (
        select(Policy.policyholder_id)
        .where(Policy.id == bindparam("policy_id", type_=String))
        .scalar_subquery()
    )
    declaring = aliased(Policy)
    return exists().where(
        LimitRequest.buyer_id == Buyer.id,
        LimitRequest.related_to_policyholder.is_(True),
        LimitRequest.policy_id == declaring.id,
        declaring.policyholder_id == holder,
    )


def _buyer_standing_statement() -> Select[Buyer, bool, int, bool]:
    return (
        select(Buyer, _buyer_or_country_sanctioned(), CountryRisk.level, _declared_affiliate())
        .outerjoin(CountryRisk, CountryRisk.country == Buyer.country)
        .where(Buyer.id == bindparam("buyer_id", type_=String))
        .with_for_update(read=True, key_share=True, of=Buyer)
    )


_BUYER_STANDING = _buyer_standing_statement()
_BUYER_BARRED = select(_buyer_or_country_sanctioned(), _declared_affiliate()).where(
    Buyer.id == bindparam("buyer_id", type_=String)
)


async def buyer_barred(
    session: AsyncSession, buyer_id: str, *, policy_id: str
) -> tuple[bool, bool]:
    """Whether the buyer (or its country) is sanctioned, and whether the holder of the policy
    declared it an affiliate, read without a lock (a person's act on a limit)."""
    row = (
        await session.execute(_BUYER_BARRED, {"buyer_id": buyer_id, "policy_id": policy_id})
    ).first()
    return (False, False) if row is None else (bool(row[0]), bool(row[1]))


async def buyer_standing(
    session: AsyncSession, buyer_id: str, *, policy_id: str
) -> BuyerStanding | None:
    """A buyer's standing under a policy in one statement, the buyer's row held FOR KEY SHARE
    (as a row referring to it would hold it) until the commit."""
    params = {"buyer_id": buyer_id, "policy_id": policy_id}
    row = (await session.execute(_BUYER_STANDING, params)).first()
    if row is None:
        return None
    return BuyerStanding(row[0], bool(row[1]), row[2], bool(row[3]))


async def buyer_by_registration(
    session: AsyncSession, country: str, registration_key: str
) -> Buyer | None:
    return (
        await session.execute(
            select(Buyer).where(
                Buyer.country == country, Buyer.registration_key == registration_key
            )
        )
    ).scalar_one_or_none()


async def country_risk(session: AsyncSession, country: str) -> CountryRisk | None:
    return await session.get(CountryRisk, country)


async def country_risk_for_update(
    session: AsyncSession, country: str, *, level: int, updated_by: str
) -> CountryRisk:
    """A country's risk row, listed at `level` unless it was, locked until the commit: concurrent
    first settings of one country list it once and then take their turns."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(CountryRisk)
        .values(country=country, level=level, updated_by=updated_by, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["country"])
    )
    risk = await session.get(CountryRisk, country, with_for_update=True, populate_existing=True)
    assert risk is not None
    return risk


async def regrade_done(session: AsyncSession, country: str, since: dt.datetime) -> None:
    """The country's run begun at `since` is done (unless a later run began meanwhile)."""
    await session.execute(
        update(CountryRisk)
        .where(CountryRisk.country == country, CountryRisk.regrading_since == since)
        .values(regrading_since=None)
    )


async def signals_of(
    session: AsyncSession, buyer_id: str, *, after: dt.date
) -> list[ObservedSignal]:
    """The buyer's signals observed after `after` (`rules.signals_counted_after`: the older ones
    weigh on no grade still to compute), so a buyer's thousandth signal costs what its first did;
    in the order observed, then recorded (the order `rules.counted_signals` reads them in)."""
    rows = await session.execute(_SIGNALS_OF, {"buyer_id": buyer_id, "after": after})
    return [ObservedSignal(*row) for row in rows.all()]


_SIGNALS_OF = (
    select(BuyerSignal.kind, BuyerSignal.observed_on, BuyerSignal.policy_id,
           BuyerSignal.creditor_id)
    .where(BuyerSignal.buyer_id == bindparam("buyer_id", type_=String),
           BuyerSignal.observed_on > bindparam("after", type_=Date), BuyerSignal.weighed)
    .order_by(BuyerSignal.observed_on, BuyerSignal.created_at, BuyerSignal.id)
)  # fmt: skip


async def buyers_with_signals_aged(
    session: AsyncSession, *, since: dt.date, through: dt.date
) -> list[tuple[str, dt.date, dt.date]]:
    """Each buyer (not insolvent) with a signal that weighed and was observed after `since` up to
    `through` (signals no longer remembered today), with the day of its latest grade entry and
    the latest such signal's day: a buyer last graded before that signal stopped weighing still
    counts it."""
    last_graded = (
        select(BuyerGrade.buyer_id, func.max(BuyerGrade.graded_on).label("graded_on"))
        .group_by(BuyerGrade.buyer_id)
        .subquery()
    )
    rows = await session.execute(
        select(Buyer.id, last_graded.c.graded_on, func.max(BuyerSignal.observed_on))
        .join(BuyerSignal, BuyerSignal.buyer_id == Buyer.id)
        .join(last_graded, last_graded.c.buyer_id == Buyer.id)
        .where(BuyerSignal.weighed, BuyerSignal.observed_on > since,
               BuyerSignal.observed_on <= through, Buyer.insolvent_since.is_(None))
        .group_by(Buyer.id, last_graded.c.graded_on)
        .order_by(Buyer.id)
    )  # fmt: skip
    return [(ident, graded_on, observed) for ident, graded_on, observed in rows.all()]


async def creditor_has_stake(session: AsyncSession, creditor_id: str, buyer_id: str) -> bool:
    """Whether the creditor (a policyholder) holds a credit limit on the buyer under one of its
    own policies (`rules.signal_weighs`), in one statement: a limit the insurer granted an
    amount on, in force or not any more. A refusal keeps a limit row with no amount (the
    decision that ends the discretionary limit there) and grants nothing: no stake."""
    own = select(Policy.id).where(Policy.policyholder_id == creditor_id)
    held = exists().where(CreditLimit.buyer_id == buyer_id, CreditLimit.policy_id.in_(own),
                          LimitAmount.limit_id == CreditLimit.id, LimitAmount.amount > 0)  # fmt: skip
    return bool((await session.execute(select(held))).scalar_one())


async def grade_entries_after(
    session: AsyncSession, buyer_id: str, day: dt.date
) -> list[BuyerGrade]:
    """The entries of a buyer's grade history dated after `day`, in the order they apply."""
    rows = await session.execute(_GRADE_ENTRIES_AFTER, {"buyer_id": buyer_id, "day": day})
    return list(rows.scalars())


_GRADE_ENTRIES_AFTER = (
    select(BuyerGrade)
    .where(BuyerGrade.buyer_id == bindparam("buyer_id", type_=String),
           BuyerGrade.graded_on > bindparam("day", type_=Date))
    .order_by(BuyerGrade.graded_on, BuyerGrade.created_at, BuyerGrade.id)
)  # fmt: skip


async def grade_history(session: AsyncSession, buyer_id: str) -> list[BuyerGrade]:
    """A buyer's grade history, in the order the entries apply."""
    return await grade_entries_after(session, buyer_id, dt.date.min)


async def buyers_of_country(session: AsyncSession, country: str) -> list[Buyer]:
    rows = await session.execute(
        select(Buyer).where(Buyer.country == country).order_by(Buyer.id).with_for_update()
    )
    return list(rows.scalars())


_CREDIT_LIMIT = select(CreditLimit).where(
    CreditLimit.policy_id == bindparam("policy_id", type_=String),
    CreditLimit.buyer_id == bindparam("buyer_id", type_=String),
)
_CREDIT_LIMIT_LOCKED = _CREDIT_LIMIT.with_for_update()


async def credit_limit(
    session: AsyncSession, policy_id: str, buyer_id: str, *, for_update: bool = False
) -> CreditLimit | None:
    statement = _CREDIT_LIMIT_LOCKED if for_update else _CREDIT_LIMIT
    params = {"policy_id": policy_id, "buyer_id": buyer_id}
    return (await session.execute(statement, params)).scalar_one_or_none()


async def credit_limit_by_id(
    session: AsyncSession, limit_id: str, *, for_update: bool = False
) -> CreditLimit | None:
    statement = select(CreditLimit).where(CreditLimit.id == limit_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def limits_on_buyer(
    session: AsyncSession, buyer_id: str
) -> list[tuple[CreditLimit, Policy, list[str]]]:
    """The limits on a buyer, oldest first, each locked until the commit, with its policy and the
    banks assigned to that policy (in the order they were assigned), in one statement."""
    rows = await session.execute(
        select(CreditLimit, Policy, PolicyAssignment.bank_id)
        .join(Policy, Policy.id == CreditLimit.policy_id)
        .outerjoin(PolicyAssignment, PolicyAssignment.policy_id == Policy.id)
        .where(CreditLimit.buyer_id == buyer_id)
        .order_by(CreditLimit.created_at, CreditLimit.id, PolicyAssignment.created_at)
        .with_for_update(of=CreditLimit)
    )
    found: dict[str, tuple[CreditLimit, Policy, list[str]]] = {}
    for limit, pol, bank in rows.all():
        banks = found.setdefault(limit.id, (limit, pol, []))[2]
        if bank is not None:
            banks.append(bank)
    return list(found.values())


_HISTORY_KEPT = (
    select(LimitAmount)
    .where(LimitAmount.limit_id.in_(bindparam("limit_ids", expanding=True, type_=String)))
    .order_by(LimitAmount.limit_id, LimitAmount.effective_from, LimitAmount.created_at)
)
_HISTORY = _HISTORY_KEPT.where(LimitAmount.superseded_at.is_(None))


async def history(
    session: AsyncSession, limit_ids: Sequence[str], *, superseded_too: bool = False
) -> dict[str, list[LimitAmount]]:
    """The entries in force (not superseded) of each limit, oldest first; with `superseded_too`,
    every entry kept, the superseded ones (kept for audit) included."""
    if not limit_ids:
        return {}
    statement = _HISTORY_KEPT if superseded_too else _HISTORY
    rows = await session.execute(statement, {"limit_ids": list(limit_ids)})
    grouped: dict[str, list[LimitAmount]] = defaultdict(list)
    for entry in rows.scalars():
        grouped[entry.limit_id].append(entry)
    return grouped


async def open_stops(session: AsyncSession, policy_id: str, buyer_id: str) -> list[StopShipment]:
    rows = await session.execute(_OPEN_STOPS, {"policy_id": policy_id, "buyer_id": buyer_id})
    return list(rows.scalars())


_OPEN_STOPS = select(StopShipment).where(
    StopShipment.policy_id == bindparam("policy_id", type_=String),
    StopShipment.buyer_id == bindparam("buyer_id", type_=String),
    StopShipment.cleared_on.is_(None),
)


async def receivables_by_number(
    session: AsyncSession, policy_id: str, numbers: Sequence[str]
) -> dict[str, Receivable]:
    found: dict[str, Receivable] = {}
    for start in range(0, len(numbers), 1000):
        rows = await session.execute(
            select(Receivable).where(
                Receivable.policy_id == policy_id,
                Receivable.invoice_number.in_(numbers[start : start + 1000]),
            )
        )
        found.update({r.invoice_number: r for r in rows.scalars()})
    return found


async def existing_buyer_ids(session: AsyncSession, buyer_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = sorted(set(buyer_ids))
    for start in range(0, len(unique), 1000):
        rows = await session.execute(
            select(Buyer.id).where(Buyer.id.in_(unique[start : start + 1000]))
        )
        found.update(rows.scalars())
    return found


async def declarations_of(
    session: AsyncSession, buyer_ids: Sequence[str], *, policyholder_id: str | None = None,
    pending_only: bool = False, for_update: bool = False,
) -> dict[str, list[IndicatorDeclaration]]:  # fmt: skip
    """Each buyer's indicator declarations (oldest declared first): all, or only those of
    `policyholder_id` (named: its own), only the pending ones if asked."""
    statement = select(IndicatorDeclaration).where(IndicatorDeclaration.buyer_id.in_(buyer_ids))
    if policyholder_id is not None:
        statement = statement.where(IndicatorDeclaration.policyholder_id == policyholder_id)
    if pending_only:
        statement = statement.where(IndicatorDeclaration.status == "pending")
    if for_update:
        statement = statement.with_for_update()
    found: dict[str, list[IndicatorDeclaration]] = defaultdict(list)
    rows = await session.execute(
        statement.order_by(IndicatorDeclaration.declared_at, IndicatorDeclaration.id)
    )
    for declaration in rows.scalars():
        found[declaration.buyer_id].append(declaration)
    return found


async def turnover(
    session: AsyncSession, pol: Policy, period_from: dt.date, period_to: dt.date
) -> list[TurnoverLine]:
    """Per buyer, the turnover declared under the policy and shipped in the period, with what
    decides whether it bears premium: whether it was shipped while the policy was active (a line
    for each answer), legal form, country, sanctions, and whether the policyholder declared the
    buyer its affiliate (on a limit request under any of its policies, as coverage checks read
    it)."""
    # Read from the policy's own columns (joined), not bound: the same expression is grouped by.
    active = and_(
        Receivable.shipment_date >= Policy.start_date, Receivable.shipment_date <= Policy.end_date
    )
    while_active = case((active, literal_column("1")), else_=literal_column("0"))
    sanctioned = exists().where(
        or_(Sanction.buyer_id == Buyer.id, Sanction.country == Buyer.country)
    )
    declaring_policy = aliased(Policy)
    related = exists().where(
        LimitRequest.buyer_id == Buyer.id,
        LimitRequest.related_to_policyholder.is_(True),
        LimitRequest.policy_id == declaring_policy.id,
        declaring_policy.policyholder_id == pol.policyholder_id,
    )
    rows = await session.execute(
        select(
            type_coerce(func.sum(Receivable.amount), Amount()),
            func.count(),
            Buyer.legal_form,
            Buyer.country,
            sanctioned.label("sanctioned"),
            related.label("related"),
            while_active.label("while_active"),
        )
        .join(Buyer, Buyer.id == Receivable.buyer_id)
        .join(Policy, Policy.id == Receivable.policy_id)
        .where(
            Receivable.policy_id == pol.id,
            Receivable.shipment_date >= period_from,
            Receivable.shipment_date <= period_to,
        )
        .group_by(Buyer.id, Buyer.legal_form, Buyer.country, while_active)
        .order_by(Buyer.id)
    )
    return [
        TurnoverLine(amount, invoices, legal_form, country, bool(is_sanctioned), bool(is_related),
                     shipped_while_active=bool(in_period))
        for amount, invoices, legal_form, country, is_sanctioned, is_related, in_period
        in rows.all()
    ]  # fmt: skip


# ---------------------------------------------------------------- writes that may race
# Concurrent requests may write the same unique row at once; each of these ends in the rules'
# answer (inserted, or already there) instead of a unique violation.


def _dialect_insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


async def add_unless_taken(session: AsyncSession, row: Any, *unique: str) -> bool:
    """Insert a new ORM row unless a row with the same values of the `unique` columns exists
    (on PostgreSQL, one a concurrent transaction is inserting is waited for: if it commits, this
    one is not inserted); the row inserted becomes persistent in the session. Whether it was."""
    state = inspect(row)
    table = state.mapper.local_table
    values = {c.key: state.dict[c.key] for c in table.columns if c.key in state.dict}
    statement = (
        _dialect_insert(session)(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(*table.columns)
    )
    inserted = (await session.execute(statement)).mappings().first()
    if inserted is None:
        return False
    make_transient_to_detached(row)
    session.add(row)
    for c in table.columns:  # what the database filled in (its defaults) is known, not expired
        if c.key not in values:
            set_committed_value(row, c.key, inserted[c])
    return True


_DECLARED = ("buyer_id", "amount", "shipment_date", "due_date", "paid_amount", "paid_on",
             "updated_at")  # fmt: skip


def declaration_upsert_statement(dialect: str = "postgresql") -> Any:
    """INSERT … ON CONFLICT (policy, invoice number) DO UPDATE of declared invoices, returning
    each row's id (the id proposed when inserted, the known row's when updated), in invoice
    number order (concurrent declarations wait on each other in one order). On PostgreSQL a
    single statement over one array per column (`unnest`, its parameters
    `declaration_upsert_params`): one round trip and no SQL text growing with the rows (the
    benchmark runs the same statement bare), which leaves out a row naming a buyer that does
    not exist; elsewhere a statement for executemany."""
    if dialect == "postgresql":
        return _declared_arrays_upsert()
    return _on_conflict(sqlite_insert(Receivable))


def declaration_upsert_params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of PostgreSQL's upsert over arrays: one list per column, and the values
    every row shares (its policy and moment, those of the first row)."""
    first = rows[0] if rows else {}
    params = {f"{name}_list": [row[name] for row in rows] for name in _DECLARED_ARRAYS}
    return {**params, **{name: first.get(name) for name in _DECLARED_SHARED}}


def _on_conflict(statement: Any) -> Any:
    table = Receivable.__table__
    return statement.on_conflict_do_update(
        index_elements=["policy_id", "invoice_number"],
        set_={name: statement.excluded[name] for name in _DECLARED},
    ).returning(table.c.id, table.c.buyer_id)


@functools.cache
def _declared_arrays_upsert() -> Any:
    """PostgreSQL's upsert over one array per column, built once (building it per declaration
    took about a sixth of a one-invoice declaration's CPU); its values are parameters."""
    table: Any = Receivable.__table__
    arrays = [cast(bindparam(f"{name}_list", type_=postgresql_array(type_)),
                   postgresql_array(type_))
              for name, type_ in _DECLARED_ARRAYS.items()]  # fmt: skip
    given = func.unnest(*arrays).table_valued(*_DECLARED_ARRAYS).render_derived()
    shared = {name: cast(bindparam(name, type_=table.c[name].type), table.c[name].type)
              for name in _DECLARED_SHARED}  # fmt: skip
    return _on_conflict(postgresql_insert(table).from_select(
        [*_DECLARED_ARRAYS, *shared],
        select(*[given.c[name] for name in _DECLARED_ARRAYS], *shared.values())
        .where(exists().where(Buyer.id == given.c.buyer_id))
        .order_by(given.c.invoice_number),
    ))  # fmt: skip


_DECLARED_SHARED = ("policy_id", "created_at", "updated_at")


# The columns a declaration gives per invoice, as PostgreSQL arrays (`unnest`) of these types.
_DECLARED_ARRAYS: dict[str, Any] = {
    "id": String(40), "buyer_id": String(40), "invoice_number": String(100),
    "amount": Numeric(20, 4), "shipment_date": Date(), "due_date": Date(),
    "paid_amount": Numeric(20, 4), "paid_on": Date(),
}  # fmt: skip


async def declared_total_fits(session: AsyncSession, policy_id: str) -> bool:
    """Whether SQLite can add up the policy's declared amounts: it keeps them as integers scaled
    by 10^4 and its 64-bit sums overflow past about 9.2 × 10^14 (coverage, premium and portfolio
    health sum subsets of them, never more). PostgreSQL's NUMERIC always can."""
    if session.get_bind().dialect.name != "sqlite":
        return True
    try:
        await session.execute(
            select(func.sum(Receivable.amount)).where(Receivable.policy_id == policy_id)
        )
    except OperationalError as exc:
        if "overflow" not in str(exc.orig).lower():
            raise
        return False
    return True


class Declared(NamedTuple):
    """What a declaration's upsert did: how many invoices it inserted, and the buyers named that
    do not exist (when there are any, the caller refuses the declaration and keeps nothing)."""

    created: int
    unknown_buyers: set[str]


async def upsert_receivables(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> Declared:
    """Insert the declared invoices, or update those whose number the policy knows (one
    declared by a concurrent request is waited for, then updated), set-based: one statement
    on PostgreSQL (a few multi-row ones on SQLite, after reading the buyers), no ORM objects."""
    ordered = sorted(rows, key=lambda row: str(row["invoice_number"]))
    dialect = session.get_bind().dialect.name
    named = {str(row["buyer_id"]) for row in ordered}
    if dialect == "postgresql":
        statement = declaration_upsert_statement(dialect)
        returned = await session.execute(statement, declaration_upsert_params(ordered))
    else:
        unknown = named - await existing_buyer_ids(session, sorted(named))
        if unknown:
            return Declared(0, unknown)
        returned = await session.execute(declaration_upsert_statement(dialect), ordered)
    proposed = {str(row["id"]) for row in ordered}
    written = returned.all()
    return Declared(
        created=sum(1 for ident, _ in written if ident in proposed),
        unknown_buyers=named - {buyer_id for _, buyer_id in written},
    )


def _outstanding_on(day: dt.date, dialect: str) -> Any:
    """rules.Invoice.outstanding_on: nothing before shipment, else the amount less what was paid
    by `day`, never below zero."""
    paid = case((Receivable.paid_on <= day, Receivable.paid_amount), else_=literal_column("0"))
    left = Receivable.amount - paid
    floor = (func.greatest if dialect == "postgresql" else func.max)(left, literal_column("0"))
    return case((Receivable.shipment_date > day, literal_column("0")), else_=floor)


def _aged(due: Any, today: dt.date, buckets: Sequence[tuple[str, int, int | None]]) -> list[Any]:
    """rules.ageing's test of each bucket on the due date (the first bucket matching wins)."""
    tests: list[Any] = [due >= today]
    for _name, low, high in buckets:
        days_late = [due <= today - dt.timedelta(days=low)]
        if high is not None:
            days_late.append(due >= today - dt.timedelta(days=high))
        tests.append(and_(*days_late, *(not_(earlier) for earlier in tests)))
    return tests


def _summed(expression: Any, label: str) -> Any:
    return type_coerce(func.coalesce(func.sum(expression), literal_column("0")), Amount()).label(
        label
    )


def portfolio_health_statements(
    policy_id: str, today: dt.date, thresholds: HealthThresholds, dialect: str = "postgresql",
    *, policyholder_id: str | None = None,
) -> tuple[Any, Any]:  # fmt: skip
    """rules.health_totals in SQL: one aggregate of the policy's receivables (outstanding today
    and a year ago, the sales windows, overdue, ageing), and the buyers still owing, ranked by
    what they owe (ties by id), each with its confirmed indicators and those the policy's
    `policyholder_id` declared (never another policyholder's): the `top_buyers` first, then
    those with a current ratio (the rules' warnings read it)."""
    prior = today - dt.timedelta(days=PRIOR_YEAR_DAYS)
    window = dt.timedelta(days=thresholds.sales_window_days)
    now, then = _outstanding_on(today, dialect), _outstanding_on(prior, dialect)
    ship, due = Receivable.shipment_date, Receivable.due_date
    late = today - dt.timedelta(days=thresholds.overdue_after_days)
    aged = _aged(due, today, thresholds.buckets)
    totals = select(
        _summed(now, "outstanding"), _summed(then, "outstanding_prior_year"),
        _summed(case((and_(ship > today - window, ship <= today), Receivable.amount)), "sales"),
        _summed(case((and_(ship > prior - window, ship <= prior), Receivable.amount)),
                "sales_prior_year"),
        _summed(case((due < late, now)), "overdue"),
        *(_summed(case((test, now)), f"aged_{i}") for i, test in enumerate(aged)),
    ).where(Receivable.policy_id == policy_id)  # fmt: skip
    owed = type_coerce(func.sum(now), Amount())
    order_id = Receivable.buyer_id.collate("C") if dialect == "postgresql" else Receivable.buyer_id
    per_buyer = (
        select(Receivable.buyer_id.label("buyer_id"), owed.label("owed"),
               func.row_number().over(order_by=(owed.desc(), order_id)).label("place"))
        .where(Receivable.policy_id == policy_id)
        .group_by(Receivable.buyer_id)
        .having(func.sum(now) > literal_column("0"))
        .subquery("per_buyer")
    )  # fmt: skip
    own = aliased(IndicatorDeclaration, name="own_declaration")
    has_ratio = or_(
        Buyer.indicators["current_ratio"].as_string().is_not(None),
        own.indicators["current_ratio"].as_string().is_not(None),
    )
    buyers = (
        select(per_buyer.c.buyer_id, type_coerce(per_buyer.c.owed, Amount()), per_buyer.c.place,
               Buyer.indicators, own.indicators)
        .join(Buyer, Buyer.id == per_buyer.c.buyer_id)
        .outerjoin(own, and_(own.buyer_id == per_buyer.c.buyer_id,
                             own.policyholder_id == bindparam("policyholder_id", policyholder_id,
                                                              type_=String()),
                             own.status == "pending"))  # confirmed: in the buyer's; superseded: none
        .where(or_(per_buyer.c.place <= thresholds.top_buyers, has_ratio))
        .order_by(per_buyer.c.place)
    )  # fmt: skip
    return totals, buyers


@dataclass(frozen=True)
class HealthFigures:
    """What portfolio health reads: the sums, and the indicators of the buyers still owing
    that have a current ratio (confirmed, and declared by the policy's policyholder)."""

    totals: HealthTotals
    indicators: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]


async def portfolio_health_figures(
    session: AsyncSession, policy: Policy, today: dt.date, thresholds: HealthThresholds
) -> HealthFigures:
    dialect = session.get_bind().dialect.name
    totals, buyers = portfolio_health_statements(policy.id, today, thresholds, dialect,
                                                 policyholder_id=policy.policyholder_id)  # fmt: skip
    sums = (await session.execute(totals)).one()
    names = ["not_due", *(name for name, _, _ in thresholds.buckets)]
    largest: dict[str, Decimal] = {}
    indicators: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for buyer_id, owed, place, confirmed, declared in (await session.execute(buyers)).all():
        if place <= thresholds.top_buyers:
            largest[buyer_id] = owed
        indicators[buyer_id] = (confirmed, declared)
    return HealthFigures(
        totals=HealthTotals(
            outstanding=sums.outstanding,
            outstanding_prior_year=sums.outstanding_prior_year,
            sales=sums.sales,
            sales_prior_year=sums.sales_prior_year,
            overdue=sums.overdue,
            ageing=tuple((name, sums[5 + i]) for i, name in enumerate(names)),
            largest_buyers=largest,
        ),
        indicators=indicators,
    )


async def serialise_policies_of(session: AsyncSession, policyholder_id: str, currency: str) -> None:
    """Until the transaction ends, no other transaction writes a policy of this policyholder in
    this currency (`shared.db.take_turns`)."""
    await take_turns(session, _POLICY_LOCKS, (policyholder_id, currency), update(Policy)
                     .where(Policy.policyholder_id == policyholder_id, Policy.currency == currency)
                     .values(policyholder_id=Policy.policyholder_id))  # fmt: skip


_POLICY_LOCKS = "underwriting.policies: policyholder and currency"


async def overlapping_policy(
    session: AsyncSession, policyholder_id: str, currency: str, start: dt.date, end: dt.date
) -> str | None:
    """The oldest policy of the policyholder in the currency whose dates (both inclusive) share
    a day with [start, end]."""
    return (
        await session.execute(
            select(Policy.id)
            .where(
                Policy.policyholder_id == policyholder_id,
                Policy.currency == currency,
                Policy.start_date <= end,
                Policy.end_date >= start,
            )
            .order_by(Policy.created_at, Policy.id)
            .limit(1)
        )
    ).scalar_one_or_none()


# ---------------------------------------------------------------- coverage reads


class CoverageRow(NamedTuple):
    """The books as one coverage check reads them: one row of the coverage statement, in the
    order of `_coverage_columns` (a tuple, since a batch reads 10,000 of them)."""

    policy_id: str | None
    policyholder_id: str
    currency: str
    start_date: dt.date
    end_date: dt.date
    covered_countries: list[str] | None
    max_credit_period_days: int
    indemnity_pct: Decimal
    cover_type: str
    discretionary_limit: Decimal
    single_buyer_cap: Decimal | None
    buyer_id: str | None
    buyer_country: str
    buyer_legal_form: str
    buyer_grade: int
    bank_assigned: bool
    sanctioned: bool
    stopped: bool
    related: bool
    limit_id: str | None
    limit_terms_days: int | None
    decided_on: dt.date | None
    limit_amount: Decimal | None
    exposure: Decimal | None


NO_BOOKS = CoverageRow._make([None] * len(CoverageRow._fields))
_POLICY_COLUMNS = (
    Policy.id, Policy.policyholder_id, Policy.currency, Policy.start_date, Policy.end_date,
    Policy.covered_countries, Policy.max_credit_period_days, Policy.indemnity_pct,
    Policy.cover_type, Policy.discretionary_limit, Policy.single_buyer_cap,
)  # fmt: skip
_BUYER_COLUMNS = (Buyer.id, Buyer.country, Buyer.legal_form)


def _coverage_columns(policy_id: Any, buyer_id: Any, ship: Any, exposure: Any) -> list[Any]:
    """What a check reads for one receivable, correlated to the expressions naming its policy,
    buyer and shipment date, with its exposure: the single check passes parameters and
    `_exposure`, the batch the columns of its items and `_exposures_of_items`. Expects
    `policies`, `buyers` and `credit_limits` in the FROM.

    Each piece is named after the rule it states (`rules.<name>`); the parity tests
    (tests/underwriting/test_coverage_parity.py, test_coverage_batch_parity.py) run the edge
    cases through both."""
    today = bindparam("today", type_=Date)
    return [
        *_POLICY_COLUMNS,
        *(c.label(f"buyer_{c.key}") for c in _BUYER_COLUMNS),
        _grade_on(buyer_id, ship, today).label("buyer_grade"),
        _bank_assigned(policy_id).label("bank_assigned"),
        _sanctioned(buyer_id).label("sanctioned"),
        _stopped_on(policy_id, buyer_id, ship).label("stopped"),
        _affiliate(buyer_id).label("related"),
        CreditLimit.id.label("limit_id"),
        _limit_in_force(LimitAmount.payment_terms_days, ship).label("limit_terms_days"),
        CreditLimit.decided_on.label("decided_on"),
        type_coerce(_limit_in_force(LimitAmount.amount, ship), Amount()).label("limit_amount"),
        exposure.label("exposure"),
    ]


def _limit_in_force(value: Any, ship: Any) -> Any:
    """rules.amount_in_force: the entry of the limit's history in force on the shipment date
    (half-open entries, superseded ones left out); `value` is the column read from it."""
    return (
        select(value)
        .where(
            LimitAmount.limit_id == CreditLimit.id,
            LimitAmount.superseded_at.is_(None),
            LimitAmount.effective_from <= ship,
            or_(LimitAmount.effective_to.is_(None), LimitAmount.effective_to > ship),
        )
        .order_by(LimitAmount.effective_from.desc())
        .limit(1)
        .scalar_subquery()
    )


def _grade_on(buyer_id: Any, ship: Any, today: Any) -> Any:
    """rules.grade_on: the grade in force on the shipment date, the last entry of the history
    dated on or before it; before any entry, the first recorded (the registration); from today
    on, today's grade."""
    graded_then = (
        select(BuyerGrade.grade)
        .where(BuyerGrade.buyer_id == buyer_id, BuyerGrade.graded_on <= ship)
        .order_by(BuyerGrade.graded_on.desc(), BuyerGrade.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    graded_first = (
        select(BuyerGrade.grade)
        .where(BuyerGrade.buyer_id == buyer_id)
        .order_by(BuyerGrade.created_at, BuyerGrade.id)
        .limit(1)
        .scalar_subquery()
    )
    return case(
        (ship >= today, Buyer.grade),
        else_=func.coalesce(graded_then, graded_first, Buyer.grade),
    )


def _unpaid_today(today: Any) -> Any:
    """rules.unpaid_today: a receivable's amount less what was paid by today."""
    paid_by_today = case(
        (or_(Receivable.paid_on.is_(None), Receivable.paid_on <= today), Receivable.paid_amount),
        else_=literal(Decimal(0), Amount()),
    )
    return type_coerce(Receivable.amount, Amount()) - type_coerce(paid_by_today, Amount())


def _exposure(policy_id: Any, buyer_id: Any, ship: Any, invoice_number: Any, today: Any) -> Any:
    """rules.exposure: the buyer's receivables under the policy shipped on or before the
    shipment date and unpaid today, the receivable itself excluded."""
    return (
        select(type_coerce(func.coalesce(func.sum(_unpaid_today(today)), 0), Amount()))
        .where(
            Receivable.policy_id == policy_id,
            Receivable.buyer_id == buyer_id,
            Receivable.shipment_date <= ship,
            Receivable.invoice_number.is_distinct_from(invoice_number),
        )
        .scalar_subquery()
    )


def _exposures_of_items(items: Any) -> tuple[Any, Any]:
    """rules.exposure for every item of a chunk of a batch, in time growing with the items plus
    the receivables of their (policy, buyer) pairs, never their product (10,000 items on a
    buyer with 10,000 receivables would otherwise sum 100 million rows).

    An item alone on its pair in the chunk sums its pair's ledger as the single check does
    (`_exposure`: an index range, the cheapest for the usual item). The items of a pair with
    several share one pass over its ledger: its receivables (up to the pair's last shipment
    date) and its items in one stream in shipment-date order, a day's receivables before its
    items, the unpaid amounts summed as they run (the items adding nothing), so an item's
    running sum is what its pair had shipped on or before its shipment date and not paid
    today; less its own receivable when shipped by then (`_exposure`'s exclusion: at most one,
    an invoice number being unique in a policy), read by that unique key.

    Returns the stream's rows, of which the items are those of `kind` 1 (the batch selects from
    them where it selected from `items`), and the exposure on those rows."""
    today = bindparam("today", type_=Date)
    shared = (
        select(items.c.policy_id, items.c.buyer_id,
               func.max(items.c.shipment_date).label("last_shipped"))
        .group_by(items.c.policy_id, items.c.buyer_id)
        .having(func.count() > literal_column("1"))
        .subquery("shared")
    )  # fmt: skip
    nothing: Any = literal_column("NULL")
    ledger = select(
        Receivable.policy_id, Receivable.buyer_id, Receivable.shipment_date,
        literal_column("0").label("kind"), type_coerce(nothing, Integer).label("idx"),
        type_coerce(nothing, String).label("invoice_number"),
        _unpaid_today(today).label("unpaid"),
    ).join(shared, and_(shared.c.policy_id == Receivable.policy_id,
                        shared.c.buyer_id == Receivable.buyer_id,
                        Receivable.shipment_date <= shared.c.last_shipped))  # fmt: skip
    checked = select(
        items.c.policy_id, items.c.buyer_id, items.c.shipment_date,
        literal_column("1").label("kind"), items.c.idx, items.c.invoice_number,
        literal_column("0").label("unpaid"),
    )  # fmt: skip
    stream = ledger.union_all(checked).subquery("stream")
    pair = (stream.c.policy_id, stream.c.buyer_id)
    running = func.sum(stream.c.unpaid).over(
        partition_by=pair, order_by=(stream.c.shipment_date, stream.c.kind), rows=(None, 0)
    )
    ran = select(
        *(c for c in stream.c if c.key != "unpaid"),
        running.label("running"),
        func.sum(stream.c.kind).over(partition_by=pair).label("items_on_pair"),
    ).subquery("ran")
    own = (
        select(_unpaid_today(today))
        .where(
            Receivable.policy_id == ran.c.policy_id,
            Receivable.invoice_number == ran.c.invoice_number,
            Receivable.buyer_id == ran.c.buyer_id,
            Receivable.shipment_date <= ran.c.shipment_date,
        )
        .scalar_subquery()
    )
    zero: Any = literal_column("0")
    alone = _exposure(ran.c.policy_id, ran.c.buyer_id, ran.c.shipment_date, ran.c.invoice_number,
                      today)  # fmt: skip
    exposure = case(
        (ran.c.items_on_pair > literal_column("1"),
         func.coalesce(ran.c.running, zero) - func.coalesce(own, zero)),
        else_=alone,
    )  # fmt: skip
    return ran, type_coerce(exposure, Amount())


def _sanctioned(buyer_id: Any) -> Any:
    """Sanctions: the buyer, or its country, is sanctioned."""
    return exists().where(or_(Sanction.buyer_id == buyer_id, Sanction.country == Buyer.country))


def _affiliate(buyer_id: Any) -> Any:
    """rules.insurable (related to the policyholder): a buyer the policyholder declared an
    affiliate (on a limit request under any of its policies) is not insurable under that
    policyholder's policies."""
    declaring_policy = aliased(Policy)
    return exists().where(
        LimitRequest.buyer_id == buyer_id,
        LimitRequest.related_to_policyholder.is_(True),
        LimitRequest.policy_id == declaring_policy.id,
        declaring_policy.policyholder_id == Policy.policyholder_id,
    )


def _stopped_on(policy_id: Any, buyer_id: Any, ship: Any) -> Any:
    """rules.stopped_on: a stop-shipment notified before the shipment date and not cleared by
    it."""
    return exists().where(
        StopShipment.policy_id == policy_id,
        StopShipment.buyer_id == buyer_id,
        StopShipment.notified_on < ship,
        or_(StopShipment.cleared_on.is_(None), StopShipment.cleared_on > ship),
    )


def _bank_assigned(policy_id: Any) -> Any:
    """Whether the calling bank (parameter `bank_id`) holds an assignment of the policy."""
    return exists().where(
        PolicyAssignment.policy_id == policy_id,
        PolicyAssignment.bank_id == bindparam("bank_id", type_=String),
    )


def _single_statement() -> Any:
    """One receivable, named by parameters."""
    policy_id = bindparam("policy_id", type_=String)
    buyer_id = bindparam("buyer_id", type_=String)
    ship = bindparam("shipment_date", type_=Date)
    invoice_number = bindparam("invoice_number", type_=String)
    today = bindparam("today", type_=Date)
    columns = _coverage_columns(
        policy_id, buyer_id, ship, _exposure(policy_id, buyer_id, ship, invoice_number, today)
    )
    return (
        select(*columns)
        .select_from(Policy)
        .outerjoin(Buyer, Buyer.id == buyer_id)
        .outerjoin(
            CreditLimit, and_(CreditLimit.policy_id == Policy.id, CreditLimit.buyer_id == buyer_id)
        )
        .where(Policy.id == policy_id)
    )


# The items of a batch arrive as one JSON array parameter, unpacked by the database into rows:
# each item an array [index, policy id, buyer id, shipment date, invoice number or null].
_ITEM_ROWS = {
    "postgresql": "SELECT (e->>0)::int AS idx, e->>1 AS policy_id, e->>2 AS buyer_id, "
    "(e->>3)::date AS shipment_date, e->>4 AS invoice_number "
    "FROM jsonb_array_elements(CAST(:items AS text)::jsonb) AS e",
    "sqlite": "SELECT json_extract(value, '$[0]') AS idx, json_extract(value, '$[1]') AS policy_id, "
    "json_extract(value, '$[2]') AS buyer_id, json_extract(value, '$[3]') AS shipment_date, "
    "json_extract(value, '$[4]') AS invoice_number FROM json_each(:items)",
}


def _batch_statement(dialect: str) -> Any:
    """Every item of a batch in one statement: one row per item (in no particular order: each
    names its item), each carrying exactly the columns of the single check."""
    rows = text(_ITEM_ROWS[dialect]).columns(
        column("idx", Integer), column("policy_id", String), column("buyer_id", String),
        column("shipment_date", Date), column("invoice_number", String),
    )  # fmt: skip
    # Read twice (the pairs, the stream): unpacked once into a table (PostgreSQL materialises a
    # CTE read twice; SQLite is told to: it would otherwise read each item's fields out of its
    # JSON again at every use).
    items = rows.cte("items")
    if dialect == "sqlite":
        items = items.prefix_with("MATERIALIZED")
    ran, exposure = _exposures_of_items(items)
    columns = _coverage_columns(ran.c.policy_id, ran.c.buyer_id, ran.c.shipment_date, exposure)
    return (
        select(ran.c.idx, *columns)
        .select_from(ran)
        .outerjoin(Policy, Policy.id == ran.c.policy_id)
        .outerjoin(Buyer, Buyer.id == ran.c.buyer_id)
        .outerjoin(
            CreditLimit,
            and_(
                CreditLimit.policy_id == ran.c.policy_id,
                CreditLimit.buyer_id == ran.c.buyer_id,
            ),
        )
        .where(ran.c.kind == literal_column("1"))
    )


_SINGLE = Query(_single_statement())
_BATCH = {dialect: Query(_batch_statement(dialect)) for dialect in _ITEM_ROWS}


async def coverage_row(
    reader: Reader,
    *,
    policy_id: str,
    buyer_id: str,
    shipment_date: dt.date,
    today: dt.date,
    invoice_number: str | None,
    bank_id: str | None,
) -> CoverageRow:
    """One statement: the policy, the buyer, the limit in force on the shipment date, the
    exposure, stop-shipment and sanctions of one receivable."""
    values = await reader.first(
        _SINGLE,
        {"policy_id": policy_id, "buyer_id": buyer_id, "shipment_date": shipment_date,
         "today": today, "invoice_number": invoice_number, "bank_id": bank_id},
    )  # fmt: skip
    return NO_BOOKS if values is None else CoverageRow._make(values)


class ExposureRow(NamedTuple):
    """A buyer of a policy's book as the exposure page reads it: what `rules.limit_that_counts`
    needs for a shipment today, and the exposure (a row of `_EXPOSURE_PAGE`)."""

    buyer_id: str
    limit_id: str | None  # the credit limit granted on it (one with a history of amounts)
    decided_on: dt.date | None  # the insurer's first decision on it (a refusal too)
    limit_amount: Decimal | None  # the limit's amount in force today
    limit_terms_days: int | None
    buyer_grade: int  # today's
    exposure: Decimal


def _exposure_page(*, named: bool) -> Select[Any]:
    """A page of a policy's book, by buyer id: the buyers with a credit limit granted (an amount
    in its history, in force or not) and those with receivables declared (paid or not), each
    once, with the books `rules.limit_that_counts` reads for a shipment today
    (`_coverage_columns`'s pieces) and `rules.exposure` of every shipment date; `named`: only
    the buyers of the parameter `buyer_ids`.

    A page costs what its own buyers cost, however large the book: its buyers are the first
    `page_size` after `after_buyer` of the two index ranges, the policy's limits (its unique
    (policy, buyer) key) and its receivables (`ix_receivables_policy_buyer_shipment`), each read
    from the cursor on in buyer order, only as far as the page needs; each buyer's exposure is
    summed over its own receivables (its range of that index). A buyer one more than the page
    is read too, to tell whether a page follows (the last column: more); its books are not."""
    policy_id = bindparam("policy_id", type_=String)
    today = bindparam("today", type_=Date)
    size = bindparam("page_size", type_=Integer)

    def after_cursor(buyer_id: Any) -> list[Any]:
        chosen = [buyer_id > bindparam("after_buyer", type_=String)]
        if named:
            chosen.append(buyer_id.in_(bindparam("buyer_ids", expanding=True, type_=String)))
        return chosen

    granted = exists().where(LimitAmount.limit_id == CreditLimit.id)
    with_limit = (
        select(CreditLimit.buyer_id)
        .where(CreditLimit.policy_id == policy_id, *after_cursor(CreditLimit.buyer_id), granted)
        .order_by(CreditLimit.buyer_id)
        .limit(size + 1)
        .subquery("with_limit")
    )
    declared = (
        select(Receivable.buyer_id)
        .distinct()
        .where(Receivable.policy_id == policy_id, *after_cursor(Receivable.buyer_id))
        .order_by(Receivable.buyer_id)
        .limit(size + 1)
        .subquery("declared")
    )
    either = union(select(with_limit.c.buyer_id), select(declared.c.buyer_id)).subquery("either")
    following = (
        select(either.c.buyer_id).order_by(either.c.buyer_id).limit(size + 1).cte("following")
    )
    page = select(following.c.buyer_id).order_by(following.c.buyer_id).limit(size).subquery("page")
    exposure = (
        select(func.coalesce(func.sum(_unpaid_today(today)), literal_column("0")))
        .where(Receivable.policy_id == policy_id, Receivable.buyer_id == page.c.buyer_id)
        .scalar_subquery()
    )
    more = select(func.count()).select_from(following).scalar_subquery() > size
    return (
        select(
            page.c.buyer_id,
            case((granted, CreditLimit.id)).label("limit_id"),
            CreditLimit.decided_on,
            type_coerce(_limit_in_force(LimitAmount.amount, today), Amount()),
            _limit_in_force(LimitAmount.payment_terms_days, today),
            # rules.grade_on: from today on, today's grade (`_grade_on`'s first branch).
            Buyer.grade,
            type_coerce(exposure, Amount()),
            more,
        )
        .select_from(page)
        .join(Buyer, Buyer.id == page.c.buyer_id)
        .outerjoin(CreditLimit, and_(CreditLimit.policy_id == policy_id,
                                     CreditLimit.buyer_id == page.c.buyer_id))
        .order_by(page.c.buyer_id)
    )  # fmt: skip


_EXPOSURE_PAGE = {named: _exposure_page(named=named) for named in (False, True)}


async def exposure_page(
    session: AsyncSession, policy_id: str, today: dt.date, page: KeyPageRequest,
    buyer_ids: Sequence[str] | None = None,
) -> tuple[list[ExposureRow], str | None]:  # fmt: skip
    """One page of the policy's book (`_exposure_page`), of the `buyer_ids` only when named,
    and the cursor of the next."""
    # The first page is the one after "", which comes before every id.
    params: dict[str, Any] = {"policy_id": policy_id, "today": today, "page_size": page.limit,
                              "after_buyer": page.after or ""}  # fmt: skip
    if buyer_ids is not None:
        params["buyer_ids"] = sorted(set(buyer_ids))
    rows = (await session.execute(_EXPOSURE_PAGE[buyer_ids is not None], params)).all()
    cursor = page.cursor(rows[-1].buyer_id) if rows and rows[-1][-1] else None
    return [ExposureRow._make(row[:-1]) for row in rows], cursor


class BatchItem(NamedTuple):
    """One item of a batch, as its statement reads it (a tuple: a batch has 10,000)."""

    position: int  # in the batch
    policy_id: str
    buyer_id: str
    shipment_date: dt.date
    invoice_number: str | None


async def coverage_rows(
    reader: Reader,
    items: Sequence[BatchItem],
    *,
    today: dt.date,
    bank_id: str | None,
    chunk: int = 1000,
    parallel: int = 4,
) -> AsyncIterator[list[tuple[int, CoverageRow]]]:
    """The coverage rows of many receivables, `chunk` items per statement, several statements
    in flight at once; yielded chunk by chunk, in order, as (item index, row) (a chunk's rows in
    no particular order)."""
    param_sets = [
        {"items": _items_json(items[start : start + chunk]), "today": today, "bank_id": bank_id}
        for start in range(0, len(items), max(1, chunk))
    ]
    async for rows in reader.each(_BATCH[reader.dialect], param_sets, parallel=parallel):
        yield [(row[0], CoverageRow._make(row[1:])) for row in rows]


def _items_json(items: Sequence[BatchItem]) -> str:
    """The items as `_ITEM_ROWS` reads them (dates written as ISO dates by orjson)."""
    return orjson.dumps([tuple(item) for item in items]).decode()


# ---------------------------------------------------------------- who may read what


def _party_holds_buyer(party_id: str) -> Any:
    """A buyer is a policyholder's when it registered it, or holds a limit or a limit request on
    it under one of its policies."""
    return or_(
        Buyer.registered_by == party_id,
        exists().where(
            CreditLimit.buyer_id == Buyer.id,
            Policy.id == CreditLimit.policy_id,
            Policy.policyholder_id == party_id,
        ),
        exists().where(
            LimitRequest.buyer_id == Buyer.id,
            Policy.id == LimitRequest.policy_id,
            Policy.policyholder_id == party_id,
        ),
    )


def buyers_listed(
    *, country: str | None, registration_key: str | None, party_id: str | None,
    ids: Sequence[str] | None = None,
) -> Any:  # fmt: skip
    """The buyers a list shows: every buyer for staff; for a policyholder (`party_id`) its own,
    or any buyer looked up by its exact country and registration key (both given); with `ids`,
    only those of them."""
    statement = select(Buyer)
    if ids is not None:
        statement = statement.where(Buyer.id.in_(set(ids)))
    if country:
        statement = statement.where(Buyer.country == country)
    if registration_key:
        statement = statement.where(Buyer.registration_key == registration_key)
    if party_id is not None and not (country and registration_key):
        statement = statement.where(_party_holds_buyer(party_id))
    return statement


async def party_holds_buyer(session: AsyncSession, party_id: str, buyer_id: str) -> bool:
    hit = await session.execute(
        select(exists().where(Buyer.id == buyer_id, _party_holds_buyer(party_id)))
    )
    return bool(hit.scalar())


def grade_history_listed(buyer_id: str) -> Any:
    return select(BuyerGrade).where(BuyerGrade.buyer_id == buyer_id)


def signals_listed(buyer_id: str, *, party_id: str | None) -> Any:
    """A buyer's signals; for a policyholder (`party_id`) only those recorded under its own
    policies."""
    statement = select(BuyerSignal).where(BuyerSignal.buyer_id == buyer_id)
    if party_id is not None:
        statement = statement.where(
            BuyerSignal.policy_id.in_(select(Policy.id).where(Policy.policyholder_id == party_id))
        )
    return statement


async def listed_signal(
    session: AsyncSession, buyer_id: str, signal_id: str, *, party_id: str | None
) -> BuyerSignal | None:
    """One signal of a buyer, if `signals_listed` shows it."""
    statement = signals_listed(buyer_id, party_id=party_id).where(BuyerSignal.id == signal_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def assignment(session: AsyncSession, assignment_id: str) -> PolicyAssignment | None:
    return await session.get(PolicyAssignment, assignment_id)


def policies_listed(*, policyholder_id: str | None, bank_id: str | None,
                    ids: Sequence[str] | None = None) -> Any:  # fmt: skip
    """The policies a list shows: every policy (optionally one policyholder's), or those a bank
    is assigned to; with `ids`, only those of them."""
    statement = select(Policy)
    if ids is not None:
        statement = statement.where(Policy.id.in_(set(ids)))
    if policyholder_id is not None:
        statement = statement.where(Policy.policyholder_id == policyholder_id)
    if bank_id is not None:
        statement = statement.where(
            exists().where(
                PolicyAssignment.policy_id == Policy.id, PolicyAssignment.bank_id == bank_id
            )
        )
    return statement


async def bank_ids_of(session: AsyncSession, policy_ids: Sequence[str]) -> dict[str, list[str]]:
    """The banks assigned to each policy, in the order they were assigned."""
    found: dict[str, list[str]] = defaultdict(list)
    if not policy_ids:
        return found
    rows = await session.execute(
        select(PolicyAssignment.policy_id, PolicyAssignment.bank_id)
        .where(PolicyAssignment.policy_id.in_(set(policy_ids)))
        .order_by(PolicyAssignment.created_at, PolicyAssignment.id)
    )
    for policy_id, bank_id in rows.all():
        found[policy_id].append(bank_id)
    return found


async def limit_request(
    session: AsyncSession, request_id: str, *, for_update: bool = False
) -> LimitRequest | None:
    if not for_update:
        return await session.get(LimitRequest, request_id)
    statement = select(LimitRequest).where(LimitRequest.id == request_id).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


def limit_requests_listed(*, status: LimitRequestStatus | None) -> Any:
    statement = select(LimitRequest)
    if status:
        statement = statement.where(LimitRequest.status == status)
    return statement


async def policy_currencies(session: AsyncSession, policy_ids: Sequence[str]) -> dict[str, str]:
    rows = await session.execute(
        select(Policy.id, Policy.currency).where(Policy.id.in_(set(policy_ids)))
    )
    return {policy_id: currency for policy_id, currency in rows.all()}


def limits_with_history(policy_id: str) -> Any:
    """The limits of a policy that have an amount (one per buyer)."""
    return select(CreditLimit).where(
        CreditLimit.policy_id == policy_id,
        exists().where(LimitAmount.limit_id == CreditLimit.id),
    )


def sanctions_listed() -> Any:
    return select(Sanction)


async def sanction(session: AsyncSession, sanction_id: str) -> Sanction | None:
    return await session.get(Sanction, sanction_id)


async def sanction_listing(
    session: AsyncSession, *, country: str | None, buyer_id: str | None
) -> Sanction | None:
    """The listing of this country, or of this buyer, if it is on the sanctions list."""
    target = Sanction.country == country if country is not None else Sanction.buyer_id == buyer_id
    return (await session.execute(select(Sanction).where(target))).scalar_one_or_none()


async def delete(session: AsyncSession, row: Any) -> None:
    await session.delete(row)
    await session.flush()


# ---------------------------------------------------------------- who hears of an event


async def parties_of_policy(session: AsyncSession, policy_id: str) -> list[Party]:
    """The parties that hear of a policy's events: its policyholder and the banks assigned to
    it now, each as its role."""
    rows = await session.execute(
        select(literal("policyholder", String), Policy.policyholder_id)
        .where(Policy.id == policy_id).union(
            select(literal("bank", String), PolicyAssignment.bank_id)
            .where(PolicyAssignment.policy_id == policy_id))
    )  # fmt: skip
    return sorted(Party(role, party) for role, party in rows.all())


async def parties_on_buyer(session: AsyncSession, buyer_id: str) -> list[Party]:
    """The parties that hear of a buyer's grade: the policyholders holding a limit or a limit
    request on it, and the banks assigned to those policies, each as its role."""
    rows = await session.execute(_PARTIES_ON_BUYER, {"buyer_id": buyer_id})
    return sorted(Party(role, party) for role, party in rows.all())


def _parties_on_buyer_statement() -> CompoundSelect[str, str]:
    buyer_id = bindparam("buyer_id", type_=String)
    held = select(CreditLimit.policy_id).where(CreditLimit.buyer_id == buyer_id).union(
        select(LimitRequest.policy_id).where(LimitRequest.buyer_id == buyer_id)).subquery()  # fmt: skip
    return select(literal("policyholder", String), Policy.policyholder_id).where(
        Policy.id.in_(select(held.c.policy_id))).union(
            select(literal("bank", String), PolicyAssignment.bank_id).where(
                PolicyAssignment.policy_id.in_(select(held.c.policy_id))))  # fmt: skip


_PARTIES_ON_BUYER = _parties_on_buyer_statement()
