"""A mandate collects a debt the buyer is late on: one on invoices none of which is past due yet
(due today, later, far ahead) is refused (422 `not-overdue`, naming the oldest due date), and
underwriting hears of no payment delay; one with an invoice past due opens and tells underwriting
(domain.md, Collections and Grade)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.collections import rules
from services.collections.models import outbox
from shared.db import get_session
from tests.builders import make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique

TODAY = dt.date(2027, 3, 10)
UNDERWRITER = auth("underwriter")


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    client: httpx.AsyncClient = await api.open("collections")
    return client


async def told(cases: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every signal collections put in its outbox for underwriting."""
    app = cases._transport.app  # type: ignore[attr-defined]
    async for session in app.dependency_overrides[get_session]():
        return list((await session.execute(select(outbox.c.body))).scalars().all())
    raise AssertionError("no session")


def body(creditor: str, buyer_id: str, *dues: str) -> dict[str, Any]:
    return {"creditor_id": creditor, "buyer_id": buyer_id, "debtor_country": "DE",
            "invoices": [{"number": f"F-{n}", "amount": money("500"), "due_date": due}
                         for n, due in enumerate(dues)]}  # fmt: skip


async def graded(api: Any) -> tuple[str, str, int]:
    """A buyer its creditor holds a limit on (a delay weighs on its grade), and the grade."""
    uw = api("underwriting")
    buyer_id = (await make_buyer(uw))["id"]
    creditor = unique("ph")
    await request_limit(uw, await make_policy(uw, creditor), buyer_id, "10000")
    grade = ok(await uw.get(f"/v1/buyers/{buyer_id}", headers=UNDERWRITER), 200)["grade"]
    return creditor, buyer_id, grade


@pytest.mark.parametrize("dues", [("2027-03-10",), ("2027-03-20",), ("2999-12-31",),
                                  ("2027-04-01", "2027-03-10")])  # fmt: skip
async def test_a_mandate_on_invoices_not_yet_past_due_is_refused_and_signals_nothing(
    cases: httpx.AsyncClient, api: Any, dues: tuple[str, ...]
) -> None:
    creditor, buyer_id, grade = await graded(api)
    holder = auth("policyholder", creditor)
    refused = await cases.post("/v1/cases", headers=holder, json=body(creditor, buyer_id, *dues))
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"] == "not-overdue"
    assert min(dues) in problem["detail"] and TODAY.isoformat() in problem["detail"]
    assert ok(await cases.get("/v1/cases", headers=holder), 200)["items"] == []
    assert [s for s in await told(cases) if s.get("creditor_id") == creditor] == []
    buyer = ok(await api("underwriting").get(f"/v1/buyers/{buyer_id}", headers=UNDERWRITER), 200)
    assert buyer["grade"] == grade


@pytest.mark.parametrize(("dues", "days"), [(("2027-03-09",), 1),
                                            (("2999-12-31", "2027-03-09", "2027-03-10"), 1),
                                            (("2027-02-08", "2027-04-01"), 30)])  # fmt: skip
async def test_a_mandate_with_an_invoice_past_due_opens_and_tells_of_the_delay(
    cases: httpx.AsyncClient, api: Any, dues: tuple[str, ...], days: int
) -> None:
    creditor, buyer_id, grade = await graded(api)
    holder = auth("policyholder", creditor)
    case = ok(await cases.post("/v1/cases", headers=holder, json=body(creditor, buyer_id, *dues)),
              201)  # fmt: skip
    assert case["days_past_due"] == days
    signals = [s for s in await told(cases) if s.get("case_id") == case["id"]]
    assert [(s["kind"], s["observed_on"]) for s in signals] == [("payment_delay", "2027-03-10")]
    buyer = ok(await api("underwriting").get(f"/v1/buyers/{buyer_id}", headers=UNDERWRITER), 200)
    assert buyer["grade"] > grade


def test_only_a_mandate_on_a_debt_past_due_is_a_payment_delay() -> None:
    assert rules.signal_on_opening(None, days_past_due=1) == "payment_delay"
    assert rules.signal_on_opening(None, days_past_due=0) is None
    assert rules.signal_on_opening("clm_1", days_past_due=40) is None
    assert rules.mandate_refused(dt.date(2027, 3, 10), TODAY)
    assert rules.mandate_refused(dt.date(2999, 12, 31), TODAY)
    assert not rules.mandate_refused(dt.date(2027, 3, 9), TODAY)


async def test_a_paid_claims_case_opens_as_before_and_signals_nothing(
    cases: httpx.AsyncClient, api: Any
) -> None:
    """The claims service opens a paid claim's case (on a debt past due, as a claim is): the
    mandate rule is not its, and the claim itself told underwriting."""
    creditor, buyer_id, _ = await graded(api)
    opening = {**body(creditor, buyer_id, "2027-01-20", "2027-02-10"),
               "claim_id": unique("clm"), "indemnity_paid": money("850")}  # fmt: skip
    case = ok(await cases.post("/v1/cases", headers=auth("service"), json=opening), 201)
    assert (case["days_past_due"], case["stage"]) == (49, "legal")
    kinds = [s["kind"] for s in await told(cases) if s.get("case_id") == case["id"]]
    assert "payment_delay" not in kinds
