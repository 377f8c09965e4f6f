"""A command that delivers after its commit (`after_commit`) leases the outbox messages its
transaction writes as they are written (`shared.outbox.lease_on_write`): its delivery sends them
without a lease transaction of its own, no other run sends them meanwhile, and if it never gets
to send them (its process died) the background loop does once the lease has run out. A
transaction that rolls back leaves nothing to send."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.claims.models import outbox
from shared.http import ServiceClient
from shared.outbox import deliver, enqueue, lease_on_write
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import unique


@pytest.fixture
def sessions(engines: dict[str, AsyncEngine]) -> async_sessionmaker[AsyncSession]:
    """Sessions of their own on the claims database (committed: each test sends what it wrote,
    so nothing is left pending for anyone else)."""
    return async_sessionmaker(engines["claims"], expire_on_commit=False)


def receiver(seen: list[str]) -> dict[str, ServiceClient]:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["idempotency-key"])
        return httpx.Response(201, json={"id": "case-1"})

    client = ServiceClient("http://collections", jwt_secret=DEVELOPMENT_JWT_SECRET,
                           caller_name="claims", retries=0,
                           transport=httpx.MockTransport(answer))  # fmt: skip
    return {"collections": client}


async def write(session: Any, aggregate: str, key: str) -> None:
    await enqueue(session, outbox, aggregate_id=aggregate, target="collections", path="/v1/cases",
                  body={"n": 1}, idempotency_key=key)  # fmt: skip


async def test_messages_written_by_a_delivering_command_are_its_own_until_sent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[str] = []
    peers = receiver(seen)
    aggregate, key = unique("agg"), unique("key")
    async with sessions() as mine, sessions() as other:
        lease_on_write(mine, dt.timedelta(seconds=60))
        await write(mine, aggregate, key)
        await mine.commit()
        row = (await other.execute(select(outbox).where(outbox.c.idempotency_key == key))
               ).mappings().one()  # fmt: skip
        assert row["lease_owner"] is not None and row["lease_until"] is not None
        # The background loop leaves it to the command that wrote it.
        assert await deliver(other, outbox, peers, aggregate_id=aggregate) == []
        await other.commit()
        sent = await deliver(mine, outbox, peers, aggregate_id=aggregate)
        assert [m["idempotency_key"] for m in sent] == [key] and seen == [key]
        # Sent once: nothing is left for anyone.
        assert await deliver(other, outbox, peers, aggregate_id=aggregate) == []
        assert await deliver(mine, outbox, peers, aggregate_id=aggregate) == []


async def test_a_command_that_never_sent_its_message_leaves_it_to_the_loop_after_the_lease(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[str] = []
    peers = receiver(seen)
    aggregate, key = unique("agg"), unique("key")
    async with sessions() as dead:
        lease_on_write(dead, dt.timedelta(seconds=0.5))
        await write(dead, aggregate, key)
        await dead.commit()  # … and its process dies before the delivery
    async with sessions() as loop:
        assert await deliver(loop, outbox, peers, aggregate_id=aggregate) == []
        await asyncio.sleep(0.6)
        sent = await deliver(loop, outbox, peers, aggregate_id=aggregate)
        assert [m["idempotency_key"] for m in sent] == [key] and seen == [key]


async def test_a_transaction_that_rolled_back_leaves_nothing_to_send(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[str] = []
    peers = receiver(seen)
    aggregate = unique("agg")
    async with sessions() as session:
        lease_on_write(session, dt.timedelta(seconds=60))
        await write(session, aggregate, unique("key"))
        await session.rollback()
        assert await deliver(session, outbox, peers, aggregate_id=aggregate) == []
        assert seen == []
        # Unleased messages (written without lease_on_write) go with the loop at once.
    async with sessions() as plain:
        key = unique("key")
        await write(plain, aggregate, key)
        await plain.commit()
        row = (await plain.execute(select(outbox).where(outbox.c.idempotency_key == key))
               ).mappings().one()  # fmt: skip
        assert row["lease_owner"] is None
        await plain.commit()
    async with sessions() as loop:
        sent = await deliver(loop, outbox, peers, aggregate_id=aggregate)
        assert [m["idempotency_key"] for m in sent] == [key]
