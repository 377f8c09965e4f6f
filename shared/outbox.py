"""Messages to another service, written in the same transaction as the change that causes them and
delivered after it commits: nothing is lost if the other service is down (a background loop retries),
and nothing is done twice (each message carries an Idempotency-Key the receiver honours).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import UTCDateTime, new_id, utcnow
from shared.http import ServiceClient
from shared.problems import Problem

log = logging.getLogger("tci.outbox")

# A message still refused after this many attempts is left for an operator (it stays in the table
# with its last error) instead of being sent again forever.
MAX_ATTEMPTS = 100


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
    """Write a message in the caller's transaction; it goes out once that transaction commits."""
    ident = new_id("msg")
    await session.execute(
        table.insert().values(
            id=ident, created_at=utcnow(), aggregate_id=aggregate_id, target=target,
            method=method, path=path, body=body, idempotency_key=idempotency_key, attempts=0,
        )
    )  # fmt: skip
    return ident


async def deliver(
    session: AsyncSession,
    table: Table,
    clients: Mapping[str, ServiceClient],
    *,
    aggregate_id: str | None = None,
    limit: int = 100,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[dict[str, Any]]:
    """Send the undelivered messages (of one aggregate, or the oldest `limit`), each with its
    Idempotency-Key; a 2xx or 409 answer marks it delivered. Commits after each message; returns
    the delivered ones with the receiver's answer."""
    query = (
        select(table)
        .where(table.c.delivered_at.is_(None), table.c.attempts < max_attempts)
        .order_by(table.c.created_at)
    )
    if aggregate_id is not None:
        query = query.where(table.c.aggregate_id == aggregate_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await session.execute(query.limit(limit))).mappings().all()
    delivered: list[dict[str, Any]] = []
    for row in rows:
        client = clients.get(row["target"])
        if client is None:
            continue
        status: int | None = None
        body: Any = None
        error: str | None = None
        try:
            response = await client.request(
                row["method"], row["path"], json=row["body"],
                headers={"Idempotency-Key": row["idempotency_key"]},
            )  # fmt: skip
            status = response.status_code
            try:
                body = response.json()
            except ValueError:
                body = {"text": response.text[:2000]}
            if not (200 <= status < 300 or status == 409):
                error = f"{status}: {json.dumps(body)[:2000]}"
        except Problem as exc:
            error = f"{exc.status}: {exc.detail}"
        values: dict[str, Any] = {"attempts": row["attempts"] + 1, "last_error": error}
        if error is None:
            values.update(delivered_at=utcnow(), response_status=status, response_body=body)
            delivered.append({**row, "response_status": status, "response_body": body})
        elif values["attempts"] >= max_attempts:
            log.error("outbox message %s to %s given up after %d attempts: %s", row["id"],
                      row["target"], values["attempts"], error)  # fmt: skip
        else:
            log.warning("outbox message %s to %s not delivered: %s", row["id"], row["target"],
                        error)  # fmt: skip
        await session.execute(update(table).where(table.c.id == row["id"]).values(**values))
        await session.commit()
    return delivered


OnDelivered = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]


async def deliver_periodically(
    sessionmaker: async_sessionmaker[AsyncSession],
    table: Table,
    clients: Mapping[str, ServiceClient],
    *,
    every: dt.timedelta,
    on_delivered: OnDelivered | None = None,
) -> None:
    """Run for the life of the app: deliver what is still pending, then again every `every`;
    `on_delivered` records what each answer tells the sender (in its own transaction)."""
    while True:
        try:
            async with sessionmaker() as session:
                for message in await deliver(session, table, clients):
                    if on_delivered is not None:
                        await on_delivered(session, message)
                        await session.commit()
        except Exception:  # retried next time; the loop must not die
            log.exception("delivering the outbox failed")
        await asyncio.sleep(every.total_seconds())
