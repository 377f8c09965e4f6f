"""The coverage rule lives in SQL for the hot path (`repository._coverage_columns`) and in Python
(`rules.amount_in_force`, `rules.stopped_on`, `rules.exposure`/`rules.unpaid_today`) for the exposure
page and the limit changes: the edge cases run through both and must agree."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from tests.builders import check, declared_on, make_buyer, make_policy, money, ok
from tests.conftest import auth

UW = auth("underwriter")
TODAY = dt.date(2027, 1, 10)
D = Decimal


@pytest.fixture
async def pinned(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


# The books of one (policy, buyer): a limit of 10,000 from 1 January and 20,000 from 1 February; an
# overdue notified on 5 January and cleared on 8 January; three receivables, one paid after today.
HISTORY = [rules.HistoryEntry(D(20000), dt.date(2027, 2, 1), None),
           rules.HistoryEntry(D(10000), dt.date(2027, 1, 1), dt.date(2027, 2, 1))]  # fmt: skip
STOPS = [(dt.date(2027, 1, 5), dt.date(2027, 1, 8))]
RECEIVABLES = [
    rules.Receivable("INV-A", D(1000), dt.date(2027, 1, 2), D(0), None),
    rules.Receivable("INV-B", D(500), dt.date(2027, 1, 3), D(500), dt.date(2027, 1, 20)),
    rules.Receivable("INV-C", D(300), dt.date(2027, 1, 6), D(300), dt.date(2027, 1, 9)),
    rules.Receivable("INV-D", D(200), dt.date(2027, 1, 10), D(50), TODAY),
]
# Shipment dates on every edge: before the limit, on effective_from and effective_to, on notified_on
# and cleared_on, on and between the receivables' shipment dates; with the receivable itself.
CASES = [
    (dt.date(2026, 12, 31), None), (dt.date(2027, 1, 1), None), (dt.date(2027, 1, 2), "INV-A"),
    (dt.date(2027, 1, 3), None), (dt.date(2027, 1, 5), None), (dt.date(2027, 1, 6), "INV-C"),
    (dt.date(2027, 1, 7), "INV-B"), (dt.date(2027, 1, 8), None), (dt.date(2027, 1, 10), "INV-D"),
    (dt.date(2027, 1, 31), None), (dt.date(2027, 2, 1), "INV-A"), (dt.date(2027, 3, 1), "INV-X"),
]  # fmt: skip


async def books(uw: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    policy = await make_policy(uw)
    buyer = (await make_buyer(uw))["id"]
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer, "amount": money("10000"), "effective_from": "2027-01-01",
        "reason": "migrated"}), 201)  # fmt: skip
    [limit] = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)["items"]
    ok(await uw.post(f"/v1/limits/{limit['id']}/changes", headers=UW, json={
        "new_amount": money("20000"), "effective_from": "2027-02-01", "reason": "more"}), 201)  # fmt: skip
    for kind, on in (("overdue_notified", "2027-01-05"), ("arrears_cleared", "2027-01-08")):
        ok(await uw.post(f"/v1/buyers/{buyer}/signals", headers=UW, json={
            "kind": kind, "observed_on": on, "policy_id": policy["id"]}), 201)  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    invoices = [{"number": r.invoice_number, "buyer_id": buyer, "amount": money(str(r.amount)),
                 "shipment_date": r.shipment_date.isoformat(),
                 "due_date": (r.shipment_date + dt.timedelta(days=60)).isoformat(),
                 "paid_amount": money(str(r.paid_amount)),
                 "paid_on": None if r.paid_on is None else r.paid_on.isoformat()}
                for r in RECEIVABLES]  # fmt: skip
    with declared_on(uw, max(r.paid_on for r in RECEIVABLES if r.paid_on is not None)):
        ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                         json={"invoices": invoices}), 201)  # fmt: skip
    return policy, buyer


async def test_the_sql_coverage_check_and_the_python_rules_agree_on_every_edge(
    pinned: httpx.AsyncClient,
) -> None:
    policy, buyer = await books(pinned)
    for ship, invoice in CASES:
        extra = {} if invoice is None else {"invoice_number": invoice}
        answer = ok(await check(pinned, policy, buyer, "100", ship.isoformat(),
                                (ship + dt.timedelta(days=30)).isoformat(), **extra), 200)  # fmt: skip
        in_force = rules.amount_in_force(HISTORY, ship)
        sql_in_force = answer["limit_in_force"]
        assert (None if sql_in_force is None else D(sql_in_force["amount"])) == in_force, ship
        stopped = rules.stopped_on(STOPS, ship)
        assert ("stop_shipment" in answer["reasons"]) == stopped, ship
        used = rules.exposure(RECEIVABLES, shipment_date=ship, today=TODAY, excluding=invoice)
        assert D(answer["exposure"]["amount"]) == used, (ship, invoice)


def test_the_edges_themselves_are_what_domain_md_says() -> None:
    """The cases above cross every edge: the limit's entries are half-open, a stop covers only
    shipments strictly between notification and clearing, a payment after today leaves the
    receivable unpaid, and the receivable checked is not its own exposure."""
    assert rules.amount_in_force(HISTORY, dt.date(2026, 12, 31)) is None
    assert rules.amount_in_force(HISTORY, dt.date(2027, 1, 31)) == D(10000)
    assert rules.amount_in_force(HISTORY, dt.date(2027, 2, 1)) == D(20000)
    assert [rules.stopped_on(STOPS, dt.date(2027, 1, d)) for d in (5, 6, 7, 8)] == [
        False, True, True, False]  # fmt: skip
    assert rules.unpaid_today(RECEIVABLES[1], TODAY) == D(500)
    assert rules.unpaid_today(RECEIVABLES[2], TODAY) == D(0)
    assert rules.unpaid_today(RECEIVABLES[3], TODAY) == D(150)
    assert rules.exposure(RECEIVABLES, shipment_date=dt.date(2027, 1, 2), today=TODAY,
                          excluding="INV-A") == D(0)  # fmt: skip
