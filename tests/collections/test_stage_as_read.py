"""A case is on the highest rung its days past due reach, on the rung's day (domain.md): every read
(a case, a page of cases) shows the stage the days past due it shows reach today, whether or not
the daily escalation run has passed since; the run still records the move, once. A case held by a
dispute or closed climbs no further: it stays on the rung it had reached when it stopped."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from services.collections import rules
from tests.builders import make_buyer, money, ok
from tests.conftest import auth, unique
from tests.feed import of_type, read_feed

COLLECTOR = auth("collector")
LADDER = ((15, "reminder_letter"), (30, "phone_collection"), (45, "legal"))
OPENED = "2027-03-10"  # 23 days past the oldest due date (15 February): the reminder letter's rung
RUNG_DAY = "2027-03-17"  # 30 days past due: the phone collection's rung


def today(client: httpx.AsyncClient, day: str) -> None:
    """Time passes: the in-process service's pinned today moves on."""
    settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date.fromisoformat(day)


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", OPENED)
    client: httpx.AsyncClient = await api.open("collections")
    return client


async def open_mandate(cases: httpx.AsyncClient, api: Any) -> tuple[dict[str, Any], str]:
    creditor = unique("ph")
    buyer = await make_buyer(api("underwriting"))
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json={
        "creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
        "invoices": [{"number": "N-2", "amount": money("600"), "due_date": "2027-02-20"},
                     {"number": "N-1", "amount": money("400"), "due_date": "2027-02-15"}]}), 201)  # fmt: skip
    assert (case["stage"], case["days_past_due"]) == ("reminder_letter", 23)
    return case, creditor


async def shown(cases: httpx.AsyncClient, case_id: str, creditor: str) -> list[tuple[Any, ...]]:
    """The case as it reads alone and in its creditor's page: (stage, status, days past due)."""
    holder = auth("policyholder", creditor)
    alone = ok(await cases.get(f"/v1/cases/{case_id}", headers=holder), 200)
    page = ok(await cases.get("/v1/cases", headers=holder), 200)["items"]
    [listed] = [c for c in page if c["id"] == case_id]
    return [(c["stage"], c["status"], c["days_past_due"]) for c in (alone, listed)]


def moves(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["data"]["previous_stage"], e["data"]["stage"], e["data"]["previous_status"],
             e["data"]["status"]) for e in of_type(events, "case.stage_changed")]  # fmt: skip


async def run(cases: httpx.AsyncClient, day: str, case_id: str) -> list[tuple[str, str]]:
    answer = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR, json={"as_of": day}),
                200)  # fmt: skip
    return [(m["from_stage"], m["to_stage"]) for m in answer["moved"] if m["case_id"] == case_id]


@pytest.mark.parametrize(("stage", "status", "days", "standing"), [
    ("new", "open", 14, "new"), ("new", "open", 15, "reminder_letter"),
    ("reminder_letter", "open", 45, "legal"), ("legal", "open", 3, "legal"),  # never down
    ("reminder_letter", "on_hold", 45, "reminder_letter"),
    ("phone_collection", "closed", 0, "phone_collection"),
])  # fmt: skip
def test_an_open_case_stands_on_the_rung_its_days_reach_a_held_or_closed_one_where_it_stood(
    stage: str, status: str, days: int, standing: str
) -> None:
    assert rules.stage_standing(LADDER, stage, status, days) == standing


async def test_a_case_reads_on_the_rung_its_days_past_due_reach_before_the_run_records_it(
    cases: httpx.AsyncClient, api: Any
) -> None:
    case, creditor = await open_mandate(cases, api)
    today(cases, "2027-03-16")  # 29 days: still the reminder letter
    assert await shown(cases, case["id"], creditor) == [("reminder_letter", "open", 29)] * 2
    today(cases, RUNG_DAY)  # on the rung's day it is on it, though no run has passed
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "open", 30)] * 2
    assert await run(cases, RUNG_DAY, case["id"]) == [("reminder_letter", "phone_collection")]
    assert await run(cases, RUNG_DAY, case["id"]) == []  # recorded once
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "open", 30)] * 2
    events = await read_feed(cases, auth("policyholder", creditor))
    assert moves(events) == [(None, "reminder_letter", None, "open"),
                             ("reminder_letter", "phone_collection", "open", "open")]  # fmt: skip


async def test_a_dispute_holds_a_case_on_the_rung_it_had_reached_and_records_the_climb_once(
    cases: httpx.AsyncClient, api: Any
) -> None:
    case, creditor = await open_mandate(cases, api)
    path = f"/v1/cases/{case['id']}/activities"
    today(cases, RUNG_DAY)  # no run has passed: the case reads on the phone collection's rung
    dispute = ok(await cases.post(path, headers=COLLECTOR, json={
        "kind": "dispute", "occurred_on": RUNG_DAY}), 201)  # fmt: skip
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "on_hold", 30)] * 2
    today(cases, "2027-04-01")  # 45 days: held, it climbs no further
    assert await run(cases, "2027-04-01", case["id"]) == []
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "on_hold", 45)] * 2
    ok(await cases.post(path, headers=COLLECTOR, json={
        "kind": "dispute_resolved", "occurred_on": "2027-04-01", "dispute_id": dispute["id"]}),
       201)  # open again: it reads on the rung its days reach  # fmt: skip
    assert await shown(cases, case["id"], creditor) == [("legal", "open", 45)] * 2
    assert await run(cases, "2027-04-01", case["id"]) == [("phone_collection", "legal")]
    events = await read_feed(cases, auth("policyholder", creditor))
    assert moves(events) == [
        (None, "reminder_letter", None, "open"),
        ("reminder_letter", "phone_collection", "open", "open"),  # the climb, as the run says it
        ("phone_collection", "phone_collection", "open", "on_hold"),
        ("phone_collection", "phone_collection", "on_hold", "open"),
        ("phone_collection", "legal", "open", "open"),
    ]
    read = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert [a["occurred_on"] for a in read["activities"] if a["kind"] == "escalation"] == [
        RUNG_DAY, "2027-04-01"]  # each move logged once  # fmt: skip


async def test_a_case_paid_in_full_keeps_the_rung_it_had_reached(
    cases: httpx.AsyncClient, api: Any
) -> None:
    case, creditor = await open_mandate(cases, api)
    today(cases, RUNG_DAY)
    ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR, json={
        "amount": money("1000"), "received_on": RUNG_DAY}), 201)  # fmt: skip
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "closed", 0)] * 2
    today(cases, "2027-04-01")
    assert await run(cases, "2027-04-01", case["id"]) == []
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "closed", 0)] * 2
    events = await read_feed(cases, auth("policyholder", creditor))
    assert [e["type"] for e in events] == ["case.stage_changed", "case.stage_changed",
                                           "case.payment_recorded", "case.closed"]  # fmt: skip
    assert moves(events)[1] == ("reminder_letter", "phone_collection", "open", "open")


def claim(creditor: str, buyer: str, *invoices: tuple[str, str, str, str]) -> dict[str, Any]:
    """A paid claim on the creditor's debt: (number, unpaid, due date, counted as recovered)."""
    return {"creditor_id": creditor, "buyer_id": buyer, "debtor_country": "DE",
            "claim_id": unique("clm"), "insurer_share_pct": "50",
            "invoices": [{"number": n, "amount": money(a), "due_date": d,
                          "recovered_in_collections": money(r)} for n, a, d, r in invoices]}  # fmt: skip


async def test_a_mandate_a_paid_claim_closes_keeps_the_rung_it_had_reached(
    cases: httpx.AsyncClient, api: Any
) -> None:
    """Taken over owing nothing (the claim counted what it recovered and settled the rest), or
    closed because the case taken over collects its debt from now on: either way a mandate
    closes on the rung its days past due had reached, the climb recorded once."""
    case, creditor = await open_mandate(cases, api)
    ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR, json={
        "amount": money("700"), "received_on": OPENED}), 201)  # N-2 (20 February) owes 300  # fmt: skip
    other = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json={
        "creditor_id": creditor, "buyer_id": case["buyer_id"], "debtor_country": "DE",
        "invoices": [{"number": "N-3", "amount": money("200"), "due_date": "2027-02-25"}]}), 201)  # fmt: skip
    assert other["stage"] == "new"  # 13 days past due
    today(cases, "2027-03-22")
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "open", 30)] * 2
    assert await shown(cases, other["id"], creditor) == [("reminder_letter", "open", 25)] * 2
    body = claim(creditor, case["buyer_id"], ("N-2", "100", "2027-02-20", "200"),
                 ("N-3", "200", "2027-02-25", "0"))  # fmt: skip
    body["settled_invoices"] = [{"number": "N-1", "recovered_in_collections": money("400")}]
    taken = ok(await cases.post("/v1/cases", headers=auth("service"), json=body), 201)
    assert (taken["id"], taken["stage"], taken["status"]) == (case["id"], "phone_collection",
                                                              "open")  # fmt: skip
    assert await shown(cases, other["id"], creditor) == [("reminder_letter", "closed", 0)] * 2
    today(cases, "2027-04-30")
    assert await run(cases, "2027-04-30", other["id"]) == []
    assert await shown(cases, other["id"], creditor) == [("reminder_letter", "closed", 0)] * 2
    heard = [e for e in await read_feed(cases, auth("policyholder", creditor))
             if e["data"]["case_id"] == other["id"]]  # fmt: skip
    assert moves(heard) == [(None, "new", None, "open"),
                            ("new", "reminder_letter", "open", "open"),
                            ("reminder_letter", "reminder_letter", "open", "closed")]  # fmt: skip


async def test_a_mandate_taken_over_owing_nothing_closes_on_the_rung_it_had_reached(
    cases: httpx.AsyncClient, api: Any
) -> None:
    case, creditor = await open_mandate(cases, api)
    ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR, json={
        "amount": money("700"), "received_on": OPENED}), 201)  # N-2 (20 February) owes 300  # fmt: skip
    today(cases, "2027-03-22")
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "open", 30)] * 2
    body = claim(creditor, case["buyer_id"], ("N-2", "100", "2027-02-20", "200"))
    body["settled_invoices"] = [{"number": "N-1", "recovered_in_collections": money("400")}]
    taken = ok(await cases.post("/v1/cases", headers=auth("service"), json=body), 201)
    assert (taken["stage"], taken["status"]) == ("phone_collection", "closed")
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "closed", 0)] * 2
    heard = moves(await read_feed(cases, auth("policyholder", creditor)))
    assert heard[-2:] == [("reminder_letter", "phone_collection", "open", "open"),
                          ("phone_collection", "phone_collection", "open", "closed")]  # fmt: skip


async def test_a_payment_of_the_oldest_invoice_leaves_the_case_on_the_rung_it_had_reached(
    cases: httpx.AsyncClient, api: Any
) -> None:
    """A case never climbs down: paid N-1 (15 February) on the phone collection's rung, it
    counts 25 days from N-2 but stays on that rung, the climb recorded once."""
    case, creditor = await open_mandate(cases, api)
    today(cases, RUNG_DAY)
    ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR, json={
        "amount": money("400"), "received_on": RUNG_DAY}), 201)  # fmt: skip
    assert await shown(cases, case["id"], creditor) == [("phone_collection", "open", 25)] * 2
    assert await run(cases, RUNG_DAY, case["id"]) == []
    events = await read_feed(cases, auth("policyholder", creditor))
    assert moves(events) == [(None, "reminder_letter", None, "open"),
                             ("reminder_letter", "phone_collection", "open", "open")]  # fmt: skip
