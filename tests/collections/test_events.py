"""Collections' events, written with the change they announce: a case opened on its first rung,
moved up its ladder, held by a dispute and opened again, each payment, and the case closed when
paid in full; heard by the case's creditor, every one by staff. A refused act, a replay and a run
that moves nothing write none."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, money, ok
from tests.conftest import auth, unique
from tests.feed import of_type, read_feed

COLLECTOR = auth("collector")
TODAY = "2027-03-10"


def today(client: httpx.AsyncClient, day: str) -> None:
    """Time passes: the in-process service's pinned today moves on."""
    settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date.fromisoformat(day)


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("collections")
    return client


async def open_mandate(cases: httpx.AsyncClient, api: Any) -> tuple[dict[str, Any], str]:
    """A mandate of a new creditor: 1,000 owed, the oldest due date 15 February (23 days past
    due: the reminder letter's rung)."""
    creditor = unique("ph")
    buyer = await make_buyer(api("underwriting"))
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json={
        "creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
        "invoices": [{"number": "N-2", "amount": money("600"), "due_date": "2027-02-20"},
                     {"number": "N-1", "amount": money("400"), "due_date": "2027-02-15"}]}), 201)  # fmt: skip
    return case, creditor


def places(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["data"]["previous_stage"], e["data"]["stage"], e["data"]["previous_status"],
             e["data"]["status"]) for e in of_type(events, "case.stage_changed")]  # fmt: skip


async def test_a_case_announces_its_opening_its_climb_and_its_dispute_to_its_creditor(
    cases: httpx.AsyncClient, api: Any
) -> None:
    case, creditor = await open_mandate(cases, api)
    holder = auth("policyholder", creditor)
    [opened] = await read_feed(cases, holder)
    assert opened["data"] == {
        "case_id": case["id"], "claim_id": None, "creditor_id": creditor,
        "buyer_id": case["buyer_id"], "ladder": "reminder_15_30_45", "previous_stage": None,
        "stage": "reminder_letter", "previous_status": None, "status": "open",
        "days_past_due": 23, "changed_on": TODAY, "reason": "case opened",
    }  # fmt: skip
    week_on = "2027-03-17"  # 30 days past due: the phone collection's rung
    today(cases, week_on)
    run = {"as_of": week_on}
    ok(await cases.post("/v1/escalations/run", headers=COLLECTOR, json=run), 200)
    ok(await cases.post("/v1/escalations/run", headers=COLLECTOR, json=run), 200)  # moves none
    ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "call", "occurred_on": week_on}), 201)  # fmt: skip
    disputes = [ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR,
                                    json={"kind": "dispute", "occurred_on": week_on}), 201)
                for _ in range(2)]  # a second dispute holds it still: no event  # fmt: skip
    for dispute in disputes:  # the first resolved, it still holds: the second opens it again
        ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
            "kind": "dispute_resolved", "occurred_on": week_on, "dispute_id": dispute["id"]}),
           201)  # fmt: skip
    events = await read_feed(cases, holder)
    assert places(events) == [
        (None, "reminder_letter", None, "open"),
        ("reminder_letter", "phone_collection", "open", "open"),
        ("phone_collection", "phone_collection", "open", "on_hold"),
        ("phone_collection", "phone_collection", "on_hold", "open"),
    ]
    climbed = events[1]["data"]
    assert (climbed["days_past_due"], climbed["changed_on"]) == (30, week_on)
    assert events[2]["data"]["reason"] == "dispute logged"
    assert await read_feed(cases, auth("policyholder", unique("ph"))) == []
    staff = await read_feed(cases, COLLECTOR, after=opened["id"])
    assert [e["id"] for e in staff if e["data"]["case_id"] == case["id"]] == [
        e["id"] for e in events[1:]]  # fmt: skip


async def test_each_payment_is_announced_and_the_last_closes_the_case(
    cases: httpx.AsyncClient, api: Any
) -> None:
    case, creditor = await open_mandate(cases, api)
    path = f"/v1/cases/{case['id']}/payments"
    first = ok(await cases.post(path, headers=COLLECTOR, json={
        "amount": money("300"), "received_on": TODAY}), 201)  # fmt: skip
    too_much = await cases.post(path, headers=COLLECTOR, json={
        "amount": money("800"), "received_on": TODAY})  # fmt: skip
    assert too_much.status_code == 422 and too_much.json()["type"] == "overpayment"
    once = {**COLLECTOR, "Idempotency-Key": unique("pay")}
    last = ok(await cases.post(path, headers=once, json={
        "amount": money("700"), "received_on": TODAY}), 201)  # fmt: skip
    replay = await cases.post(path, headers=once, json={
        "amount": money("700"), "received_on": TODAY})  # fmt: skip
    assert replay.headers["idempotent-replayed"] == "true"
    closed_twice = await cases.post(path, headers=COLLECTOR, json={
        "amount": money("1"), "received_on": TODAY})  # fmt: skip
    assert closed_twice.status_code == 409
    events = await read_feed(cases, auth("policyholder", creditor))
    assert [e["type"] for e in events] == ["case.stage_changed", "case.payment_recorded",
                                           "case.payment_recorded", "case.closed"]  # fmt: skip
    paid = events[1]["data"]
    assert paid == {
        "case_id": case["id"], "claim_id": None, "creditor_id": creditor,
        "payment_id": first["id"], "amount": money("300.00"), "received_on": TODAY,
        "allocation": first["allocation"], "outstanding_after": money("700.00"),
        "reshared_after_claim": False, "previous_allocation": None,
    }  # fmt: skip
    assert events[2]["data"]["payment_id"] == last["id"]
    assert events[2]["data"]["outstanding_after"] == money("0.00")
    assert events[3]["data"] == {"case_id": case["id"], "claim_id": None,
                                 "creditor_id": creditor, "closed_on": TODAY,
                                 "reason": "paid_in_full", "recovered": money("1000.00")}  # fmt: skip
