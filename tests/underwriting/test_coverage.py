"""Coverage checks beyond the basics: limits halved by a downgrade, the discretionary limit and when
a decision supersedes it, exposure and headroom, and batches read in many chunks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from services.underwriting.schemas import CoverageRead
from tests.builders import (
    check,
    declared_on,
    make_buyer,
    make_policy,
    money,
    ok,
    request_limit,
    weak_indicators,
)
from tests.conftest import auth, unique
from tests.underwriting.conftest import PINNED_TODAY

UW = auth("underwriter")
TODAY = PINNED_TODAY


async def test_a_signal_that_moves_a_buyer_to_grade_8_halves_its_limit_after_the_notice(
    pinned: httpx.AsyncClient,
) -> None:
    uw = pinned
    policy = await make_policy(uw, reduction_notice_days=30)
    buyer = await make_buyer(uw, indicators=weak_indicators())
    assert buyer["grade"] == 7
    limit = await request_limit(uw, policy, buyer["id"], "50000")
    assert limit["status"] == "approved"
    signal = ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "court_judgment", "observed_on": TODAY, "details": "judgment for a supplier"}),
        201)  # fmt: skip
    assert (signal["grade_before"], signal["grade"]) == (7, 8)
    [change] = signal["limit_changes"]
    assert change["limit_id"] == limit["limit_id"]
    assert change["new_amount"] == money("25000.00")
    assert change["effective_from"] == "2027-02-09"  # 10 January + 30 days' notice
    before = ok(await check(uw, policy, buyer["id"], "40000", "2027-02-08", "2027-03-08"), 200)
    assert before["limit_in_force"] == money("50000.00") and before["fully_covered"]
    after = ok(await check(uw, policy, buyer["id"], "40000", "2027-02-09", "2027-03-09"), 200)
    assert after["limit_in_force"] == money("25000.00")
    assert after["covered_amount"] == money("25000.00")
    assert after["reasons"] == ["partially_covered"]
    # A second adverse signal at grade 9 does not halve again: the buyer was already at 8-9.
    again = ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "payment_delay", "observed_on": TODAY}), 201)  # fmt: skip
    assert again["grade"] == 9 and again["limit_changes"] == []


async def test_the_discretionary_limit_covers_until_the_insurer_decides(
    pinned: httpx.AsyncClient,
) -> None:
    uw = pinned
    policy = await make_policy(uw, discretionary_limit=money("20000"))
    buyer = await make_buyer(uw, indicators={**weak_indicators(), "litigation_count": 3})
    assert buyer["grade"] == 9
    answer = ok(await check(uw, policy, buyer["id"], "30000", "2027-02-01", "2027-03-01"), 200)
    assert answer["limit_source"] == "discretionary"
    assert answer["limit_in_force"] == money("20000.00")
    assert answer["covered_amount"] == money("20000.00")
    assert answer["reasons"] == ["partially_covered"]

    referred = await request_limit(uw, policy, buyer["id"], "30000")
    assert referred["status"] == "referred"
    pending = ok(await check(uw, policy, buyer["id"], "1000", "2027-02-01", "2027-03-01"), 200)
    assert pending["limit_source"] == "discretionary"  # a pending referral is no decision

    ok(await uw.post(f"/v1/limit-requests/{referred['id']}/decision", headers=UW,
                     json={"decision": "refuse", "reason": "weak accounts"}), 200)  # fmt: skip
    superseded = ok(await check(uw, policy, buyer["id"], "1000", "2027-02-01", "2027-03-01"), 200)
    assert not superseded["covered"] and superseded["limit_source"] is None
    assert superseded["reasons"] == ["discretionary_superseded", "no_limit"]
    shipped_before = ok(await check(uw, policy, buyer["id"], "1000", "2027-01-05", "2027-02-05"),
                        200)  # fmt: skip
    assert shipped_before["covered"] and shipped_before["limit_source"] == "discretionary"


async def test_a_named_buyers_policy_has_no_discretionary_limit(pinned: httpx.AsyncClient) -> None:
    policy = await make_policy(
        pinned, cover_type="named_buyers", discretionary_limit=money("20000")
    )
    buyer = await make_buyer(pinned)
    answer = ok(await check(pinned, policy, buyer["id"], "1000", "2027-02-01", "2027-03-01"), 200)
    assert not answer["covered"] and answer["reasons"] == ["no_limit"]


async def test_exposure_lists_limit_exposure_and_headroom_per_buyer(
    pinned: httpx.AsyncClient,
) -> None:
    uw = pinned
    policy = await make_policy(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    busy, idle = await make_buyer(uw), await make_buyer(uw)
    for buyer in (busy, idle):
        await request_limit(uw, policy, buyer["id"], "100000")
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [
            {"number": "E-1", "buyer_id": busy["id"], "amount": money("70000"),
             "shipment_date": "2026-12-01", "due_date": "2027-02-01"},
            {"number": "E-2", "buyer_id": busy["id"], "amount": money("50000"),
             "shipment_date": "2026-12-15", "due_date": "2027-02-15",
             "paid_amount": money("10000"), "paid_on": "2027-01-05"},
            {"number": "E-3", "buyer_id": idle["id"], "amount": money("5000"),
             "shipment_date": "2026-11-01", "due_date": "2026-12-01",
             "paid_amount": money("5000"), "paid_on": "2026-12-01"},
        ]}), 201)  # fmt: skip
    listed = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=holder), 200)
    by_buyer = {row["buyer_id"]: row for row in listed["items"]}
    assert by_buyer[busy["id"]]["limit_in_force"] == money("100000.00")
    assert by_buyer[busy["id"]]["exposure"] == money("110000.00")
    assert by_buyer[busy["id"]]["headroom"] == money("0.00")
    assert by_buyer[idle["id"]]["exposure"] == money("0.00")
    assert by_buyer[idle["id"]]["headroom"] == money("100000.00")
    stranger = auth("policyholder", "someone-else")
    assert (await uw.get(f"/v1/policies/{policy['id']}/exposure",
                         headers=stranger)).status_code == 404  # fmt: skip
    # The single check sees the same exposure, less the invoice being checked.
    again = ok(await check(uw, policy, busy["id"], "1000", "2027-01-20", "2027-03-01",
                           invoice_number="E-2"), 200)  # fmt: skip
    assert again["exposure"] == money("70000.00") and again["covered_amount"] == money("1000.00")


async def test_each_exposure_page_shows_its_buyers_unpaid_receivables_as_the_rule_sums_them(
    pinned: httpx.AsyncClient,
) -> None:
    """A page of one buyer at a time (its receivables only are summed): what was paid by today
    is taken off, a payment dated after today is not yet; a buyer with nothing declared has no
    exposure. Each figure is `rules.exposure` of the buyer's receivables."""
    uw = pinned
    policy = await make_policy(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    buyers = [await make_buyer(uw) for _ in range(3)]
    for buyer in buyers:
        await request_limit(uw, policy, buyer["id"], "100000")
    owed, waiting, idle = (b["id"] for b in buyers)
    declared = [
        ("P-1", owed, "30000", None, None),
        ("P-2", owed, "20000.50", "5000.25", "2027-01-05"),  # 15,000.25 left
        ("P-3", waiting, "8000", "8000", "2027-01-20"),  # paid after today: still unpaid
        ("P-4", waiting, "2000", "2000", "2027-01-02"),  # paid
    ]
    with declared_on(uw, dt.date(2027, 1, 20)):  # the book as declared once it was paid
        ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
            "invoices": [{"number": n, "buyer_id": b, "amount": money(a),
                          "shipment_date": "2026-12-01", "due_date": "2027-02-01",
                          **({"paid_amount": money(p), "paid_on": on} if p else {})}
                         for n, b, a, p, on in declared]}), 201)  # fmt: skip
    shown: dict[str, str] = {}
    cursor = None
    while True:
        page = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=holder,
                               params={"limit": 1, **({"cursor": cursor} if cursor else {})}),
                  200)  # fmt: skip
        shown.update({i["buyer_id"]: i["exposure"]["amount"] for i in page["items"]})
        if (cursor := page["next_cursor"]) is None:
            break
    today = dt.date.fromisoformat(TODAY)
    expected = {
        buyer: str(rules.exposure(
            [rules.Receivable(n, Decimal(a), dt.date(2026, 12, 1), Decimal(p or 0),
                              None if on is None else dt.date.fromisoformat(on))
             for n, b, a, p, on in declared if b == buyer],
            shipment_date=dt.date.max, today=today).quantize(Decimal("0.01")))
        for buyer in (owed, waiting, idle)
    }  # fmt: skip
    assert shown == expected == {owed: "45000.25", waiting: "8000.00", idle: "0.00"}


async def test_a_batch_read_in_many_chunks_answers_every_item_in_order(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    monkeypatch.setenv("TCI_UW_COVERAGE_BATCH_CHUNK", "2")
    uw: httpx.AsyncClient = await api.open("underwriting")
    policy = await make_policy(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    buyers = [await make_buyer(uw) for _ in range(3)]
    for buyer, amount in zip(buyers, ("10000", "20000", "30000"), strict=True):
        await request_limit(uw, policy, buyer["id"], amount)

    def item(buyer_id: str, amount: str, **extra: Any) -> dict[str, Any]:
        return {"policy_id": policy["id"], "buyer_id": buyer_id, "invoice_amount": money(amount),
                "shipment_date": "2027-02-01", "due_date": "2027-03-01", **extra}  # fmt: skip

    items: list[Any] = [
        item(buyers[0]["id"], "15000"),
        {"policy_id": policy["id"]},  # malformed: its own 422, the others still answered
        item(buyers[1]["id"], "15000"),
        item(buyers[2]["id"], "15000", invoice_amount=money("15000", "USD")),
        "not an object",
        item(buyers[2]["id"], "15000", due_date="2027-01-01"),
        item("buy_unknown", "1"),
        item(buyers[2]["id"], "45000"),
    ]
    results = ok(await uw.post("/v1/coverage-checks/batch", json={"items": items},
                               headers=holder), 200)["results"]  # fmt: skip
    assert len(results) == len(items)
    errors = {
        r["index"]: (r["error"]["status"], r["error"]["type"]) for r in results if "error" in r
    }
    assert errors == {
        1: (422, "validation"), 3: (422, "currency-mismatch"), 4: (422, "validation"),
        5: (422, "due-before-shipment"), 6: (404, "not-found"),
    }  # fmt: skip
    for index in (0, 2, 7):
        single = ok(await uw.post("/v1/coverage-checks", json=items[index], headers=holder), 200)
        assert results[index] == single
        CoverageRead.model_validate(single)  # the documented response model
    assert results[0]["covered_amount"] == money("10000.00")
    assert results[2]["fully_covered"] and results[7]["covered_amount"] == money("30000.00")


async def test_a_buyer_declared_an_affiliate_is_not_insurable_under_any_of_the_holders_policies(
    pinned: httpx.AsyncClient,
) -> None:
    uw = pinned
    holder_id = unique("ph")
    # Last year's policy: one policyholder has one policy per currency and period.
    first = await make_policy(uw, holder=holder_id, start_date="2025-01-01",
                              end_date="2025-12-31", discretionary_limit=money("20000"))  # fmt: skip
    second = await make_policy(uw, holder=holder_id, discretionary_limit=money("20000"))
    stranger_policy = await make_policy(uw, discretionary_limit=money("20000"))
    buyer = await make_buyer(uw)
    before = ok(await check(uw, second, buyer["id"], "1000", "2027-02-01", "2027-03-01"), 200)
    assert before["covered"] and before["limit_source"] == "discretionary"
    refused = ok(await uw.post(f"/v1/policies/{first['id']}/limit-requests",
                               headers=auth("policyholder", holder_id),
                               json={"buyer_id": buyer["id"], "amount": money("10000"),
                                     "payment_terms_days": 60,
                                     "related_to_policyholder": True}), 201)  # fmt: skip
    assert refused["status"] == "refused"
    after = ok(await check(uw, second, buyer["id"], "1000", "2027-02-01", "2027-03-01"), 200)
    assert not after["covered"] and after["reasons"] == ["buyer_not_insurable"]
    # Another policyholder's policy is not concerned.
    other = ok(await check(uw, stranger_policy, buyer["id"], "1000", "2027-02-01", "2027-03-01"),
               200)  # fmt: skip
    assert other["covered"]


async def test_a_request_on_a_buyer_once_declared_an_affiliate_is_refused_without_the_flag(
    uw: httpx.AsyncClient,
) -> None:
    """The engine grants no limit that coverage would never honour."""
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    declared = await uw.post(f"/v1/policies/{policy['id']}/limit-requests",
                             headers=auth("policyholder", policy["policyholder_id"]),
                             json={"buyer_id": buyer["id"], "amount": money("10000"),
                                   "payment_terms_days": 60, "related_to_policyholder": True})  # fmt: skip
    assert ok(declared, 201)["status"] == "refused"
    again = await request_limit(uw, policy, buyer["id"], "10000")
    assert again["status"] == "refused" and again["limit_id"] is None
    assert [r["code"] for r in again["reasons"]] == ["buyer_related"]


async def test_a_batch_items_error_names_the_item_in_each_loc(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item's error is located in the batch's body (`["body", "items", <index>, ...]`), as a
    validation of the whole body would locate it, not as if the item were the body."""
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    uw: httpx.AsyncClient = await api.open("underwriting")
    policy = await make_policy(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    buyer = await make_buyer(uw)
    await request_limit(uw, policy, buyer["id"], "10000")
    item = {"policy_id": policy["id"], "buyer_id": buyer["id"], "invoice_amount": money("100"),
            "shipment_date": "2027-02-01", "due_date": "2027-03-01"}  # fmt: skip
    items: list[Any] = [
        item,
        {**item, "invoice_amount": {"amount": "-1", "currency": "EUR"}},
        {**item, "invoice_amount": money("100", "USD")},
        {"policy_id": policy["id"]},
    ]
    results = ok(await uw.post("/v1/coverage-checks/batch", json={"items": items},
                               headers=holder), 200)["results"]  # fmt: skip
    assert "covered" in results[0]
    negative = results[1]["error"]
    assert negative["type"] == "validation"
    assert [e["loc"] for e in negative["errors"]] == [["body", "items", 1, "invoice_amount",
                                                       "amount"]]  # fmt: skip
    mismatch = results[2]["error"]
    assert mismatch["type"] == "currency-mismatch"
    assert mismatch["loc"] == ["body", "items", 2, "invoice_amount", "amount"]
    missing = results[3]["error"]
    assert {tuple(e["loc"][:3]) for e in missing["errors"]} == {("body", "items", 3)}
    assert {e["loc"][3] for e in missing["errors"]} >= {"buyer_id", "invoice_amount"}
