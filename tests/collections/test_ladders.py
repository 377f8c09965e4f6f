"""Ladders are data: the table `collections.ladders`, seeded with the two ladders of the seeds,
listed by `GET /v1/ladders` and read by the daily escalation run."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any, get_args

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.collections import service as uc
from services.collections.config import CollectionsSettings
from services.collections.models import Case, CaseInvoice, LadderRung
from shared.auth import Caller
from shared.contracts import LadderName
from shared.db import new_id, utcnow
from tests.builders import ok
from tests.conftest import auth

SEEDED = [
    {"name": "reminder_15_30_45", "rungs": [
        {"days_past_due": 15, "stage": "reminder_letter"},
        {"days_past_due": 30, "stage": "phone_collection"},
        {"days_past_due": 45, "stage": "legal"}]},
    {"name": "legal_30_60_90", "rungs": [
        {"days_past_due": 30, "stage": "amicable"},
        {"days_past_due": 60, "stage": "lawyer_letter"},
        {"days_past_due": 90, "stage": "lawsuit"}]},
]  # fmt: skip
AS_OF = dt.date(2027, 6, 1)


async def test_the_seeded_ladders_are_listed_exactly_as_the_seeds_name_them(api: Any) -> None:
    client: httpx.AsyncClient = await api.open("collections")
    listed = ok(await client.get("/v1/ladders", headers=auth("policyholder", "ph-1")), 200)
    assert listed == {"items": SEEDED, "next_cursor": None}
    # The names a case may be opened on (`shared.contracts.LadderName`) are the table's.
    assert set(get_args(LadderName)) == {ladder["name"] for ladder in SEEDED}


@pytest.fixture
async def session(engines: dict[str, AsyncEngine]) -> AsyncIterator[AsyncSession]:
    """A session in a transaction rolled back when the test ends."""
    async with engines["collections"].connect() as connection:
        transaction = await connection.begin()
        yield AsyncSession(bind=connection, join_transaction_mode="create_savepoint",
                           expire_on_commit=False, autoflush=False)  # fmt: skip
        await transaction.rollback()


async def test_the_escalation_run_climbs_the_rungs_the_ladders_table_holds(
    session: AsyncSession,
) -> None:
    session.add_all([LadderRung(name="quick_2_5", days_past_due=2, stage="call"),
                     LadderRung(name="quick_2_5", days_past_due=5, stage="visit")])  # fmt: skip
    case = Case(id=new_id("case"), created_at=utcnow(), creditor_id="ph-ladder",
                buyer_id="buy-ladder", debtor_country="DE", currency="EUR", ladder="quick_2_5",
                stage="new", status="open", fee_pct=D(10), opened_on=AS_OF,
                created_by="test")  # fmt: skip
    session.add(case)
    await session.flush()
    session.add(CaseInvoice(id=new_id("cinv"), case_id=case.id, number="Q-1", amount=D(100),
                            due_date=AS_OF - dt.timedelta(days=3), paid=D(0)))  # fmt: skip
    await session.flush()
    ctx = uc.Context(session=session, caller=Caller(subject="t", role="service", party_id=None),
                     today=AS_OF, settings=CollectionsSettings())  # fmt: skip
    result = await uc.run_escalations(ctx, AS_OF)
    assert [(m.from_stage, m.to_stage, m.days_past_due) for m in result.moved
            if m.case_id == case.id] == [("new", "call", 3)]  # fmt: skip
    ctx.today = AS_OF + dt.timedelta(days=2)  # two days on: 5 days past due
    later = await uc.run_escalations(ctx, ctx.today)
    assert [m.to_stage for m in later.moved if m.case_id == case.id] == ["visit"]
