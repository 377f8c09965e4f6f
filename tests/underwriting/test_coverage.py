"""Coverage checks beyond the basics: limits halved by a downgrade, the discretionary limit and when
a decision supersedes it, exposure and headroom, and batches read in many chunks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from services.underwriting.schemas import IDS_PER_LIST, CoverageRead
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


async def _exposure_pages(
    uw: httpx.AsyncClient, policy: dict[str, Any], headers: dict[str, str], size: int
) -> list[list[dict[str, Any]]]:
    """Every page of a policy's exposure, `size` items at a time, following the cursors."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        page = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=headers,
                               params={"limit": size, **({"cursor": cursor} if cursor else {})}),
                  200)  # fmt: skip
        pages.append(page["items"])
        if (cursor := page["next_cursor"]) is None:
            return pages
        assert len(page["items"]) == size  # a cursor only after a full page


def _invoice(number: str, buyer_id: str, amount: str, **paid: Any) -> dict[str, Any]:
    return {"number": number, "buyer_id": buyer_id, "amount": money(amount),
            "shipment_date": "2026-12-01", "due_date": "2027-02-01", **paid}  # fmt: skip


async def test_the_exposure_page_lists_every_buyer_owed_with_the_cover_a_check_today_counts(
    pinned: httpx.AsyncClient,
) -> None:
    """Not only the buyers with a credit limit: a buyer covered by the discretionary limit, one
    whose discretionary cover a refusal ended, and one graded insolvent are listed with their
    declared receivables, each with the limit (and its source) a coverage check of a shipment
    today counts, and the headroom it leaves."""
    uw = pinned
    policy = await make_policy(uw, discretionary_limit=money("20000"))
    holder = auth("policyholder", policy["policyholder_id"])
    named, discretionary, refused, insolvent, paid_off, unowed = [
        await make_buyer(uw) for _ in range(6)
    ]
    granted = await request_limit(uw, policy, named["id"], "100000")
    assert granted["status"] == "approved"
    refusal = await request_limit(uw, policy, refused["id"], "10000", terms=200)
    assert refusal["status"] == "refused"
    # A refusal on a buyer owed nothing grants nothing: not in the book.
    unowed_refusal = await request_limit(uw, policy, unowed["id"], "10000", terms=200)
    assert unowed_refusal["status"] == "refused"
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [
            _invoice("N-1", named["id"], "30000"),
            _invoice("D-1", discretionary["id"], "12000"),
            _invoice("D-2", discretionary["id"], "3000"),
            _invoice("R-1", refused["id"], "5000"),
            _invoice("I-1", insolvent["id"], "2000"),
            _invoice("P-1", paid_off["id"], "4000", paid_amount=money("4000"),
                     paid_on="2027-01-05"),
        ]}), 201)  # fmt: skip
    ok(await uw.post(f"/v1/buyers/{insolvent['id']}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": TODAY}), 201)  # fmt: skip
    # Another policyholder's receivables on the same buyer are not this policy's exposure.
    other = await make_policy(uw, discretionary_limit=money("20000"))
    ok(await uw.post(f"/v1/policies/{other['id']}/declarations",
                     headers=auth("policyholder", other["policyholder_id"]),
                     json={"invoices": [_invoice("O-1", named["id"], "999")]}), 201)  # fmt: skip

    [items] = await _exposure_pages(uw, policy, holder, 50)
    shown = {i["buyer_id"]: (i["limit_source"], i["limit_in_force"]["amount"],
                             i["exposure"]["amount"], i["headroom"]["amount"]) for i in items}  # fmt: skip
    assert shown == {
        named["id"]: ("credit_limit", "100000.00", "30000.00", "70000.00"),
        discretionary["id"]: ("discretionary", "20000.00", "15000.00", "5000.00"),
        refused["id"]: (None, "0.00", "5000.00", "0.00"),
        insolvent["id"]: (None, "0.00", "2000.00", "0.00"),
        paid_off["id"]: ("discretionary", "20000.00", "0.00", "20000.00"),
    }
    assert len(items) == len(shown)
    limit_ids = {i["buyer_id"]: i["limit_id"] for i in items}
    assert limit_ids[named["id"]] == granted["limit_id"]
    assert {limit_ids[b["id"]] for b in (discretionary, refused, insolvent, paid_off)} == {None}
    # The limit and its source are those a coverage check of a shipment today counts.
    for item in items:
        answer = ok(await check(uw, policy, item["buyer_id"], "1", TODAY, "2027-02-10"), 200)
        assert answer["limit_source"] == item["limit_source"]
        assert (answer["limit_in_force"] or money("0.00")) == item["limit_in_force"]
    # Staff read the same page.
    assert (await _exposure_pages(uw, policy, UW, 50)) == [items]


async def test_a_named_buyers_policy_lists_a_buyer_owed_without_a_limit_as_uncovered(
    pinned: httpx.AsyncClient,
) -> None:
    policy = await make_policy(pinned, cover_type="named_buyers",
                               discretionary_limit=money("20000"))  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    buyer = await make_buyer(pinned)
    ok(await pinned.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                         json={"invoices": [_invoice("U-1", buyer["id"], "8000")]}), 201)  # fmt: skip
    [[item]] = await _exposure_pages(pinned, policy, holder, 50)
    assert item["buyer_id"] == buyer["id"] and item["limit_id"] is None
    assert item["limit_source"] is None and item["limit_in_force"] == money("0.00")
    assert item["exposure"] == money("8000.00") and item["headroom"] == money("0.00")


async def test_exposure_pages_run_over_the_book_by_buyer_id_each_buyer_once(
    pinned: httpx.AsyncClient,
) -> None:
    """The pages run over the union of the buyers with a limit granted and those with
    receivables declared, by buyer id, each buyer once (one with a limit and receivables too;
    one whose only limit was refused and who owes nothing is not in the book). Between two
    pages, a limit or a receivable on a buyer shown neither repeats it nor skips another, and a
    buyer new to the book is on a later page when its id comes after the page's cursor, on
    none when it comes before."""
    uw = pinned
    policy = await make_policy(uw, discretionary_limit=money("10000"))
    holder = auth("policyholder", policy["policyholder_id"])
    ids = sorted([(await make_buyer(uw))["id"] for _ in range(12)])

    async def declare(*invoices: tuple[str, int, str]) -> None:
        ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
            "invoices": [_invoice(n, ids[b], a) for n, b, a in invoices]}), 201)  # fmt: skip

    async def grant(b: int) -> None:
        assert (await request_limit(uw, policy, ids[b], "50000"))["status"] == "approved"

    for b in (0, 3, 7, 5, 9):
        await grant(b)
    await declare(("A-2", 2, "2000"), ("A-3", 3, "3000"), ("A-6", 6, "6000"),
                  ("A-4", 4, "4000"), ("A-9", 9, "9000"))  # fmt: skip
    refusal = await request_limit(uw, policy, ids[8], "10000", terms=200)
    assert refusal["status"] == "refused"

    book = [ids[b] for b in (0, 2, 3, 4, 5, 6, 7, 9)]
    assert [i["buyer_id"] for page in await _exposure_pages(uw, policy, holder, 50)
            for i in page] == book  # fmt: skip
    pages = await _exposure_pages(uw, policy, holder, 3)
    assert [[i["buyer_id"] for i in page] for page in pages] == [book[0:3], book[3:6], book[6:]]

    first = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=holder,
                            params={"limit": 3}), 200)  # fmt: skip
    assert [i["buyer_id"] for i in first["items"]] == [ids[0], ids[2], ids[3]]
    await grant(2)  # shown, declared only until now
    await declare(("B-0", 0, "700"),  # shown, with a limit
                  ("B-1", 1, "100"),  # new to the book, before the cursor: on no page
                  ("B-8", 8, "800"))  # its limit refused, now owed: after the cursor  # fmt: skip
    await grant(10)  # new to the book, after the cursor
    shown = [i["buyer_id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=holder,
                               params={"limit": 3, "cursor": cursor}), 200)  # fmt: skip
        shown += [i["buyer_id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert shown == [ids[b] for b in (0, 2, 3, 4, 5, 6, 7, 8, 9, 10)]


async def test_the_exposure_of_the_buyers_named_lists_those_of_them_in_the_book(
    pinned: httpx.AsyncClient,
) -> None:
    """`?buyer_id=` (repeated): the buyers named that are in the book, by id, paged as the
    whole book is; a buyer named outside the book (no limit, nothing declared) is not listed."""
    uw = pinned
    policy = await make_policy(uw, discretionary_limit=money("10000"))
    holder = auth("policyholder", policy["policyholder_id"])
    ids = sorted([(await make_buyer(uw))["id"] for _ in range(5)])
    for b in (0, 1, 3):
        await request_limit(uw, policy, ids[b], "50000")
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [_invoice("C-4", ids[4], "4000"), _invoice("C-1", ids[1], "1000")]}),
       201)  # fmt: skip
    named = [ids[4], ids[2], ids[1], ids[0]]
    page = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=holder,
                           params={"buyer_id": named}), 200)  # fmt: skip
    assert [(i["buyer_id"], i["exposure"]["amount"]) for i in page["items"]] == [
        (ids[0], "0.00"), (ids[1], "1000.00"), (ids[4], "4000.00")]  # fmt: skip
    assert page["next_cursor"] is None
    first = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=UW,
                            params={"buyer_id": named, "limit": 2}), 200)  # fmt: skip
    assert [i["buyer_id"] for i in first["items"]] == [ids[0], ids[1]]
    rest = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=UW,
                           params={"buyer_id": named, "limit": 2,
                                   "cursor": first["next_cursor"]}), 200)  # fmt: skip
    assert [i["buyer_id"] for i in rest["items"]] == [ids[4]] and rest["next_cursor"] is None
    too_many = await uw.get(
        f"/v1/policies/{policy['id']}/exposure",
        headers=UW,
        params={"buyer_id": [f"buy_{n}" for n in range(IDS_PER_LIST + 1)]},
    )
    assert too_many.status_code == 422


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
