"""Events: facts written in the same transaction as the change they announce (api.md, "Events and
webhooks"). Each has a stable id (`evt_…`, the Standard Webhooks `webhook-id`), a type, when it
happened and a typed payload, and names the parties that may hear of it (a policyholder, the banks
assigned to its policy). A party is its role and its id (`Party`), never the id alone: a bank's
token carrying a policyholder's id is not that policyholder. The feed (`GET /v1/events`) and the
webhook dispatcher read these tables.

Order: `seq` is the order events are read in, by the feed (`after=`) and by the dispatcher (per
endpoint). A reader that has seen `seq` n must never later find an event with a smaller `seq`
committed after it, so the writers of one service take a transaction-level lock on PostgreSQL
before numbering an event: events commit in `seq` order (SQLite has one writer at a time anyway).

When: a use case records its events as it makes its changes (`record_event`, `announce`); they are
kept with the session and written when it commits, after every other change of the transaction has
been flushed. The lock is thus the last one the transaction takes and is held only for the inserts
and the commit: a transaction holding it never waits for a row another one holds while waiting for
it (no deadlock), and concurrent writers queue for it only briefly. A transaction that rolls back
(or a session closed without a commit) drops its events: nothing rolled back is announced.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    CompoundSelect,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    TextClause,
    cast,
    event,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from shared.auth import PARTY_ROLES, Caller
from shared.contracts import Schema
from shared.db import UTCDateTime, new_id, new_ids_sql, utcnow

# SQLite numbers rows only in an INTEGER PRIMARY KEY; PostgreSQL takes a BIGINT (BIGSERIAL).
SEQ = BigInteger().with_variant(Integer(), "sqlite")
# One lock key per service schema (pg_advisory_xact_lock's key space is shared by the database).
_LOCK_KEYS = {"underwriting": 7_411_001, "claims": 7_411_002, "collections": 7_411_003}
# The rows (events and parties) written in one statement at most on PostgreSQL, its parameters
# far below the driver's 32,767: a request's few events; a larger batch goes by executemany.
_FOLDED_ROWS = 500
# Where a session keeps the events recorded in its transaction until it commits.
_PENDING = "tci.pending_events"
# Where it keeps the events written by its commit until the commit has succeeded.
_WRITTEN = "tci.written_events"

log = logging.getLogger("tci.events")


@dataclass(frozen=True, order=True)
class Party:
    """Who may hear of an event: a role that reads its own (`policyholder`, `bank`) and an id.
    `event_parties` keeps it as one key, `role:id` (`key`): the feed and the dispatcher read it
    along the table's primary key, and the whole book writes it in one column."""

    role: str
    id: str

    def __post_init__(self) -> None:
        if self.role not in PARTY_ROLES:
            raise ValueError(
                f"a party is a {' or a '.join(sorted(PARTY_ROLES))}, not {self.role!r}"
            )

    @property
    def key(self) -> str:
        return party_key(self.role, self.id)


def policyholder(party_id: str) -> Party:
    return Party("policyholder", party_id)


def bank(party_id: str) -> Party:
    return Party("bank", party_id)


def party_key(role: str, party_id: str) -> str:
    """A party as `event_parties` (and a webhook endpoint's owner) names it: `role:id`."""
    return f"{role}:{party_id}"


def party_key_sql(role: Any, party_id: Any) -> Any:
    """`party_key` in SQL, of a role and an id column (`role || ':' || id`)."""
    return role.concat(literal(":", String)).concat(party_id)


def caller_party(caller: Caller) -> Party | None:
    """The party whose events a caller reads: a policyholder's or a bank's own (role and id); None
    for staff and services, who read every event."""
    if caller.role in PARTY_ROLES:
        return Party(caller.role, caller.party_id or "")
    return None


@dataclass(frozen=True)
class EventTables:
    events: Table
    parties: Table


def event_tables(metadata: MetaData) -> EventTables:
    """The `events` table and `event_parties` (who may hear of each event) of one service."""
    events = Table(
        "events",
        metadata,
        Column("seq", SEQ, primary_key=True, autoincrement=True),
        Column("id", String(40), nullable=False, unique=True),
        # No index on `type` or `subject_id`: every reader goes by `seq` (the feed, the
        # dispatcher, the parties of a batch just written), and each index is a write per event
        # (a whole-book re-grade writes two million events).
        Column("type", String(64), nullable=False),
        Column("occurred_at", UTCDateTime(), nullable=False),
        Column("subject_id", String(64), nullable=False),
        Column("data", JSON, nullable=False),
    )
    # `event_seq` names an event of the same service, written with it by `_insert_rows` or
    # `_insert_selected` under the event lock and never deleted: no foreign key, whose check per
    # row would cost as much as the row (events are append-only; nothing cascades).
    # `party_id` is the party's role and id, `role:id` (`Party.key`: `policyholder:ph-1`,
    # `bank:bk-1`): one key column, so the feed still reads along (party, seq).
    parties = Table(
        "event_parties",
        metadata,
        Column("party_id", String(200), primary_key=True),
        Column("event_seq", SEQ, primary_key=True),
    )
    return EventTables(events, parties)


@dataclass
class _Pending:
    """An event recorded in a transaction, written when it commits."""

    tables: EventTables
    row: dict[str, Any]
    parties: list[str] = field(default_factory=list)


async def record_event(
    session: AsyncSession,
    tables: EventTables,
    *,
    type: str,
    subject_id: str,
    data: Mapping[str, Any],
    parties: Collection[Party],
    occurred_at: dt.datetime | None = None,
) -> str:
    """Record one event (and who may hear of it) in the caller's transaction; it is written and
    announced once that transaction commits, and never if it rolls back. `data` is the payload as
    JSON (dump the event's model with `mode="json"`, or use `announce`). Returns the event id."""
    if not session.in_transaction():
        await session.connection()  # the transaction has begun: its end drops what it recorded
    ident = new_id("evt")
    row = {
        "id": ident,
        "type": type,
        "occurred_at": occurred_at or utcnow(),
        "subject_id": subject_id,
        "data": dict(data),
    }
    pending: list[_Pending] = session.sync_session.info.setdefault(_PENDING, [])
    pending.append(_Pending(tables, row, sorted({p.key for p in parties if p.id})))
    return ident


@dataclass
class _PendingSelected:
    """Events of one type written set-based when the transaction commits: one per row of
    `rows` (columns `subject_id`, `data`), heard by the parties `parties` names (columns
    `subject_id`, `party_role`, `party_id`)."""

    tables: EventTables
    type: str
    rows: Select[Any]
    parties: Select[Any] | CompoundSelect[Any] | None
    occurred_at: dt.datetime


async def record_events_from(
    session: AsyncSession,
    tables: EventTables,
    *,
    type: str,
    rows: Select[Any],
    parties: Select[Any] | CompoundSelect[Any] | None,
) -> None:
    """Record, set-based, one event of `type` per row of `rows` (a statement selecting
    `subject_id` and `data`, the payload as a JSON expression), each heard by the parties of its
    subject in `parties` (selecting `subject_id`, `party_role` and `party_id`: a party is its role
    and id, written as `Party.key`; a party named twice is written once, so a UNION ALL does).
    They are written like
    `record_event`'s, when the transaction commits and after its event lock, by `INSERT …
    SELECT`: the statements must still read the same rows then (temporary tables live until the
    commit). Within the batch, events are numbered in the order of their subject ids."""
    if not session.in_transaction():
        await session.connection()
    pending: list[Any] = session.sync_session.info.setdefault(_PENDING, [])
    pending.append(_PendingSelected(tables, type, rows, parties, utcnow()))


def pending_events(session: AsyncSession) -> list[dict[str, Any]]:
    """The events recorded in the session's transaction and not written yet (oldest first)."""
    return [dict(p.row, parties=p.parties) for p in session.sync_session.info.get(_PENDING, [])
            if isinstance(p, _Pending)]  # fmt: skip


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Write the transaction's events as the last thing it does before it commits: its other
    changes flushed first (their row locks taken), then the service's event lock, then the
    events in the order they were recorded."""
    pending: list[_Pending | _PendingSelected] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()
    for tables in {id(p.tables): p.tables for p in pending}.values():
        _insert(session, tables, [p for p in pending if p.tables is tables])


def _insert(
    session: Session, tables: EventTables, pending: Sequence[_Pending | _PendingSelected]
) -> None:
    """Write the transaction's events in the order recorded, under the service's event lock on
    PostgreSQL: a request's few events take it in the statement that writes them (held from
    there to the commit only, one round trip less), anything else in a statement of its own
    first."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql and all(isinstance(p, _Pending) for p in pending) and _one_statement(pending):
        _insert_rows(session, tables, pending)  # type: ignore[arg-type]
        return
    if postgresql:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(tables)})
    rows: list[_Pending] = []
    for item in pending:  # in the order they were recorded
        if isinstance(item, _Pending):
            rows.append(item)
            continue
        _insert_rows(session, tables, rows)
        rows = []
        _insert_selected(session, tables, item)
    _insert_rows(session, tables, rows)


def _lock_key(tables: EventTables) -> int:
    return _LOCK_KEYS.get(tables.events.schema or "", 7_411_000)


def _one_statement(pending: Sequence[_Pending | _PendingSelected]) -> bool:
    """Whether PostgreSQL writes these events and their parties in one statement."""
    rows = sum(1 + len(p.parties) for p in pending if isinstance(p, _Pending))
    return rows <= _FOLDED_ROWS


def _insert_rows(
    session: Session,
    tables: EventTables,
    pending: Sequence[_Pending],
) -> None:
    """The events recorded one by one, numbered in the order they were recorded, and who may
    hear of each: one statement on PostgreSQL (`_written_with_parties`, taking the event lock
    first; held already, it is taken again at no cost), two elsewhere or for a large batch."""
    if not pending:
        return
    events = tables.events
    if session.get_bind().dialect.name == "postgresql" and _one_statement(pending):
        session.execute(*_written_with_parties(session, tables, pending))
    else:
        numbered = events.insert().returning(events.c.seq, sort_by_parameter_order=True)
        seqs = session.execute(numbered, [p.row for p in pending]).scalars().all()
        heard = [{"party_id": party, "event_seq": seq}
                 for p, seq in zip(pending, seqs, strict=True) for party in p.parties]  # fmt: skip
        if heard:
            session.execute(tables.parties.insert(), heard)
    service = events.schema or ""
    _committed(session, [Committed(service, p.row["type"], p.row["data"]) for p in pending])


# PostgreSQL: the statement writing a request's events and their parties, per events table. Its
# text is the same whatever the number of events (each column travels as one array): it is
# compiled and prepared once, where a VALUES list of the rows was compiled anew by every request
# (~10 % of a write's CPU).
_WRITTEN_SQL: dict[str, TextClause] = {}


def _written_with_parties(
    session: Session, tables: EventTables, pending: Sequence[_Pending]
) -> tuple[TextClause, dict[str, Any]]:
    """`INSERT INTO events … SELECT` of the recorded rows (unnested from one array per column, in
    the order recorded) in a WITH, and the parties' rows taking each event's `seq` from what it
    returns. The rows are joined to `pg_advisory_xact_lock` and sorted: no row reaches the
    insert, where its `seq` is drawn, before the lock is held."""
    statement = _WRITTEN_SQL.get(tables.events.fullname)
    if statement is None:
        statement = _WRITTEN_SQL[tables.events.fullname] = text(f"""
            WITH locked AS (SELECT pg_advisory_xact_lock(:lock_key) AS held),
            written AS (
                INSERT INTO {tables.events.fullname} (id, type, occurred_at, subject_id, data)
                SELECT r.id, r.type, r.occurred_at, r.subject_id, r.data
                FROM unnest(CAST(:ids AS varchar[]), CAST(:types AS varchar[]),
                            CAST(:occurred AS timestamptz[]), CAST(:subjects AS varchar[]),
                            CAST(:data AS json[]))
                     WITH ORDINALITY AS r(id, type, occurred_at, subject_id, data, n)
                CROSS JOIN locked
                ORDER BY r.n
                RETURNING id, seq)
            INSERT INTO {tables.parties.fullname} (party_id, event_seq)
            SELECT h.party_id, written.seq
            FROM unnest(CAST(:heard_events AS varchar[]), CAST(:heard_parties AS varchar[]))
                 AS h(event_id, party_id)
            JOIN written ON written.id = h.event_id""")  # fmt: skip
    dumps = getattr(session.get_bind().dialect, "_json_serializer", None) or json.dumps
    rows = [p.row for p in pending]
    heard = [(p.row["id"], party) for p in pending for party in p.parties]
    return statement, {
        "lock_key": _lock_key(tables),
        "ids": [row["id"] for row in rows],
        "types": [row["type"] for row in rows],
        "occurred": [row["occurred_at"].astimezone(dt.UTC) for row in rows],
        "subjects": [row["subject_id"] for row in rows],
        "data": [dumps(row["data"]) for row in rows],
        "heard_events": [event_id for event_id, _ in heard],
        "heard_parties": [party for _, party in heard],
    }


def _insert_selected(session: Session, tables: EventTables, item: _PendingSelected) -> None:
    """`INSERT INTO events … SELECT` and `INSERT INTO event_parties … SELECT`: on PostgreSQL in one
    statement; elsewhere the new events are those numbered after the highest `seq` before the
    insert (the lock is held)."""
    events, heard = tables.events, tables.parties
    dialect = session.get_bind().dialect.name
    rows = item.rows.subquery()
    occurred: Any = literal(item.occurred_at, events.c.occurred_at.type)
    if dialect == "postgresql":
        occurred = cast(occurred, events.c.occurred_at.type)
    insert = events.insert().from_select(
        ["id", "type", "occurred_at", "subject_id", "data"],
        select(new_ids_sql(dialect, "evt", order_by=rows.c.subject_id),
               literal_column(f"'{item.type}'", String), occurred, rows.c.subject_id, rows.c.data)
        .order_by(rows.c.subject_id),
    )  # fmt: skip
    if dialect == "postgresql" and item.parties is not None:
        _insert_selected_with_parties(session, tables, item, insert)
        return
    before = session.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one()
    written = session.execute(insert)
    count = getattr(written, "rowcount", 0)
    if count > 0:
        _committed(session, [Committed(events.schema or "", item.type, None, count)])
    if item.parties is None:
        return
    parties = item.parties.subquery()
    session.execute(heard.insert().from_select(
        ["party_id", "event_seq"],
        select(party_key_sql(parties.c.party_role, parties.c.party_id), events.c.seq)
        .join(parties, parties.c.subject_id == events.c.subject_id)
        .where(events.c.seq > before, events.c.type == item.type)
        .distinct(),
    ))  # fmt: skip


def _insert_selected_with_parties(
    session: Session, tables: EventTables, item: _PendingSelected, insert: Any
) -> None:
    """PostgreSQL: the events and their parties in one statement, the parties joined to the
    events as the insert returns them (not read back from the table, where the planner, not
    knowing yet how many rows a batch just added, may loop over them once per party)."""
    assert item.parties is not None
    events, heard = tables.events, tables.parties
    written = insert.returning(events.c.seq, events.c.subject_id).cte("written")
    parties = item.parties.subquery()
    # In the order of the parties' key: each party's new rows go in at one place of its index,
    # one after the other, where rows in the events' order would land all over it (a whole-book
    # re-grade writes millions).
    party = party_key_sql(parties.c.party_role, parties.c.party_id).label("party_key")
    heard_rows = heard.insert().from_select(
        ["party_id", "event_seq"],
        select(party, written.c.seq)
        .join(parties, parties.c.subject_id == written.c.subject_id)
        .distinct()
        .order_by(party, written.c.seq),
    ).returning(heard.c.event_seq).cte("heard")  # fmt: skip
    counted = session.execute(select(
        select(func.count()).select_from(written).scalar_subquery(),
        select(func.count()).select_from(heard_rows).scalar_subquery(),
    )).one()  # fmt: skip
    if counted[0] > 0:
        _committed(session, [Committed(events.schema or "", item.type, None, int(counted[0]))])


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended without writing its events (rolled back, or closed) drops them,
    and one whose commit failed after they were written announces none."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_WRITTEN, None)


@dataclass(frozen=True)
class Committed:
    """Events of one type a transaction wrote and committed: the service (its schema), the type,
    the payload (None for events written set-based, `count` of them at once)."""

    service: str
    type: str
    data: Mapping[str, Any] | None
    count: int = 1


_observers: list[Callable[[Sequence[Committed]], None]] = []


def observe_commits(observer: Callable[[Sequence[Committed]], None]) -> None:
    """Call `observer` with the events of each transaction once it has committed (the business
    metrics count them there: an event is exactly what was committed). An observer must be
    quick and must not touch the session; what it raises is logged, never the caller's."""
    if observer not in _observers:
        _observers.append(observer)


def _committed(session: Session, written: list[Committed]) -> None:
    if written and _observers:
        session.info.setdefault(_WRITTEN, []).extend(written)


@event.listens_for(Session, "after_commit")
def _tell_observers(session: Session) -> None:
    written: list[Committed] = session.info.pop(_WRITTEN, [])
    for observer in _observers if written else ():
        try:
            observer(written)
        except Exception:  # an observer's failure never fails a commit that has happened
            log.exception("an observer of committed events failed")


# ---------------------------------------------------------------- the typed payloads


class EventData(Schema):
    """The payload of one event type (`event_type` names it), as the feed and webhooks carry it
    in `data`: what a partner needs to act on without another call, and nothing the parties
    that hear of it may not see."""

    event_type: ClassVar[str]


class Event(Schema):
    """An event as the feed lists it and a webhook delivers it: `{"id", "type", "occurred_at",
    "data"}`. Each type's model adds its `type` (a literal) and its `data`."""

    id: str = Field(description="the event's stable id, also the webhook's `webhook-id`",
                    examples=["evt_01jd2c3v4w5x6y7z8a9b0c1d2e"])  # fmt: skip
    occurred_at: dt.datetime


async def announce(
    session: AsyncSession,
    tables: EventTables,
    data: EventData,
    *,
    subject_id: str,
    parties: Collection[Party],
) -> str:
    """Record the event `data` is the payload of (see `record_event`)."""
    return await record_event(session, tables, type=data.event_type, subject_id=subject_id,
                              data=data.model_dump(mode="json"), parties=parties)  # fmt: skip


def event_json(row: Any) -> dict[str, Any]:
    """An `events` row as the feed lists it and a webhook delivers it."""
    occurred: dt.datetime = row.occurred_at
    return {
        "id": row.id,
        "type": row.type,
        "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
        "data": row.data,
    }
