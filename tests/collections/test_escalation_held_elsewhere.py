"""An escalation run skips the cases another transaction holds (a run beside it, a payment): its
answer says how many, so that an empty `moved` is not read as "nothing to move" (the trial: runs
overlapping a running one answered `moved: []` while the cases were still moving)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.collections.models import Case, CaseInvoice
from tests.builders import ok
from tests.conftest import auth, unique

COLLECTOR = auth("collector")


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-03-10")
    client: httpx.AsyncClient = await api.open("collections")
    return client


async def test_a_run_with_nothing_held_says_none(cases: httpx.AsyncClient) -> None:
    run = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                              json={"as_of": "2027-03-10"}), 200)  # fmt: skip
    assert run["held_elsewhere"] == 0


@pytest.mark.postgres
async def test_a_case_another_transaction_holds_is_counted_not_moved(
    cases: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    sessions = async_sessionmaker(engines["collections"], expire_on_commit=False)
    ident = unique("case")
    async with sessions() as setup:  # committed, so that another connection sees it
        setup.add(Case(id=ident, created_at=dt.datetime.now(dt.UTC), creditor_id=unique("ph"),
                       buyer_id="buy-held", debtor_country="DE", currency="EUR",
                       ladder="reminder_15_30_45", stage="new", status="open",
                       loss_payee_ids=[], fee_pct=Decimal(10), opened_on=dt.date(2027, 1, 1),
                       created_by="test"))  # fmt: skip
        await setup.flush()
        setup.add(CaseInvoice(id=unique("cinv"), case_id=ident, number="H-1",
                              amount=Decimal(100), due_date=dt.date(2027, 1, 1), paid=Decimal(0)))  # fmt: skip
        await setup.commit()
    try:
        async with sessions() as holder:
            await holder.execute(select(Case).where(Case.id == ident).with_for_update())
            run = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                                      json={"as_of": "2027-03-10"}), 200)  # fmt: skip
            assert ident not in [m["case_id"] for m in run["moved"]]
            assert run["held_elsewhere"] == 1
            await holder.rollback()
    finally:
        async with sessions() as cleanup:
            await cleanup.execute(delete(CaseInvoice).where(CaseInvoice.case_id == ident))
            await cleanup.execute(delete(Case).where(Case.id == ident))
            await cleanup.commit()
