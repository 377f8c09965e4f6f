"""Reading cases (issue 12: a page of ten cases ran at 5 % of `/healthz`): a page, or one case,
is read in two statements (the cases, then all their invoices, activities and payments at once)
on one connection with no session, built as plain JSON data; the answer is byte for byte the one
a change of the case answers with, and the list keeps its contract (cursor, limit, order)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import make_buyer, money, ok, statements_sent
from tests.conftest import auth, unique

COLLECTOR = auth("collector")
SERVICE = auth("service")


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-03-10")
    client: httpx.AsyncClient = await api.open("collections")
    client.buyer_id = (await make_buyer(api("underwriting")))["id"]  # type: ignore[attr-defined]
    return client


async def open_mandate(cases: httpx.AsyncClient, creditor: str, *numbers: str) -> dict[str, Any]:
    body = {"creditor_id": creditor, "buyer_id": cases.buyer_id,  # type: ignore[attr-defined]
            "debtor_country": "DE",
            "invoices": [{"number": number, "amount": money("600.5"),
                          "due_date": f"2027-02-{10 + index:02d}"}
                         for index, number in enumerate(numbers or ("N-1",))]}  # fmt: skip
    return ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json=body), 201)


async def worked_case(cases: httpx.AsyncClient, creditor: str) -> httpx.Response:
    """A mandate with two invoices, a call, a promise, a dispute raised and resolved and a
    payment, then taken over by a paid claim: the takeover's answer lists all of them."""
    case = await open_mandate(cases, creditor, "W-2 Zürich", "W-1")
    path = f"/v1/cases/{case['id']}"
    for activity in ({"kind": "call", "occurred_on": "2027-03-10", "note": "rang — «none»\n✓"},
                     {"kind": "promise_to_pay", "occurred_on": "2027-03-10",
                      "promised_amount": money("123.45"), "promised_on": "2027-03-20"},
                     {"kind": "dispute", "occurred_on": "2027-03-10"},
                     {"kind": "dispute_resolved", "occurred_on": "2027-03-10"}):  # fmt: skip
        ok(await cases.post(f"{path}/activities", headers=COLLECTOR, json=activity), 201)
    ok(await cases.post(f"{path}/payments", headers=COLLECTOR,
                        json={"amount": money("250.33"), "received_on": "2027-03-10"}), 201)  # fmt: skip
    body = {"creditor_id": creditor, "buyer_id": case["buyer_id"], "debtor_country": "DE",
            "claim_id": unique("clm"), "indemnity_paid": money("700"),
            "invoices": [{"number": i["number"], "amount": i["amount"], "due_date": i["due_date"]}
                         for i in case["invoices"]]}  # fmt: skip
    taken = await cases.post("/v1/cases", headers=SERVICE, json=body)
    answer = ok(taken, 201)
    assert answer["id"] == case["id"] and answer["insurer_share_pct"] is not None
    assert len(answer["activities"]) == 5 and len(answer["payments"]) == 1
    return taken


async def test_a_case_reads_as_its_last_change_answered_byte_for_byte(
    cases: httpx.AsyncClient,
) -> None:
    """A change answers with a model, a read with plain JSON data: the same bytes, with the
    case's invoices, activities, open disputes, payments, share and amounts."""
    creditor = unique("ph")
    taken = await worked_case(cases, creditor)
    holder = auth("policyholder", creditor)
    read = await cases.get(f"/v1/cases/{taken.json()['id']}", headers=holder)
    assert read.content == taken.content
    listed = await cases.get("/v1/cases", headers=holder)
    assert listed.content == b'{"items":[' + taken.content + b'],"next_cursor":null}'
    opened = await cases.post("/v1/cases", headers=auth("policyholder", creditor + "x"), json={
        "creditor_id": creditor + "x", "buyer_id": cases.buyer_id,  # type: ignore[attr-defined]
        "debtor_country": "DE",
        "invoices": [{"number": "F-1", "amount": money("1"), "due_date": "2027-03-01"}]})  # fmt: skip
    fresh = await cases.get(f"/v1/cases/{ok(opened, 201)['id']}", headers=COLLECTOR)
    assert fresh.content == opened.content


async def test_a_page_of_cases_reads_in_two_statements_whatever_it_holds(
    cases: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """The page, then the invoices, activities and payments of all its cases in one statement;
    a page with no case stops at the first."""
    creditor = unique("ph")
    for _ in range(3):
        await worked_case(cases, creditor)
        creditor = f"{creditor}x"
    with statements_sent(engines["collections"]) as sent:
        page = ok(await cases.get("/v1/cases", headers=COLLECTOR, params={"limit": 10}), 200)
    assert len(page["items"]) >= 3
    assert len(sent) == 2, "\n".join(sent)
    with statements_sent(engines["collections"]) as sent:
        empty = ok(await cases.get("/v1/cases", headers=COLLECTOR,
                                   params={"claim_id": unique("clm")}), 200)  # fmt: skip
    assert empty == {"items": [], "next_cursor": None}
    assert len(sent) == 1, "\n".join(sent)


async def test_a_case_reads_in_two_statements(
    cases: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    case = (await worked_case(cases, unique("ph"))).json()
    with statements_sent(engines["collections"]) as sent:
        ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert len(sent) == 2, "\n".join(sent)


async def test_pages_of_cases_go_oldest_first_each_case_once_and_only_the_callers_own(
    cases: httpx.AsyncClient,
) -> None:
    creditor, other = unique("ph"), unique("ph")
    opened = [(await open_mandate(cases, creditor, f"P-{n}"))["id"] for n in range(5)]
    await open_mandate(cases, other)
    holder = auth("policyholder", creditor)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(await cases.get("/v1/cases", headers=holder, params=params), 200)
        seen += [case["id"] for case in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == opened and pages == 3
    everyone = ok(await cases.get("/v1/cases", headers=COLLECTOR, params={"limit": 500}), 200)
    ids = [case["id"] for case in everyone["items"]]
    assert [i for i in ids if i in opened] == opened and len(ids) == len(set(ids))
    keys = [(case["created_at"], case["id"]) for case in everyone["items"]]
    assert keys == sorted(keys)
    on_hold = ok(await cases.get("/v1/cases", headers=holder, params={"status": "on_hold"}), 200)
    assert on_hold["items"] == []
    for params in ({"limit": 0}, {"limit": 501}, {"cursor": "not-a-cursor"}):
        refused = await cases.get("/v1/cases", headers=holder, params=params)
        assert refused.status_code == 422, params
