"""The whole book's queries, set-based: a country's risk level re-grades every buyer of it and
its limits follow, in a few statements over temporary tables per slice of the book (a slice of
buyers by id, one transaction each: `limits.set_country_risk` runs them, some at once).

The grade stays the one Python rule (`rules.grade_buyer`): buyers are grouped by what the rule
reads (confirmed indicators, insolvency, signals), each distinct profile is graded once, in chunks
read by key (fixed memory), and the grades go back to the buyers by a join. Likewise the halving
rule is asked once per distinct (grade before, grade after, notice period). Only the halved amount
(`rules.halved`) has a SQL twin, on both engines (PostgreSQL NUMERIC, SQLite scaled integers).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from services.underwriting.models import (
    Buyer,
    BuyerGrade,
    BuyerSignal,
    CreditLimit,
    LimitAmount,
    LimitRequest,
    Policy,
    PolicyAssignment,
    events,
)
from services.underwriting.rules.grade import (
    CREDITOR_EPISODE_KINDS,
    POLICY_EPISODE_KINDS,
    ObservedSignal,
)
from services.underwriting.rules.limit_changes import SIGNAL_SOURCE
from shared.db import Amount, UTCDateTime, new_ids_sql
from shared.events import record_events_from

_temp = MetaData()


def _temporary(name: str, *columns: Column[Any]) -> Table:
    # Dropped at the commit on PostgreSQL; on SQLite (no ON COMMIT) at the start of the next run.
    return Table(name, _temp, *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


profiles = _temporary(
    "book_profiles",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("indicators", Text, nullable=False),
    Column("insolvent", Boolean, nullable=False),
    Column("signals", Text, nullable=False),
    Column("grade", Integer),
    Column("factors", JSON),
)
regraded = _temporary(
    "book_regraded",
    Column("buyer_id", String(40), primary_key=True),
    Column("grade_before", Integer, nullable=False),
    Column("grade_after", Integer, nullable=False),
    Column("profile_id", Integer, nullable=False),
)
# The limits of the slice's buyers whose grade moved, with what a halving reads of their policy
# (`grade_moves`): read from the book once, then joined by the statements after it.
moved_limits = _temporary(
    "book_moved_limits",
    Column("limit_id", String(40), primary_key=True),
    Column("buyer_id", String(40), nullable=False),
    Column("policy_id", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("notice_days", Integer, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("grade_before", Integer, nullable=False),
    Column("grade_after", Integer, nullable=False),
)
notices = _temporary(
    "book_notices",
    Column("grade_before", Integer, primary_key=True),
    Column("grade_after", Integer, primary_key=True),
    Column("notice_days", Integer, primary_key=True),
    Column("effective_from", Date, nullable=False),
    Column("reason", Text, nullable=False),
)
# One row per amount halved (`rules.halves`): a limit's amount running on the halving's date
# (`halving_from`) and each one scheduled to start later, each until its own end; the amount
# halved (`amount_id`, starting on `amount_from`) is ended or superseded by its id.
halvings = _temporary(
    "book_halvings",
    Column("limit_id", String(40), primary_key=True),
    Column("effective_from", Date, primary_key=True),
    Column("amount_id", String(40), nullable=False),
    Column("amount_from", Date, nullable=False),
    Column("policy_id", String(40), nullable=False),
    Column("buyer_id", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_before", Amount(), nullable=False),
    Column("amount_after", Amount()),
    Column("payment_terms_days", Integer),
    Column("halving_from", Date, nullable=False),
    Column("effective_to", Date),
    Column("reason", Text, nullable=False),
)
_TABLES = (profiles, regraded, moved_limits, notices, halvings)


class Profile(NamedTuple):
    id: int
    indicators: dict[str, Any]
    insolvent: bool
    signals: list[ObservedSignal]


def _create_temporary_tables(sync: Connection) -> None:
    for table in _TABLES:
        table.drop(sync, checkfirst=True)
        table.create(sync)


async def _connection(session: AsyncSession) -> AsyncConnection:
    return await session.connection()


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def start(session: AsyncSession) -> None:
    """Fresh temporary tables for this transaction (and, on PostgreSQL, more memory for its
    joins: they run over the whole book)."""
    conn = await _connection(session)
    await conn.run_sync(_create_temporary_tables)
    if _dialect(session) == "postgresql":
        await session.execute(select(func.set_config("work_mem", "256MB", True)))


class Slice(NamedTuple):
    """A part of a country's book that one transaction re-grades: its buyers graded before
    `graded_before` (the run's start: a buyer graded since is graded at the new level already, and
    one re-graded by an earlier part of the run is done), with ids after `after_id` up to
    `through_id` (None: from the first, to the last)."""

    country: str
    graded_before: dt.datetime
    after_id: str | None = None
    through_id: str | None = None

    def buyers(self) -> Any:
        """The condition on `Buyer` that selects the slice's buyers."""
        return and_(Buyer.country == self.country, Buyer.graded_at < self.graded_before,
                    self.ids(Buyer.id))  # fmt: skip

    def ids(self, buyer_id: Any) -> Any:
        """The condition that a buyer id column (of `Buyer` or of a table keyed by buyer) lies in
        the slice's range: a join to the slice's buyers then reads that range of the column's
        index, not the whole book once per slice."""
        conditions = [true()]
        if self.after_id is not None:
            conditions.append(buyer_id > self.after_id)
        if self.through_id is not None:
            conditions.append(buyer_id <= self.through_id)
        return and_(*conditions)


async def slice_bounds(session: AsyncSession, book: Slice, size: int) -> list[str]:
    """The buyer ids that end each slice of `size` buyers of `book` (by id), the last slice
    open-ended after them: one read of the country's ids, in the database."""
    numbered = (
        select(Buyer.id, func.row_number().over(order_by=Buyer.id).label("n"))
        .where(book.buyers())
        .subquery()
    )
    rows = await session.execute(
        select(numbered.c.id).where(numbered.c.n % size == 0).order_by(numbered.c.id)
    )
    return list(rows.scalars())


# The kinds whose policy, and whose creditor, the grade rule reads (a delay is one while it lasts).
_POLICY_KINDS = sorted(POLICY_EPISODE_KINDS)
_CREDITOR_KINDS = sorted(CREDITOR_EPISODE_KINDS)


def _party_of(kinds: list[str], column: Any) -> Any:
    """A signal's party (`column`) when the rule reads it of its kind, else empty: a profile
    differs only where the grade may."""
    return case((BuyerSignal.kind.in_(kinds), func.coalesce(column, "")), else_="")


def _signals_of_buyers(dialect: str, book: Slice, after: dt.date) -> Any:
    """Per buyer of the slice with signals observed after `after` (the older ones weigh on no
    grade of today: `rules.signals_counted_after`) that weigh on it (`BuyerSignal.weighed`, as
    `repository.signals_of` reads them), each as `kind@date@policy@creditor@n`,
    `;`-separated: the policy and the creditor only of the kinds the rule reads them of, `n` the
    signal's place in the order observed, then recorded (`repository.signals_of`'s order, which
    the rule counts in)."""
    of_slice = select(Buyer.id).where(book.buyers())
    place = func.row_number().over(
        partition_by=BuyerSignal.buyer_id,
        order_by=(BuyerSignal.observed_on, BuyerSignal.created_at, BuyerSignal.id),
    )
    numbered = (
        select(BuyerSignal.buyer_id, BuyerSignal.kind,
               cast(BuyerSignal.observed_on, String).label("observed_on"),
               _party_of(_POLICY_KINDS, BuyerSignal.policy_id).label("policy_id"),
               _party_of(_CREDITOR_KINDS, BuyerSignal.creditor_id).label("creditor_id"),
               place.label("place"))
        .where(BuyerSignal.buyer_id.in_(of_slice), BuyerSignal.observed_on > after,
               BuyerSignal.weighed)
        .subquery()
    )  # fmt: skip
    n = numbered.c
    item = (n.kind + "@" + n.observed_on + "@" + n.policy_id + "@" + n.creditor_id + "@"
            + cast(n.place, String))  # fmt: skip
    aggregate = (
        func.string_agg(item, aggregate_order_by(literal(";", String), n.place))
        if dialect == "postgresql"
        else func.group_concat(item, ";")
    )
    return (
        select(n.buyer_id.label("buyer_id"), aggregate.label("signals"))
        .group_by(n.buyer_id)
        .subquery()
    )


def _book_of(dialect: str, book: Slice, signals_after: dt.date) -> tuple[Any, Any, Any, Any]:
    """The buyers of the slice with what the grade rule reads: (signals, indicators text,
    insolvent, signals text) columns over `Buyer` outer-joined to its signals."""
    signals = _signals_of_buyers(dialect, book, signals_after)
    indicators = cast(Buyer.indicators, Text)
    insolvent = Buyer.insolvent_since.is_not(None)
    return signals, indicators, insolvent, func.coalesce(signals.c.signals, "")


async def collect_profiles(session: AsyncSession, book: Slice, *, signals_after: dt.date) -> None:
    """Every distinct (indicators, insolvency, signals observed after `signals_after`) among the
    buyers of the slice."""
    signals, indicators, insolvent, signals_text = _book_of(_dialect(session), book,
                                                            signals_after)  # fmt: skip
    distinct = (
        select(indicators, insolvent, signals_text)
        .select_from(Buyer)
        .outerjoin(signals, signals.c.buyer_id == Buyer.id)
        .where(book.buyers())
        .distinct()
    )
    await session.execute(
        insert(profiles).from_select(["indicators", "insolvent", "signals"], distinct)
    )


async def profiles_after(session: AsyncSession, last_id: int, chunk: int) -> list[Profile]:
    """The next `chunk` profiles by id: the caller grades them and asks for the next ones."""
    rows = await session.execute(
        select(profiles.c.id, profiles.c.indicators, profiles.c.insolvent, profiles.c.signals)
        .where(profiles.c.id > last_id)
        .order_by(profiles.c.id)
        .limit(chunk)
    )
    return [
        Profile(ident, json.loads(raw) or {}, bool(insolvent), _parsed_signals(signals))
        for ident, raw, insolvent, signals in rows.all()
    ]


def _parsed_signals(text: str) -> list[ObservedSignal]:
    """The signals of `_signals_of_buyers`' text, in their order."""
    found = []
    for item in filter(None, text.split(";")):
        kind, on, policy_id, creditor_id, place = item.split("@")
        found.append((int(place), ObservedSignal(kind, dt.date.fromisoformat(on), policy_id or None,
                                                 creditor_id or None)))  # fmt: skip
    return [signal for _, signal in sorted(found)]


async def grade_profiles(session: AsyncSession, graded: Sequence[Mapping[str, Any]]) -> None:
    """Each profile's grade and factors: `{"pid", "grade", "factors"}`."""
    if graded:
        statement = (
            update(profiles)
            .where(profiles.c.id == bindparam("pid"))
            .values(grade=bindparam("grade"), factors=bindparam("factors"))
        )
        await (await _connection(session)).execute(statement, list(graded))


async def mark_regraded(session: AsyncSession, book: Slice, *, signals_after: dt.date) -> int:
    """The buyers of the slice, each with its grade before and after (its profile's, as
    `collect_profiles` made them), locked until the commit on PostgreSQL; how many."""
    signals, indicators, insolvent, signals_text = _book_of(_dialect(session), book,
                                                            signals_after)  # fmt: skip
    statement = (
        select(Buyer.id, Buyer.grade, profiles.c.grade, profiles.c.id)
        .select_from(Buyer)
        .outerjoin(signals, signals.c.buyer_id == Buyer.id)
        .join(profiles, and_(profiles.c.indicators == indicators,
                             profiles.c.insolvent == insolvent,
                             profiles.c.signals == signals_text))
        .where(book.buyers())
    )  # fmt: skip
    if _dialect(session) == "postgresql":
        statement = statement.with_for_update(of=Buyer)
    await session.execute(insert(regraded).from_select(
        ["buyer_id", "grade_before", "grade_after", "profile_id"], statement))  # fmt: skip
    return int((await session.execute(select(func.count()).select_from(regraded))).scalar_one())


def _typed(session: AsyncSession, value: Any, type_: Any) -> Any:
    """A value bound in a SELECT list: PostgreSQL needs its type spelled out."""
    bound = literal(value, type_)
    return cast(bound, type_) if _dialect(session) == "postgresql" else bound


async def apply_grades(
    session: AsyncSession, book: Slice, *, today: dt.date, level: int, by: str, now: dt.datetime
) -> None:
    """Each re-graded buyer (of `book`) takes its new grade and factors, and its grade history an
    entry."""
    await session.execute(
        update(Buyer)
        .where(Buyer.id == regraded.c.buyer_id, profiles.c.id == regraded.c.profile_id,
               book.ids(Buyer.id))
        .values(grade=regraded.c.grade_after, grade_factors=profiles.c.factors, graded_at=now)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    # Written in the order of the buyers (their ids numbered in it): the history's index by buyer
    # takes them one after the other, not all over it.
    entries = (
        select(new_ids_sql(_dialect(session), "grd", order_by=regraded.c.buyer_id),
               regraded.c.buyer_id,
               _typed(session, today, Date()), regraded.c.grade_after, profiles.c.factors,
               Buyer.indicators, _typed(session, level, Integer()),
               literal_column("'country_risk'", String), _typed(session, by, String()),
               _typed(session, now, UTCDateTime()))
        .join(profiles, profiles.c.id == regraded.c.profile_id)
        .join(Buyer, and_(Buyer.id == regraded.c.buyer_id, book.ids(Buyer.id)))
        .order_by(regraded.c.buyer_id)
    )  # fmt: skip
    await session.execute(insert(BuyerGrade).from_select(
        ["id", "buyer_id", "graded_on", "grade", "factors", "indicators", "country_risk_level",
         "cause", "created_by", "created_at"], entries))  # fmt: skip


async def grade_moves(session: AsyncSession, book: Slice) -> list[tuple[int, int, int]]:
    """The limits of the re-graded buyers (of `book`) whose grade moved, kept for the halving
    (`moved_limits`); each distinct (grade before, grade after, the policy's reduction notice
    days) among them."""
    r, ml = regraded, moved_limits
    await session.execute(insert(ml).from_select(
        ["limit_id", "buyer_id", "policy_id", "currency", "notice_days", "end_date",
         "grade_before", "grade_after"],
        select(CreditLimit.id, CreditLimit.buyer_id, CreditLimit.policy_id, Policy.currency,
               Policy.reduction_notice_days, Policy.end_date, r.c.grade_before, r.c.grade_after)
        .join(CreditLimit, and_(CreditLimit.buyer_id == r.c.buyer_id,
                                book.ids(CreditLimit.buyer_id)))
        .join(Policy, Policy.id == CreditLimit.policy_id)
        .where(r.c.grade_before != r.c.grade_after),
    ))  # fmt: skip
    rows = await session.execute(
        select(ml.c.grade_before, ml.c.grade_after, ml.c.notice_days).distinct()
    )
    return [(before, after, days) for before, after, days in rows.all()]


async def add_notices(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """The moves that halve limits: `{"grade_before", "grade_after", "notice_days",
    "effective_from", "reason"}`."""
    if rows:
        await (await _connection(session)).execute(insert(notices), list(rows))


def _halved(dialect: str, amount: Any, units: _Units) -> Any:
    """SQL twin of `rules.halved`: half, rounded half-up to the currency's minor unit."""
    if dialect == "postgresql":
        return func.round(amount / 2, units.minor)
    scaled = type_coerce(amount, Integer)  # SQLite: integers scaled by `_SCALE`, floor division
    return type_coerce((scaled + units.quantum) // (2 * units.quantum) * units.quantum, Amount())


def _amount_text(dialect: str, amount: Any, units: _Units) -> Any:
    """An amount as `Money.rounded_text` writes it ("1250.50", "1250" for a currency without
    minor unit), from a value already at the minor unit."""
    if dialect == "postgresql":
        return cast(func.round(amount, units.minor), String)
    scaled = type_coerce(amount, Integer)
    whole, fraction = scaled // 10**_SCALE, scaled % 10**_SCALE // units.quantum
    return case(
        (units.minor == 0, func.printf("%d", whole)),
        else_=func.printf(literal("%d.%0", String) + cast(units.minor, String) + "d", whole,
                          fraction),
    )  # fmt: skip


_SCALE = Amount().scale  # SQLite keeps amounts as integers scaled by it


class _Units(NamedTuple):
    """A currency column's minor unit (decimals) and, on SQLite, its quantum in scaled units."""

    minor: Any
    quantum: Any


def _units(minor_units: Mapping[str, int], currency: Any) -> _Units:
    if not minor_units:  # no currency known (no policy): nothing will be halved
        return _Units(literal(2, Integer()), literal(10 ** (_SCALE - 2), Integer()))
    return _Units(
        case(dict(minor_units), value=currency, else_=2),
        case({c: 10 ** (_SCALE - m) for c, m in minor_units.items()}, value=currency,
             else_=10 ** (_SCALE - 2)),
    )  # fmt: skip


async def collect_halvings(
    session: AsyncSession, *, minor_units: Mapping[str, int], today: dt.date
) -> int:
    """The limits (of `grade_moves`) whose move halves them, each amount the halving halves
    with its half (`minor_units`: of every currency of a policy) from `rules.halved_from`:
    `rules.halved_again`, above zero, running on its effective date or starting later, and not
    a half of a downgrade's halving still to come (`rules.halvings_to_come`: the amounts a signal
    wrote at one time, none of them started by `today`). Not a limit whose policy ends before the
    halving's date (`rules.halving_lapses`: it lapses with the policy). How many limits."""
    n, ml = notices, moved_limits
    amount, sibling = LimitAmount, aliased(LimitAmount)
    zero = literal(0, Amount())
    half = _halved(_dialect(session), amount.amount, _units(minor_units, ml.c.currency))
    starts = case((amount.effective_from > n.c.effective_from, amount.effective_from),
                  else_=n.c.effective_from)  # fmt: skip
    its_halving_started = exists().where(
        sibling.limit_id == amount.limit_id, sibling.superseded_at.is_(None),
        sibling.source == SIGNAL_SOURCE, sibling.created_at == amount.created_at,
        sibling.amount > zero, sibling.effective_from <= _typed(session, today, Date()))  # fmt: skip
    statement = (
        select(ml.c.limit_id, starts, amount.id, amount.effective_from, ml.c.policy_id,
               ml.c.buyer_id, ml.c.currency, amount.amount, half, amount.payment_terms_days,
               n.c.effective_from, amount.effective_to, n.c.reason)
        .select_from(ml)
        .join(n, and_(n.c.grade_before == ml.c.grade_before,
                      n.c.grade_after == ml.c.grade_after,
                      n.c.notice_days == ml.c.notice_days))
        .join(amount, and_(amount.limit_id == ml.c.limit_id, amount.superseded_at.is_(None),
                           or_(amount.effective_to.is_(None),
                               amount.effective_to > n.c.effective_from)))
        .where(amount.amount > zero, n.c.effective_from <= ml.c.end_date,
               or_(amount.source != SIGNAL_SOURCE, its_halving_started))
    )  # fmt: skip
    await session.execute(insert(halvings).from_select(
        ["limit_id", "effective_from", "amount_id", "amount_from", "policy_id", "buyer_id",
         "currency", "amount_before",
         "amount_after", "payment_terms_days", "halving_from", "effective_to", "reason"],
        statement))  # fmt: skip
    limits = select(func.count(func.distinct(halvings.c.limit_id)))
    return int((await session.execute(limits)).scalar_one())


async def policy_currencies(session: AsyncSession) -> list[str]:
    """Every currency a policy is in (a few: read before the halvings, which are halved as they
    are collected)."""
    rows = await session.execute(select(Policy.currency).distinct())
    return list(rows.scalars())


def _halved_amounts(session: AsyncSession, which: Any) -> Any:
    """The condition that `LimitAmount` is one of the amounts halved that `which` (a condition on
    `halvings`) selects, read by id. On PostgreSQL as `= ANY(ARRAY(…))`, which reads the
    primary key once per amount, whatever the planner guesses of a temporary table's rows: a
    join it plans as a hash or a merge join reads the whole book's amounts once per slice."""
    ids = select(halvings.c.amount_id).where(which)
    if _dialect(session) == "postgresql":
        return LimitAmount.id == any_(func.array(ids.scalar_subquery()))
    return LimitAmount.id.in_(ids)


async def halve(session: AsyncSession, *, by: str, now: dt.datetime) -> None:
    """Each amount to halve takes its half, as `limits._halve` does one by one: the one running
    on the halving's date ends there, one starting later (on it or after) is superseded, and
    each half keeps the terms and the end of the amount it replaces; amounts of zero, and the
    halves of a halving still to come (not among the halvings), stay as they are."""
    h = halvings
    await session.execute(
        update(LimitAmount)
        .where(_halved_amounts(session, h.c.amount_from >= h.c.halving_from))
        .values(superseded_at=now)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    await session.execute(
        update(LimitAmount)
        .where(h.c.amount_id == LimitAmount.id, h.c.amount_from < h.c.halving_from,
               _halved_amounts(session, h.c.amount_from < h.c.halving_from))
        .values(effective_to=h.c.halving_from)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    # In the order of the limits (ids numbered in it), as their index by limit takes them.
    entries = select(
        new_ids_sql(_dialect(session), "lam", order_by=(h.c.limit_id, h.c.effective_from)),
        h.c.limit_id, h.c.amount_after, h.c.payment_terms_days, h.c.effective_from,
        h.c.effective_to, h.c.reason, literal_column("'signal'", String),
        _typed(session, by, String()), _typed(session, now, UTCDateTime()),
    ).order_by(h.c.limit_id, h.c.effective_from)  # fmt: skip
    await session.execute(insert(LimitAmount).from_select(
        ["id", "limit_id", "amount", "payment_terms_days", "effective_from", "effective_to",
         "reason", "source", "decided_by", "created_at"], entries))  # fmt: skip


def _json_object(dialect: str, pairs: Mapping[str, Any]) -> Any:
    args: list[Any] = []
    for key, value in pairs.items():
        args += [literal_column(f"'{key}'", String), value]
    return func.json_build_object(*args) if dialect == "postgresql" else func.json_object(*args)


def _const(value: str) -> Any:
    return literal_column(f"'{value}'", String)


async def announce_grades(session: AsyncSession, book: Slice, *, today: dt.date) -> None:
    """`buyer.grade_changed` for each buyer (of `book`) whose grade moved, heard by the parties
    holding a limit or a limit request on it (as `repository.parties_on_buyer`)."""
    dialect = _dialect(session)
    moved = regraded.c.grade_before != regraded.c.grade_after
    data = _json_object(dialect, {
        "buyer_id": regraded.c.buyer_id, "previous_grade": regraded.c.grade_before,
        "grade": regraded.c.grade_after, "graded_on": _typed(session, today, Date()),
        "cause": _const("country_risk")})  # fmt: skip
    rows = select(regraded.c.buyer_id.label("subject_id"), data.label("data")).where(moved)
    # The limits and requests on the moved buyers only (read by buyer: the slice's, not the book).
    # The limits are the ones `grade_moves` kept (these events are written at the commit); a party
    # found twice is written once (`record_events_from`).
    held = (
        select(moved_limits.c.buyer_id, moved_limits.c.policy_id)
        .union_all(select(LimitRequest.buyer_id, LimitRequest.policy_id)
               .join(regraded, and_(regraded.c.buyer_id == LimitRequest.buyer_id, moved))
               .where(book.ids(LimitRequest.buyer_id)))
        .cte("held")
    )  # fmt: skip
    holders = select(
        held.c.buyer_id.label("subject_id"),
        _const("policyholder").label("party_role"),
        Policy.policyholder_id.label("party_id"),
    ).join(Policy, Policy.id == held.c.policy_id)
    banks = select(
        held.c.buyer_id.label("subject_id"),
        _const("bank").label("party_role"),
        PolicyAssignment.bank_id.label("party_id"),
    ).join(PolicyAssignment, PolicyAssignment.policy_id == held.c.policy_id)
    await record_events_from(session, events, type="buyer.grade_changed", rows=rows,
                             parties=holders.union_all(banks))  # fmt: skip


async def announce_halvings(session: AsyncSession, *, minor_units: Mapping[str, int]) -> None:
    """`limit.changed` (a halving) for each amount halved, heard by its limit's policy's parties
    (as `repository.parties_of_policy`)."""
    dialect = _dialect(session)
    h = halvings
    units = _units(minor_units, h.c.currency)

    def money(amount: Any) -> Any:
        return _json_object(dialect, {"amount": _amount_text(dialect, amount, units),
                                      "currency": h.c.currency})  # fmt: skip

    change = case((h.c.amount_after == literal(0, Amount()), _const("withdrawal")),
                  (h.c.amount_after < h.c.amount_before, _const("halving")),
                  else_=_const("terms"))  # fmt: skip
    data = _json_object(dialect, {
        "limit_id": h.c.limit_id, "policy_id": h.c.policy_id, "buyer_id": h.c.buyer_id,
        "change": change, "previous_amount": money(h.c.amount_before),
        "new_amount": money(h.c.amount_after), "effective_from": h.c.effective_from,
        "payment_terms_days": h.c.payment_terms_days, "reason": h.c.reason,
        "source": _const("signal"),
        # A halving supersedes the amounts it halves; it cancels none (`LimitChanged.cancelled`).
        "cancelled": func.json_build_array() if dialect == "postgresql" else func.json_array(),
    })  # fmt: skip
    rows = select(h.c.limit_id.label("subject_id"), data.label("data"))
    holders = select(h.c.limit_id.label("subject_id"), _const("policyholder").label("party_role"),
                     Policy.policyholder_id.label("party_id"),
                     ).join(Policy, Policy.id == h.c.policy_id)  # fmt: skip
    banks = select(h.c.limit_id.label("subject_id"), _const("bank").label("party_role"),
                   PolicyAssignment.bank_id.label("party_id"),
                   ).join(PolicyAssignment, PolicyAssignment.policy_id == h.c.policy_id)  # fmt: skip
    await record_events_from(session, events, type="limit.changed", rows=rows,
                             parties=holders.union_all(banks))  # fmt: skip


async def sanctioned_book(
    session: AsyncSession, *, country: str | None, buyer_id: str | None
) -> tuple[int, int]:
    """How many buyers a sanction names (one, or every buyer of the country) and how many limits
    they hold: coverage checks and claims read the sanctions at once, nothing is rewritten."""
    named = Buyer.id == buyer_id if buyer_id is not None else Buyer.country == country
    buyers = select(func.count()).select_from(Buyer).where(named)
    limits = (
        select(func.count())
        .select_from(CreditLimit)
        .where(CreditLimit.buyer_id.in_(select(Buyer.id).where(named)))
    )
    return (
        int((await session.execute(buyers)).scalar_one()),
        int((await session.execute(limits)).scalar_one()),
    )
