"""Messages to another service, written in the same transaction as the change that causes them and
delivered after it commits: nothing is lost if the other service is down (a background loop retries),
and nothing is done twice (each message carries an Idempotency-Key the receiver honours).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from shared.db import UTCDateTime, new_id, utcnow
from shared.http import ServiceClient
from shared.metrics import count_outbox_attempt
from shared.periodic import run_periodically
from shared.problems import IDEMPOTENCY_KEY_IN_USE, Problem
from shared.settings import DEFAULT_OUTBOX_LEASE_SECONDS

log = logging.getLogger("tci.outbox")

# A message still refused after this many attempts is left for an operator (it stays in the table
# with its last error) instead of being sent again forever.
MAX_ATTEMPTS = 100
DEFAULT_LEASE = dt.timedelta(seconds=DEFAULT_OUTBOX_LEASE_SECONDS)
PENDING = text("delivered_at IS NULL")
# A session whose transactions' messages are leased to it as they are written (`lease_on_write`):
# the lease period, its owner, the messages its open transaction wrote, and those committed and
# not yet sent.
_LEASE_ON_WRITE = "tci.outbox_lease_on_write"
_OWNER = "tci.outbox_owner"
_WRITING = "tci.outbox_writing"
_OWNED = "tci.outbox_owned"


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("aggregate_id", String(64), nullable=False, index=True),
        Column("target", String(40), nullable=False),
        Column("method", String(10), nullable=False),
        Column("path", String(500), nullable=False),
        Column("body", JSON, nullable=False),
        Column("idempotency_key", String(255), nullable=False, unique=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
        Column("delivered_at", UTCDateTime(), nullable=True),
        Column("response_status", Integer, nullable=True),
        Column("response_body", JSON, nullable=True),
        # Which delivery run holds the message, and until when (a lease, not a row lock).
        Column("lease_owner", String(40), nullable=True),
        Column("lease_until", UTCDateTime(), nullable=True),
        # The pending messages in delivery order: what each replica's delivery run leases and
        # the backlog a scrape counts, without reading the delivered ones.
        Index(
            "ix_outbox_pending", "created_at", "id", postgresql_where=PENDING, sqlite_where=PENDING
        ),
    )


async def enqueue(
    session: AsyncSession,
    table: Table,
    *,
    aggregate_id: str,
    target: str,
    path: str,
    body: Any,
    idempotency_key: str,
    method: str = "POST",
) -> str:
    """Write a message in the caller's transaction; it goes out once that transaction commits
    (leased to the session, when it said it delivers after its commit: `lease_on_write`)."""
    info = session.sync_session.info
    lease: dt.timedelta | None = info.get(_LEASE_ON_WRITE)
    now = utcnow()
    row = {
        "id": new_id("msg"), "created_at": now, "aggregate_id": aggregate_id, "target": target,
        "method": method, "path": path, "body": body, "idempotency_key": idempotency_key,
        "attempts": 0, "lease_owner": None if lease is None else info[_OWNER],
        "lease_until": None if lease is None else now + lease,
    }  # fmt: skip
    await session.execute(table.insert(), row)
    if lease is not None:
        info.setdefault(_WRITING, []).append((table, row))
    return str(row["id"])


def lease_on_write(session: AsyncSession, lease: dt.timedelta) -> None:
    """The session delivers what its transactions put in the outbox once each commits
    (`deliver`): their messages are leased to it as they are written, so the delivery sends them
    without taking a lease in a transaction of its own, and no other run sends them meanwhile. If
    the session never gets to send them (its process dies), the lease runs out and the
    background loop does."""
    session.sync_session.info[_LEASE_ON_WRITE] = lease
    session.sync_session.info.setdefault(_OWNER, new_id("lease"))


@event.listens_for(Session, "after_commit")
def _owned_once_committed(session: Session) -> None:
    written = session.info.pop(_WRITING, None)
    if written:
        session.info.setdefault(_OWNED, []).extend(written)


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    """Messages of a transaction that rolled back were never written."""
    if transaction.parent is None:
        session.info.pop(_WRITING, None)


def _take_owned(
    session: AsyncSession, table: Table, aggregate_id: str | None
) -> list[dict[str, Any]]:
    """The committed messages of `table` (of one aggregate, or all) leased to the session as they
    were written, taken off its list (oldest first)."""
    owned: list[tuple[Table, dict[str, Any]]] = session.sync_session.info.get(_OWNED, [])
    taken = [row for t, row in owned
             if t is table and (aggregate_id is None or row["aggregate_id"] == aggregate_id)]  # fmt: skip
    if taken:
        ids = {row["id"] for row in taken}
        owned[:] = [(t, row) for t, row in owned if t is not table or row["id"] not in ids]
    return taken


OnDelivered = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]


async def deliver(
    session: AsyncSession,
    table: Table,
    clients: Mapping[str, ServiceClient],
    *,
    aggregate_id: str | None = None,
    limit: int = 100,
    max_attempts: int = MAX_ATTEMPTS,
    lease: dt.timedelta = DEFAULT_LEASE,
    take_over: bool = False,
    on_delivered: OnDelivered | None = None,
    within_seconds: float | None = None,
) -> list[dict[str, Any]]:
    """Send the undelivered messages (of one aggregate, or the oldest `limit`), each with its
    Idempotency-Key; a 2xx or 409 answer marks it delivered (not a 409 `idempotency-key-in-use`:
    see `_delivered`). Returns the delivered ones with the receiver's answer.

    The batch is claimed first with a lease (owner and until) in one committed statement over
    messages whose lease is free or expired, so that another replica's run skips them until each
    is marked; each mark commits, releases that message and renews the lease on the rest; what is
    left unmarked (a failure half-way) is released at the end. Messages the session's own
    transactions wrote leased to it (`lease_on_write`) are the batch instead, as they are: only
    those of the aggregate (an older one still pending goes with the background loop).
    `take_over`: the aggregate's undelivered messages are taken whoever holds their lease (a
    replay's: the request that wrote them may have died holding it; the receiver honours each
    message's Idempotency-Key, so one sent twice is done once). `on_delivered` records what a
    delivered message's answer tells the sender in the transaction that marks it delivered: the
    mark and what it tells commit together (a process dying between them lost the news).
    `within_seconds`: the whole run takes no longer (a request delivering after its commit does
    not hold its answer on a peer that hangs): a send cut short is marked failed, and what is
    left when the time is up is released, both for the background loop (or a replay)."""
    deadline = None if within_seconds is None else time.monotonic() + within_seconds
    claimed = _take_owned(session, table, aggregate_id)
    if claimed:
        owner = str(claimed[0]["lease_owner"])
    else:
        owner = new_id("lease")
        claimed = await _lease(session, table, owner, lease, aggregate_id, limit, max_attempts,
                               take_over=take_over and aggregate_id is not None)  # fmt: skip
    delivered: list[dict[str, Any]] = []
    unmarked = len(claimed)
    try:
        for row in claimed:
            client = clients.get(row["target"])
            if client is None:
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break  # released below, for the background loop
            values = await _send(client, row, max_attempts, left)
            held = await session.execute(
                update(table)
                .where(table.c.id == row["id"], table.c.lease_owner == owner)
                .values(**values, lease_owner=None, lease_until=None)
            )
            answered = {**row, "response_status": values.get("response_status"),
                        "response_body": values.get("response_body")}  # fmt: skip
            marked = getattr(held, "rowcount", 1) == 1
            if marked and on_delivered is not None and values.get("delivered_at") is not None:
                await on_delivered(session, answered)
            if unmarked > 1:  # the rest stay ours for another lease period
                await session.execute(
                    update(table)
                    .where(table.c.lease_owner == owner)
                    .values(lease_until=utcnow() + lease)
                )
            await session.commit()
            unmarked -= 1
            if not marked:
                log.warning("outbox message %s: its lease ran out before it was marked", row["id"])
                continue
            count_outbox_attempt(table.schema or "", row["target"], _outcome(values, max_attempts))
            if values.get("delivered_at") is not None:
                delivered.append(answered)
    finally:
        if unmarked:
            await _release(session, table, owner)
    return delivered


async def _lease(
    session: AsyncSession, table: Table, owner: str, lease: dt.timedelta,
    aggregate_id: str | None, limit: int, max_attempts: int, *, take_over: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """Take up to `limit` pending messages whose lease is free or expired (any, `take_over`),
    oldest first, in one committed statement; the rows taken, oldest first."""
    now = utcnow()
    free = or_(table.c.lease_until.is_(None), table.c.lease_until < now)
    pending = (
        select(table.c.id)
        .where(
            table.c.delivered_at.is_(None),
            table.c.attempts < max_attempts,
            *(() if take_over else (free,)),
        )
        .order_by(table.c.created_at, table.c.id)
        .limit(limit)
    )
    if aggregate_id is not None:
        pending = pending.where(table.c.aggregate_id == aggregate_id)
    if session.get_bind().dialect.name == "postgresql":
        pending = pending.with_for_update(skip_locked=True)
    result = await session.execute(
        update(table)
        .where(table.c.id.in_(pending.scalar_subquery()))
        .values(lease_owner=owner, lease_until=now + lease)
        .returning(*table.c)
    )
    rows = [dict(row) for row in result.mappings().all()]
    await session.commit()
    return sorted(rows, key=lambda row: (row["created_at"], row["id"]))


def _delivered(status: int, body: Any) -> bool:
    """Whether an answer ends a message's delivery: a 2xx, or a 409 saying the receiver has it
    already (a case opened for that claim, say). A 409 `idempotency-key-in-use` does not: the
    twin holding the key (a replica that died mid-request, whose transaction PostgreSQL has not
    rolled back yet) may still fail, and then nothing would have been done."""
    if 200 <= status < 300:
        return True
    in_use = isinstance(body, dict) and body.get("type") == IDEMPOTENCY_KEY_IN_USE.slug
    return status == 409 and not in_use


async def _send(
    client: ServiceClient, row: Mapping[str, Any], max_attempts: int, within: float | None = None
) -> dict[str, Any]:
    """Send one message (within `within` seconds, when given: less than the client's own
    timeout); the values that mark it (attempts, error, or delivery and answer)."""
    status: int | None = None
    body: Any = None
    error: str | None = None
    try:
        response = await client.request(
            row["method"], row["path"], json=row["body"],
            headers={"Idempotency-Key": row["idempotency_key"]}, timeout_seconds=within,
        )  # fmt: skip
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:2000]}
        if not _delivered(status, body):
            error = f"{status}: {json.dumps(body)[:2000]}"
    except Problem as exc:
        error = f"{exc.status}: {exc.detail}"
    values: dict[str, Any] = {"attempts": row["attempts"] + 1, "last_error": error}
    if error is None:
        values.update(delivered_at=utcnow(), response_status=status, response_body=body)
    elif values["attempts"] >= max_attempts:
        log.error("outbox message %s to %s given up after %d attempts: %s", row["id"],
                  row["target"], values["attempts"], error)  # fmt: skip
    else:
        log.warning("outbox message %s to %s not delivered: %s", row["id"], row["target"],
                    error)  # fmt: skip
    return values


def _outcome(values: Mapping[str, Any], max_attempts: int) -> str:
    """What an attempt marked: delivered, failed (to be retried) or given up (the last allowed)."""
    if values.get("delivered_at") is not None:
        return "delivered"
    return "given_up" if values["attempts"] >= max_attempts else "failed"


async def _release(session: AsyncSession, table: Table, owner: str) -> None:
    """Give back what a run took and did not mark (skipped, or left by a failure)."""
    try:
        await session.rollback()
        await session.execute(
            update(table).where(table.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )  # fmt: skip
        await session.commit()
    except Exception:  # the lease runs out on its own
        log.exception("releasing the outbox lease %s failed", owner)


async def deliver_periodically(
    sessionmaker: async_sessionmaker[AsyncSession],
    table: Table,
    clients: Mapping[str, ServiceClient],
    *,
    every: dt.timedelta,
    on_delivered: OnDelivered | None = None,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> None:
    """Run for the life of the app: deliver what is still pending, then again every `every`;
    `on_delivered` records what each answer tells the sender (in its own transaction)."""

    async def deliver_pending() -> None:
        async with sessionmaker() as session:
            await deliver(session, table, clients, lease=lease, on_delivered=on_delivered)

    await run_periodically("delivering the outbox", deliver_pending, every=every.total_seconds())
