"""A case its ladder puts on a legal rung has gone to law: underwriting hears of it
(`collection_legal`, the closed loop) as it does of a collector's legal filing, once per case
whichever comes first; a case opened already on a legal rung says so at its opening."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.collections.models import outbox
from shared.db import get_session
from tests.builders import make_buyer, money, ok
from tests.conftest import auth, unique

COLLECTOR = auth("collector")
TODAY = dt.date(2027, 3, 10)


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    client: httpx.AsyncClient = await api.open("collections")
    client.buyer_id = (await make_buyer(api("underwriting")))["id"]  # type: ignore[attr-defined]
    return client


async def opened(cases: httpx.AsyncClient, due: str, ladder: str = "reminder_15_30_45") -> Any:
    creditor = unique("ph")
    body = {"creditor_id": creditor, "buyer_id": cases.buyer_id,  # type: ignore[attr-defined]
            "debtor_country": "DE", "ladder": ladder,
            "invoices": [{"number": "L-1", "amount": money("900"), "due_date": due}]}  # fmt: skip
    return ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json=body), 201)


async def told(cases: httpx.AsyncClient, case_id: str) -> list[tuple[str, str]]:
    """What the case put in the outbox for underwriting: (kind, observed_on) of each signal."""
    app = cases._transport.app  # type: ignore[attr-defined]
    async for session in app.dependency_overrides[get_session]():
        rows = (await session.execute(
            select(outbox.c.body).where(outbox.c.aggregate_id == case_id)
            .order_by(outbox.c.created_at))).scalars().all()  # fmt: skip
        return [(body["kind"], body["observed_on"]) for body in rows]
    raise AssertionError("no session")


def today_is(cases: httpx.AsyncClient, day: dt.date) -> None:
    cases._transport.app.state.settings.fixed_today = day  # type: ignore[attr-defined]


async def test_a_case_the_run_puts_on_its_legal_rung_tells_underwriting_once(
    cases: httpx.AsyncClient,
) -> None:
    case = await opened(cases, "2027-01-30")  # 39 days past due: phone collection
    assert case["stage"] == "phone_collection"
    assert await told(cases, case["id"]) == [("payment_delay", "2027-03-10")]
    today_is(cases, dt.date(2027, 3, 16))  # 45 days: legal
    run = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                              json={"as_of": "2027-03-16"}), 200)  # fmt: skip
    assert {"case_id": case["id"], "from_stage": "phone_collection", "to_stage": "legal",
            "days_past_due": 45} in run["moved"]  # fmt: skip
    assert (await told(cases, case["id"]))[1:] == [("collection_legal", "2027-03-16")]
    # A legal filing afterwards says nothing new.
    ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "legal_filing", "occurred_on": "2027-03-16", "note": "claim filed in court"}), 201)  # fmt: skip
    assert len(await told(cases, case["id"])) == 2


async def test_a_legal_filing_before_the_rung_is_the_one_signal(cases: httpx.AsyncClient) -> None:
    case = await opened(cases, "2027-01-10", ladder="legal_30_60_90")  # 59 days: amicable
    assert case["stage"] == "amicable"
    ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "legal_filing", "occurred_on": "2027-03-10", "note": "lawyer instructed"}), 201)  # fmt: skip
    today_is(cases, dt.date(2027, 4, 10))  # 90 days: lawsuit
    ok(await cases.post("/v1/escalations/run", headers=COLLECTOR, json={"as_of": "2027-04-10"}),
       200)  # fmt: skip
    assert (await told(cases, case["id"]))[1:] == [("collection_legal", "2027-03-10")]


async def test_a_case_opened_on_its_legal_rung_says_so_at_its_opening(
    cases: httpx.AsyncClient,
) -> None:
    case = await opened(cases, "2027-01-20")  # 49 days past due
    assert case["stage"] == "legal"
    assert await told(cases, case["id"]) == [("payment_delay", "2027-03-10"),
                                             ("collection_legal", "2027-03-10")]  # fmt: skip
