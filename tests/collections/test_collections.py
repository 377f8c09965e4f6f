"""Collections: ladders as pure rules, cases climbing them, activities, payments credited oldest
first and shared out, and one case per paid claim."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from services.collections import rules
from shared.money import Money
from tests.builders import make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique

COLLECTOR = auth("collector")
SERVICE = auth("service")
# The two seeded ladders (the table `collections.ladders`; `GET /v1/ladders` shows them).
LADDER = ((15, "reminder_letter"), (30, "phone_collection"), (45, "legal"))
LEGAL_LADDER = ((30, "amicable"), (60, "lawyer_letter"), (90, "lawsuit"))


@pytest.mark.parametrize(("days", "stage"), [(0, "new"), (14, "new"), (15, "reminder_letter"),
                                             (29, "reminder_letter"), (30, "phone_collection"),
                                             (44, "phone_collection"), (45, "legal"), (400, "legal")])  # fmt: skip
def test_a_case_stands_on_the_highest_rung_its_days_reach(days: int, stage: str) -> None:
    assert rules.stage_on(LADDER, days) == stage


def test_the_other_ladder_and_days_past_due() -> None:
    legal = LEGAL_LADDER
    assert [rules.stage_on(legal, d) for d in (29, 30, 60, 89, 90)] == [
        "new",
        "amicable",
        "lawyer_letter",
        "lawyer_letter",
        "lawsuit",
    ]
    assert rules.days_past_due(dt.date(2027, 1, 31), dt.date(2027, 3, 2)) == 30
    assert rules.days_past_due(dt.date(2027, 3, 31), dt.date(2027, 3, 2)) == 0
    assert rules.days_past_due(None, dt.date(2027, 3, 2)) == 0


def test_payments_credit_the_oldest_invoice_first() -> None:
    invoices = [rules.OpenInvoice("B", dt.date(2027, 2, 1), D(500)),
                rules.OpenInvoice("Z", dt.date(2027, 1, 1), D(300)),
                rules.OpenInvoice("A", dt.date(2027, 2, 1), D(100))]  # fmt: skip
    # Oldest due date first (Z, though last by number), then number on the same date.
    assert rules.credit_oldest_first(invoices, D(700)) == [("Z", D(300)), ("A", D(100)),
                                                           ("B", D(300))]  # fmt: skip


@pytest.mark.parametrize("amount", ["1000.00", "0.01", "333.33", "12345.67"])
def test_an_allocation_always_adds_up_to_the_payment(amount: str) -> None:
    paid = Money(D(amount), "EUR")
    share = rules.allocate(paid, fee_pct=D(10), insurer_share_pct=D("70.8333"))
    assert share.fee + share.insurer + share.policyholder == paid
    before_claim = rules.allocate(paid, fee_pct=D(10), insurer_share_pct=None)
    assert before_claim.insurer.amount == 0
    assert before_claim.fee + before_claim.policyholder == paid
    if amount == "1000.00":
        assert (share.fee.amount, share.insurer.amount, share.policyholder.amount) == (
            D("100.00"),
            D("637.50"),
            D("262.50"),
        )


BUYER: dict[str, str] = {}


def today(client: httpx.AsyncClient, day: str) -> None:
    """Time passes: the in-process service's pinned today moves on."""
    settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date.fromisoformat(day)


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-03-10")
    client: httpx.AsyncClient = await api.open("collections")
    BUYER["id"] = (await make_buyer(api("underwriting")))["id"]
    return client


def mandate(creditor: str, **extra: Any) -> dict[str, Any]:
    return {"creditor_id": creditor, "buyer_id": BUYER["id"], "debtor_country": "DE",
            "invoices": [{"number": "N-2", "amount": money("600"), "due_date": "2027-02-20"},
                         {"number": "N-1", "amount": money("400"), "due_date": "2027-02-15"}],
            **extra}  # fmt: skip


async def test_a_mandate_climbs_its_ladder_holds_on_a_dispute_and_closes_when_paid(
    cases: httpx.AsyncClient, api: Any
) -> None:
    uw = api("underwriting")
    creditor = unique("ph")
    holder = auth("policyholder", creditor)
    # The creditor holds a limit on the buyer: its mandate's signal weighs on the grade.
    await request_limit(uw, await make_policy(uw, creditor), BUYER["id"], "10000")
    case = ok(await cases.post("/v1/cases", headers=holder, json=mandate(creditor)), 201)
    # Underwriting heard of the payment delay: the buyer's grade took the signal's point.
    buyer = ok(await uw.get(f"/v1/buyers/{BUYER['id']}", headers=auth("underwriter")), 200)
    assert buyer["grade"] == 3
    # 23 days past the oldest due date (15 February): it opens on the rung those days reach.
    assert (case["stage"], case["status"], case["days_past_due"]) == ("reminder_letter", "open", 23)
    same_day = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                                   json={"as_of": "2027-03-10"}), 200)  # fmt: skip
    assert case["id"] not in [m["case_id"] for m in same_day["moved"]]
    ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "promise_to_pay", "occurred_on": "2027-03-10", "promised_amount": money("300"),
        "promised_on": "2027-03-20"}), 201)  # fmt: skip
    today(cases, "2027-03-17")
    run = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                              json={"as_of": "2027-03-17"}), 200)  # fmt: skip
    assert {
        "case_id": case["id"],
        "from_stage": "reminder_letter",
        "to_stage": "phone_collection",
        "days_past_due": 30,
    } in run["moved"]

    today(cases, "2027-03-18")
    held = ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "dispute", "occurred_on": "2027-03-18", "note": "buyer disputes N-2"}), 201)  # fmt: skip
    assert held["case_status"] == "on_hold"
    today(cases, "2027-04-30")
    frozen = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                                 json={"as_of": "2027-04-30"}), 200)  # fmt: skip
    assert case["id"] not in [m["case_id"] for m in frozen["moved"]]
    ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "dispute_resolved", "occurred_on": "2027-04-30"}), 201)  # fmt: skip
    legal = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                                json={"as_of": "2027-04-30"}), 200)  # fmt: skip
    assert {
        "case_id": case["id"],
        "from_stage": "phone_collection",
        "to_stage": "legal",
        "days_past_due": 74,
    } in legal["moved"]

    posted = await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                              json={"amount": money("500"), "received_on": "2027-04-02"})  # fmt: skip
    first = ok(posted, 201)
    assert (
        ok(await cases.get(posted.headers["location"], headers=holder), 200)["credited"]
        == (first["credited"])
    )
    assert [(c["invoice_number"], c["amount"]["amount"]) for c in first["credited"]] == [
        ("N-1", "400.00"),
        ("N-2", "100.00"),
    ]
    assert first["allocation"] == {"fee": money("50.00"), "insurer": money("0.00"),
                                   "policyholder": money("450.00")}  # fmt: skip
    too_much = await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                                json={"amount": money("500.01"), "received_on": "2027-04-03"})  # fmt: skip
    assert too_much.status_code == 422 and too_much.json()["type"] == "overpayment"
    assert "500.01 exceeds the outstanding 500.00 EUR" in too_much.json()["detail"]
    last = ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                               json={"amount": money("500"), "received_on": "2027-04-03"}), 201)  # fmt: skip
    assert last["case_status"] == "closed" and last["outstanding_after"] == money("0.00")
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=holder), 200)
    assert seen["status"] == "closed" and seen["recovered"] == money("1000.00")
    assert [a["kind"] for a in seen["activities"]] == [
        "promise_to_pay",
        "escalation",
        "dispute",
        "dispute_resolved",
        "escalation",
    ]
    stranger = auth("policyholder", "someone-else")
    assert (await cases.get(f"/v1/cases/{case['id']}", headers=stranger)).status_code == 404
    assert (await cases.post(f"/v1/cases/{case['id']}/payments", headers=holder,
                             json={"amount": money("1"), "received_on": "2027-04-03"})
            ).status_code == 403  # fmt: skip


async def test_a_paid_claim_opens_one_case_and_recoveries_are_shared(
    cases: httpx.AsyncClient,
) -> None:
    claim_id = unique("clm")
    body = mandate(unique("ph"), claim_id=claim_id, insurer_share_pct="70.8333",
                   ladder="legal_30_60_90")  # fmt: skip
    case = ok(await cases.post("/v1/cases", headers=SERVICE, json=body), 201)
    assert case["stage"] == "new" and case["insurer_share_pct"] == "70.8333"
    twice = await cases.post("/v1/cases", headers=SERVICE, json=body)
    assert twice.status_code == 409 and twice.json()["case_id"] == case["id"]
    paid = ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                               json={"amount": money("1000"), "received_on": "2027-03-10"}), 201)  # fmt: skip
    allocation = paid["allocation"]
    assert allocation == {"fee": money("100.00"), "insurer": money("637.50"),
                          "policyholder": money("262.50")}  # fmt: skip


async def test_bad_case_input_is_refused_precisely(cases: httpx.AsyncClient) -> None:
    creditor = unique("ph")
    holder = auth("policyholder", creditor)
    other = await cases.post("/v1/cases", headers=holder, json=mandate("someone-else"))
    assert other.status_code == 422
    mixed = mandate(creditor)
    mixed["invoices"][1]["amount"] = money("400", "USD")
    assert (await cases.post("/v1/cases", headers=holder, json=mixed)).json()["type"] == (
        "currency-mismatch"
    )
    bad_ladder = await cases.post("/v1/cases", headers=holder,
                                  json=mandate(creditor, ladder="sue_at_once"))  # fmt: skip
    assert bad_ladder.status_code == 422
    promise = await cases.post("/v1/cases/case_missing/activities", headers=COLLECTOR,
                               json={"kind": "promise_to_pay", "occurred_on": "2027-03-10"})  # fmt: skip
    assert promise.status_code == 422  # a promise needs its amount and date
    assert (await cases.get("/v1/cases/case_missing", headers=COLLECTOR)).status_code == 404
    case = ok(await cases.post("/v1/cases", headers=holder, json=mandate(creditor)), 201)
    ahead = await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                             json={"amount": money("1"), "received_on": "2027-03-11"})  # fmt: skip
    assert ahead.status_code == 422 and ahead.json()["errors"][0]["loc"][-1] == "received_on"
    backwards = await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "promise_to_pay", "occurred_on": "2027-03-10", "promised_amount": money("1"),
        "promised_on": "2027-03-09"})  # fmt: skip
    assert (
        backwards.status_code == 422 and backwards.json()["errors"][0]["loc"][-1] == "promised_on"
    )
    unknown_buyer = await cases.post("/v1/cases", headers=holder,
                                     json=mandate(creditor, buyer_id="buy_unknown"))  # fmt: skip
    assert unknown_buyer.status_code == 404


async def test_what_a_paid_claim_says_of_its_invoices_comes_from_a_paid_claim_in_its_currency(
    cases: httpx.AsyncClient,
) -> None:
    creditor = unique("ph")
    holder = auth("policyholder", creditor)
    settled = await cases.post("/v1/cases", headers=holder, json=mandate(
        creditor, settled_invoices=[{"number": "N-9"}]))  # fmt: skip
    assert settled.status_code == 422 and settled.json()["type"] == "validation", settled.text
    counted = mandate(creditor)
    counted["invoices"][0]["recovered_in_collections"] = money("10")
    assert (await cases.post("/v1/cases", headers=holder, json=counted)).status_code == 422
    twice = mandate(creditor, claim_id=unique("clm"), insurer_share_pct="50",
                    settled_invoices=[{"number": "N-1"}])  # fmt: skip
    assert (await cases.post("/v1/cases", headers=SERVICE, json=twice)).status_code == 422
    other = mandate(creditor, claim_id=unique("clm"), insurer_share_pct="50",
                    settled_invoices=[{"number": "N-9",
                                       "recovered_in_collections": money("10", "USD")}])  # fmt: skip
    refused = await cases.post("/v1/cases", headers=SERVICE, json=other)
    assert refused.status_code == 422 and refused.json()["type"] == "currency-mismatch"
    assert refused.json()["loc"] == ["body", "settled_invoices", 0, "recovered_in_collections"]


async def test_a_status_filter_outside_the_case_statuses_is_a_422(cases: httpx.AsyncClient) -> None:
    answer = await cases.get("/v1/cases", headers=COLLECTOR, params={"status": "lost"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["query", "status"]
    ok(await cases.get("/v1/cases", headers=COLLECTOR, params={"status": "on_hold"}), 200)


async def test_a_paid_claim_takes_over_the_mandate_collecting_the_same_debt(
    cases: httpx.AsyncClient,
) -> None:
    creditor = unique("ph")
    mandate_case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                                       json=mandate(creditor)), 201)  # fmt: skip
    ok(await cases.post(f"/v1/cases/{mandate_case['id']}/payments", headers=COLLECTOR,
                        json={"amount": money("100"), "received_on": "2027-03-10"}), 201)  # fmt: skip
    claim_id = unique("clm")
    body = mandate(creditor, claim_id=claim_id, insurer_share_pct="50")
    body["invoices"].append({"number": "N-3", "amount": money("200"), "due_date": "2027-02-25"})
    taken = ok(await cases.post("/v1/cases", headers=SERVICE, json=body), 201)
    assert taken["id"] == mandate_case["id"] and taken["claim_id"] == claim_id
    assert taken["outstanding"] == money("1100.00")  # 1,000 − 100 recovered + N-3's 200
    assert taken["activities"][-1]["kind"] == "subrogation"
    shared = ok(await cases.post(f"/v1/cases/{taken['id']}/payments", headers=COLLECTOR,
                                 json={"amount": money("100"), "received_on": "2027-03-10"}), 201)  # fmt: skip
    assert shared["allocation"] == {"fee": money("10.00"), "insurer": money("45.00"),
                                    "policyholder": money("45.00")}  # fmt: skip


async def test_a_case_never_climbs_down_its_ladder(cases: httpx.AsyncClient) -> None:
    creditor = unique("ph")
    body = mandate(creditor)
    body["invoices"] = [{"number": "OLD", "amount": money("100"), "due_date": "2027-01-20"},
                        {"number": "NEW", "amount": money("100"), "due_date": "2027-03-01"}]  # fmt: skip
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json=body), 201)
    assert case["stage"] == "legal"  # 49 days past the oldest due date
    ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                        json={"amount": money("100"), "received_on": "2027-03-10"}), 201)  # fmt: skip
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert seen["days_past_due"] == 9  # only NEW is left
    run = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                              json={"as_of": "2027-03-10"}), 200)  # fmt: skip
    assert case["id"] not in [m["case_id"] for m in run["moved"]]
    assert (
        ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)["stage"] == "legal"
    )


async def test_an_escalation_run_is_as_of_today_or_a_day_gone_by_never_ahead(
    cases: httpx.AsyncClient,
) -> None:
    """A run dated after today would move cases for good to rungs their days past due have not
    reached (a case never climbs down): 10 days past due is not yet `legal`."""
    creditor = unique("ph")
    body = mandate(creditor)
    body["invoices"] = [{"number": "N-1", "amount": money("100"), "due_date": "2027-02-28"}]
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json=body), 201)
    assert (case["stage"], case["days_past_due"]) == ("new", 10)
    for as_of in ("2027-03-11", "2027-04-14"):  # tomorrow; the day it would be 45 days (legal)
        ahead = await cases.post("/v1/escalations/run", headers=COLLECTOR, json={"as_of": as_of})
        assert ahead.status_code == 422, ahead.text
        problem = ahead.json()
        assert problem["type"] == "validation"
        assert [e["loc"] for e in problem["errors"]] == [["body", "as_of"]]
        assert "2027-03-10" in problem["errors"][0]["msg"]
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert seen["stage"] == "new" and [a["kind"] for a in seen["activities"]] == []
    for as_of in ("2027-03-10", "2027-03-09"):  # today and a day gone by still run
        run = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                                  json={"as_of": as_of}), 200)  # fmt: skip
        assert run["as_of"] == as_of and case["id"] not in [m["case_id"] for m in run["moved"]]


async def test_a_debt_a_live_case_collects_is_not_mandated_again(cases: httpx.AsyncClient) -> None:
    """The same invoice on two live cases would be collected twice (and, once a claim takes one
    over, recovered for the policyholder alone on the other): a second mandate naming it is 409
    `case-exists` with the case collecting it. Other invoices of the same buyer open a case of
    their own. Once the first case is paid in full, its invoices are owed no more: mandated again
    (same number, same due date) they are 409 naming the case that recovered them, where a paid
    claim would take the new case over and collect them twice; a number used again for another
    invoice (another due date) is a new debt."""
    creditor = unique("ph")
    holder = auth("policyholder", creditor)
    first = ok(await cases.post("/v1/cases", headers=holder, json=mandate(creditor)), 201)
    again = mandate(creditor)
    again["invoices"] = [{"number": "N-9", "amount": money("50"), "due_date": "2027-02-20"},
                         {"number": "N-1", "amount": money("400"), "due_date": "2027-02-15"}]  # fmt: skip
    twice = await cases.post("/v1/cases", headers=holder, json=again)
    assert twice.status_code == 409, twice.text
    assert twice.json()["type"] == "case-exists" and twice.json()["case_id"] == first["id"]
    assert "N-1" in twice.json()["detail"]
    other = mandate(creditor)
    other["invoices"] = [{"number": "N-9", "amount": money("50"), "due_date": "2027-02-20"}]
    second = ok(await cases.post("/v1/cases", headers=holder, json=other), 201)
    assert second["id"] != first["id"]  # two cases for one buyer, on different invoices
    someone_else = unique("ph")
    ok(await cases.post("/v1/cases", headers=auth("policyholder", someone_else),
                        json=mandate(someone_else)), 201)  # another creditor's own N-1  # fmt: skip
    ok(await cases.post(f"/v1/cases/{first['id']}/payments", headers=COLLECTOR,
                        json={"amount": money("1000"), "received_on": "2027-03-10"}), 201)  # fmt: skip
    paid_already = await cases.post("/v1/cases", headers=holder, json=mandate(creditor))
    assert paid_already.status_code == 409, paid_already.text
    problem = paid_already.json()
    assert problem["type"] == "case-exists" and problem["case_id"] == first["id"]
    assert "recovered in full" in problem["detail"]
    reused = mandate(creditor)
    reused["invoices"] = [{"number": "N-1", "amount": money("400"), "due_date": "2027-03-01"}]
    ok(await cases.post("/v1/cases", headers=holder, json=reused), 201)


async def test_a_debt_a_paid_claims_case_collects_is_not_mandated_to_the_policyholder(
    cases: httpx.AsyncClient,
) -> None:
    creditor = unique("ph")
    subrogation = ok(await cases.post("/v1/cases", headers=SERVICE, json=mandate(
        creditor, claim_id=unique("clm"), insurer_share_pct="50")), 201)  # fmt: skip
    mandated = await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                                json=mandate(creditor))  # fmt: skip
    assert mandated.status_code == 409, mandated.text
    assert mandated.json()["case_id"] == subrogation["id"]


async def test_what_a_case_records_happened_while_it_was_open(cases: httpx.AsyncClient) -> None:
    """A case opened on 10 March records no payment received, and no activity done, before it:
    a recovery before the mandate is not the collector's (no fee on it), and closing a case on a
    payment dated earlier would close it before it opened."""
    creditor = unique("ph")
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=mandate(creditor)), 201)  # fmt: skip
    early = await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                             json={"amount": money("1000"), "received_on": "2027-03-09"})  # fmt: skip
    assert early.status_code == 422, early.text
    assert early.json()["errors"][0]["loc"] == ["body", "received_on"]
    assert "2027-03-10" in early.json()["errors"][0]["msg"]
    done_before = await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR,
                                   json={"kind": "legal_filing", "occurred_on": "1999-03-01"})  # fmt: skip
    assert done_before.status_code == 422, done_before.text
    assert done_before.json()["errors"][0]["loc"] == ["body", "occurred_on"]
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert seen["status"] == "open" and seen["payments"] == [] and seen["activities"] == []
    closed = ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                                 json={"amount": money("1000"), "received_on": "2027-03-10"}), 201)  # fmt: skip
    assert closed["case_status"] == "closed"


async def test_only_a_promise_to_pay_carries_a_promised_amount_and_date(
    cases: httpx.AsyncClient,
) -> None:
    creditor = unique("ph")
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=mandate(creditor)), 201)  # fmt: skip
    for extra in ({"promised_amount": money("100")}, {"promised_on": "2027-03-20"}):
        call = await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR,
                                json={"kind": "call", "occurred_on": "2027-03-10", **extra})  # fmt: skip
        assert call.status_code == 422, call.text
        assert next(iter(extra)) in call.json()["errors"][0]["msg"]
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert seen["activities"] == []


async def test_a_case_is_in_its_buyers_country_and_its_invoices_currency(
    cases: httpx.AsyncClient,
) -> None:
    """The buyer is registered in DE and the invoices are in EUR: a case saying otherwise is
    refused, not opened on what the invoices and the buyer say."""
    creditor = unique("ph")
    holder = auth("policyholder", creditor)
    elsewhere = await cases.post("/v1/cases", headers=holder,
                                 json=mandate(creditor, debtor_country="FR"))  # fmt: skip
    assert elsewhere.status_code == 422, elsewhere.text
    assert elsewhere.json()["errors"][0]["loc"] == ["body", "debtor_country"]
    dollars = await cases.post("/v1/cases", headers=holder, json=mandate(creditor, currency="USD"))
    assert dollars.status_code == 422 and dollars.json()["type"] == "currency-mismatch"
    unknown = await cases.post("/v1/cases", headers=holder, json=mandate(creditor, currency="EURO"))
    assert unknown.status_code == 422, unknown.text
    listed = ok(await cases.get("/v1/cases", headers=holder), 200)
    assert listed["items"] == []
    ok(await cases.post("/v1/cases", headers=holder, json=mandate(creditor, currency="EUR")), 201)


async def test_a_case_stays_held_until_every_dispute_raised_on_it_is_resolved(
    cases: httpx.AsyncClient,
) -> None:
    """Two disputes hold the case; resolving one (named by the id of the activity that raised
    it) leaves it held and off the ladder; the second resolved, it climbs again. A resolution
    naming no dispute is taken when exactly one is open (as clients did before), refused when
    several are; one naming a dispute resolved already is 409, one naming an activity of the
    case that raised no dispute is 422 (an id that is no activity of the case is 404)."""
    creditor = unique("ph")
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=mandate(creditor)), 201)  # fmt: skip
    path = f"/v1/cases/{case['id']}/activities"

    async def log(status: int, **body: Any) -> dict[str, Any]:
        return ok(await cases.post(path, headers=COLLECTOR, json={
            "occurred_on": "2027-03-12", **body}), status)  # fmt: skip

    today(cases, "2027-03-12")
    first = await log(201, kind="dispute", note="N-1: goods damaged")
    second = await log(201, kind="dispute", note="N-2: price")
    letter = await log(201, kind="letter")
    unnamed = await log(422, kind="dispute_resolved")
    assert unnamed["errors"][0]["loc"] == ["body", "dispute_id"]
    assert first["id"] in unnamed["detail"] and second["id"] in unnamed["detail"]
    refused = await log(422, kind="dispute_resolved", dispute_id=letter["id"])
    assert refused["errors"][0]["loc"] == ["body", "dispute_id"], refused
    await log(404, kind="dispute_resolved", dispute_id="act_nosuchdispute")  # api.md: no such id
    too_soon = await log(422, kind="dispute_resolved", dispute_id=first["id"],
                         occurred_on="2027-03-11")  # fmt: skip
    assert too_soon["errors"][0]["loc"] == ["body", "occurred_on"]

    one = await log(201, kind="dispute_resolved", dispute_id=first["id"])
    assert (one["case_status"], one["dispute_id"]) == ("on_hold", first["id"])
    again = await log(409, kind="dispute_resolved", dispute_id=first["id"])
    assert again["type"] == "already-decided" and again["open_disputes"] == [second["id"]]
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert (seen["status"], seen["open_disputes"]) == ("on_hold", [second["id"]])
    today(cases, "2027-04-30")
    held = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                               json={"as_of": "2027-04-30"}), 200)  # fmt: skip
    assert case["id"] not in [m["case_id"] for m in held["moved"]]

    last = await log(201, kind="dispute_resolved", occurred_on="2027-04-30")  # the only one open
    assert (last["case_status"], last["dispute_id"]) == ("open", second["id"])
    none_open = await log(422, kind="dispute_resolved", occurred_on="2027-04-30")
    assert none_open["type"] == "no-open-dispute"
    climbed = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                                  json={"as_of": "2027-04-30"}), 200)  # fmt: skip
    assert [m["to_stage"] for m in climbed["moved"] if m["case_id"] == case["id"]] == ["legal"]
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert seen["open_disputes"] == []
    assert [(a["kind"], a["dispute_id"]) for a in seen["activities"]][-3:] == [
        ("dispute_resolved", first["id"]), ("dispute_resolved", second["id"]),
        ("escalation", None)]  # fmt: skip


async def test_only_a_resolution_names_the_dispute_it_resolves(cases: httpx.AsyncClient) -> None:
    creditor = unique("ph")
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=mandate(creditor)), 201)  # fmt: skip
    call = await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR, json={
        "kind": "call", "occurred_on": "2027-03-10", "dispute_id": "act_x"})  # fmt: skip
    assert call.status_code == 422 and "dispute_id" in call.json()["errors"][0]["msg"]


async def test_a_promise_to_pay_is_for_at_most_what_the_case_still_owes(
    cases: httpx.AsyncClient,
) -> None:
    """1,000 owed, 400 paid: a promise of 600.01 is refused naming the 600.00 outstanding; one of
    600.00 is taken."""
    creditor = unique("ph")
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=mandate(creditor)), 201)  # fmt: skip
    ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                        json={"amount": money("400"), "received_on": "2027-03-10"}), 201)  # fmt: skip

    def promise(amount: str) -> dict[str, Any]:
        return {"kind": "promise_to_pay", "occurred_on": "2027-03-10",
                "promised_amount": money(amount), "promised_on": "2027-03-20"}  # fmt: skip

    path = f"/v1/cases/{case['id']}/activities"
    for amount in ("600.01", "100000"):
        over = await cases.post(path, headers=COLLECTOR, json=promise(amount))
        assert over.status_code == 422, over.text
        assert over.json()["type"] == "promise-exceeds-outstanding"
        assert over.json()["outstanding"] == money("600.00")
        assert "exceeds the outstanding 600.00 EUR" in over.json()["detail"]
    taken = ok(await cases.post(path, headers=COLLECTOR, json=promise("600")), 201)
    assert taken["promised_amount"] == money("600.00")
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert [a["kind"] for a in seen["activities"]] == ["promise_to_pay"]


async def test_a_dispute_named_by_an_id_no_activity_of_the_case_has_is_a_404(
    cases: httpx.AsyncClient,
) -> None:
    """api.md: an id in the body that does not exist, or is not the caller's, is 404. A
    resolution naming an id that is no activity of the case (none at all, or another case's
    dispute) is answered as the activity's own read would be; one naming an activity of the
    case that raised no dispute (a letter) stays a 422 on `dispute_id`."""
    creditor = unique("ph")
    holder = auth("policyholder", creditor)
    case = ok(await cases.post("/v1/cases", headers=holder, json=mandate(creditor)), 201)
    other = ok(await cases.post("/v1/cases", headers=holder, json=mandate(
        creditor, invoices=[{"number": "O-1", "amount": money("10"),
                             "due_date": "2027-02-15"}])), 201)  # fmt: skip
    path = f"/v1/cases/{case['id']}/activities"

    async def log(where: str, status: int, **body: Any) -> dict[str, Any]:
        return ok(await cases.post(where, headers=COLLECTOR,
                                   json={"occurred_on": "2027-03-10", **body}), status)  # fmt: skip

    await log(path, 201, kind="dispute", note="N-1: damaged")
    letter = await log(path, 201, kind="letter")
    elsewhere = await log(f"/v1/cases/{other['id']}/activities", 201, kind="dispute")
    for stranger in ("act_nosuchdispute", elsewhere["id"]):
        refused = await log(path, 404, kind="dispute_resolved", dispute_id=stranger)
        read = ok(await cases.get(f"{path}/{stranger}", headers=COLLECTOR), 404)
        assert refused["detail"] == read["detail"] == f"activity '{stranger}' does not exist"
    not_one = await log(path, 422, kind="dispute_resolved", dispute_id=letter["id"])
    assert not_one["errors"][0]["loc"] == ["body", "dispute_id"]
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert seen["status"] == "on_hold" and len(seen["open_disputes"]) == 1


async def test_a_case_paid_in_full_closes_on_the_last_day_it_received_money(
    cases: httpx.AsyncClient,
) -> None:
    """Payments may be recorded after the day they were received, in any order: the case closes
    when the last of its money came in, never before a payment it recovered was received."""
    creditor = unique("ph")
    case = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=mandate(creditor)), 201)  # fmt: skip
    today(cases, "2027-03-20")
    path = f"/v1/cases/{case['id']}/payments"
    ok(await cases.post(path, headers=COLLECTOR,
                        json={"amount": money("600"), "received_on": "2027-03-18"}), 201)  # fmt: skip
    last = ok(await cases.post(path, headers=COLLECTOR,
                               json={"amount": money("400"), "received_on": "2027-03-12"}), 201)  # fmt: skip
    assert last["case_status"] == "closed"
    seen = ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert seen["closed_on"] == "2027-03-18"


async def test_a_case_whose_buyer_underwriting_cannot_read_is_a_declared_bad_gateway(
    cases: httpx.AsyncClient,
) -> None:
    """Underwriting answering an error page to the buyer's read: 502 `upstream-error`, declared
    in the route's OpenAPI answers, with nothing of the page passed on."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from shared.http import ServiceClient
    from shared.peers import get_peers
    from shared.settings import DEVELOPMENT_JWT_SECRET

    async def error_page(request: Any) -> HTMLResponse:
        return HTMLResponse("<html><h1>Internal Server Error</h1></html>", status_code=500)

    broken = ServiceClient(
        "http://underwriting", jwt_secret=DEVELOPMENT_JWT_SECRET, caller_name="collections",
        transport=httpx.ASGITransport(app=Starlette(routes=[Route("/{path:path}", error_page)])),
    )  # fmt: skip
    app = cases._transport.app  # type: ignore[attr-defined]
    working = app.dependency_overrides[get_peers]
    app.dependency_overrides[get_peers] = lambda: {"underwriting": broken}
    creditor = unique("ph")
    try:
        answer = await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                                  json=mandate(creditor))  # fmt: skip
    finally:
        app.dependency_overrides[get_peers] = working
        await broken.aclose()
    assert answer.status_code == 502, answer.text
    problem = answer.json()
    assert problem["type"] == "upstream-error" and "<html" not in answer.text
    declared = app.openapi()["paths"]["/v1/cases"]["post"]["responses"]
    assert "upstream-error" in declared["502"]["x-problem-types"]
