"""A read-only route's session reads outside a transaction on PostgreSQL (no BEGIN, no ROLLBACK
round trip) and gives its connection back as it found it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import build_engine, build_sessionmaker, get_read_session
from tests.conftest import backend

pytestmark = pytest.mark.postgres


async def in_a_transaction(session: AsyncSession) -> bool:
    """Whether two statements run in one transaction (the same transaction id)."""
    first = (await session.execute(text("SELECT txid_current()"))).scalar()
    return first == (await session.execute(text("SELECT txid_current()"))).scalar()


async def test_a_read_session_runs_each_statement_on_its_own(migrated_database: str) -> None:
    engine = build_engine(backend().url_for(migrated_database, "underwriting"), pool_size=1)
    try:
        sessions = build_sessionmaker(engine)
        async with sessions() as usual:
            assert await in_a_transaction(usual)
        async with sessions() as session:
            read = await get_read_session(session)
            assert not await in_a_transaction(read)
            status = (await read.execute(text("SHOW transaction_isolation"))).scalar()
            assert status == "read committed"
        # The one connection of the pool is back to transactions for the next request.
        async with sessions() as usual:
            assert await in_a_transaction(usual)
            await usual.execute(text("CREATE TEMP TABLE kept_only_if_committed (n int)"))
        async with sessions() as usual:
            exists = await usual.execute(text("SELECT to_regclass('kept_only_if_committed')"))
            assert exists.scalar() is None
    finally:
        await engine.dispose()
