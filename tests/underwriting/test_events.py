"""Underwriting's events, written with the change they announce: a request's decision, every change
of a limit's amount, a grade that moved, a stop-shipment started or cleared; each heard by the
policy's parties (its policyholder and the banks assigned to it), a grade by the parties holding a
limit or a request on the buyer, never with its factors. A refused change and a replay write none."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique
from tests.feed import events_since, mark, of_type, read_feed

UW = auth("underwriter")
TODAY = "2027-01-10"


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    """The underwriting API with today pinned to 10 January 2027."""
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def insured(uw: httpx.AsyncClient, **policy: Any) -> tuple[dict[str, Any], str, str]:
    """A policy of a new policyholder with a new bank assigned to it: (policy, holder, bank)."""
    holder, bank = unique("ph"), unique("bank")
    made = await make_policy(uw, holder, **policy)
    ok(await uw.post(f"/v1/policies/{made['id']}/assignments", headers=UW,
                     json={"bank_id": bank}), 201)  # fmt: skip
    return made, holder, bank


async def external_limit(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str,
                         amount: str) -> dict[str, Any]:  # fmt: skip
    return ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer_id, "amount": money(amount), "effective_from": "2027-01-01",
        "reason": "book migrated"}), 201)  # fmt: skip


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in events]


def weak_indicators() -> dict[str, Any]:
    """Six points in Germany (country level 2): grade 7."""
    return {"current_ratio": "0.5", "dso_days": "40", "dso_prior_year_days": "40",
            "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
            "equity": money("50000000")}  # fmt: skip


async def test_an_approved_request_announces_its_decision_then_its_new_limit_to_the_policys_parties(
    uw: httpx.AsyncClient,
) -> None:
    policy, holder, bank = await insured(uw)
    buyer = await make_buyer(uw)
    since = await mark(uw)
    request = await request_limit(uw, policy, buyer["id"], "50000", terms=60)
    decided, changed = await events_since(uw, since)
    assert decided["type"] == "limit_request.decided" and changed["type"] == "limit.changed"
    reasons = decided["data"].pop("reasons")
    assert [r["code"] for r in reasons] == ["within_auto_approval"]
    assert decided["data"] == {
        "request_id": request["id"], "policy_id": policy["id"], "buyer_id": buyer["id"],
        "status": "approved", "requested_amount": money("50000.00"),
        "decided_amount": money("50000.00"), "payment_terms_days": 60, "decided_by": "engine",
        "decided_at": request["decided_at"], "limit_id": request["limit_id"],
    }  # fmt: skip
    assert changed["data"] == {
        "limit_id": request["limit_id"], "policy_id": policy["id"], "buyer_id": buyer["id"],
        "change": "new", "previous_amount": None, "new_amount": money("50000.00"),
        "effective_from": TODAY, "payment_terms_days": 60, "source": "request", "cancelled": [],
        "reason": f"limit request {request['id']}: approved",
    }  # fmt: skip
    for party in (auth("policyholder", holder), auth("bank", bank)):
        assert ids(await read_feed(uw, party)) == ids([decided, changed])
    assert await read_feed(uw, auth("policyholder", unique("ph"))) == []
    assert await read_feed(uw, auth("bank", unique("bank"))) == []


async def test_a_referral_is_no_decision_and_an_underwriters_decision_is_announced_once(
    uw: httpx.AsyncClient,
) -> None:
    policy, holder, _ = await insured(uw)
    buyer = await make_buyer(uw)
    since = await mark(uw)
    referred = await request_limit(uw, policy, buyer["id"], "2000000")
    assert referred["status"] == "referred"
    assert await events_since(uw, since) == []
    path = f"/v1/limit-requests/{referred['id']}/decision"
    body = {"decision": "partially_approve", "amount": money("800000"), "reason": "trade history"}
    once = {**UW, "Idempotency-Key": unique("decide")}
    answer = ok(await uw.post(path, headers=once, json=body), 200)
    decided, changed = await events_since(uw, since)
    assert decided["data"]["status"] == "partially_approved"
    assert decided["data"]["decided_by"] == "underwriter"
    assert decided["data"]["decided_amount"] == money("800000.00")
    assert decided["data"]["reasons"][-1]["message"] == "trade history"
    assert (changed["data"]["change"], changed["data"]["new_amount"]) == ("new", money("800000.00"))
    # The replay answers the first answer and writes nothing; a second decision is refused.
    replay = await uw.post(path, headers=once, json=body)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == answer
    again = await uw.post(path, headers=UW, json={"decision": "refuse", "reason": "no"})
    assert again.status_code == 409
    assert ids(await events_since(uw, since)) == ids([decided, changed])
    assert ids(await read_feed(uw, auth("policyholder", holder))) == ids([decided, changed])


async def test_a_refused_request_is_announced_with_no_limit_change(uw: httpx.AsyncClient) -> None:
    policy, holder, _ = await insured(uw, max_credit_period_days=90)
    buyer = await make_buyer(uw)
    refused = await request_limit(uw, policy, buyer["id"], "10000", terms=120)
    assert refused["status"] == "refused"
    [decided] = await read_feed(uw, auth("policyholder", holder))
    assert decided["type"] == "limit_request.decided"
    assert decided["data"]["decided_amount"] == money("0.00")
    assert decided["data"]["limit_id"] is None
    assert [r["code"] for r in decided["data"]["reasons"]] == ["payment_terms_exceeded"]


async def test_every_change_of_a_limits_amount_is_announced_and_a_refused_one_is_not(
    uw: httpx.AsyncClient,
) -> None:
    policy, holder, bank = await insured(uw, single_buyer_cap=money("300000"))
    buyer = await make_buyer(uw)
    limit = await external_limit(uw, policy, buyer["id"], "100000")
    path = f"/v1/limits/{limit['id']}/changes"
    up = ok(await uw.post(path, headers=UW, json={"new_amount": money("150000"),
                                                   "reason": "more trade"}), 201)  # fmt: skip
    above = await uw.post(path, headers=UW, json={"new_amount": money("400000"), "reason": "x"})
    assert above.status_code == 422 and above.json()["type"] == "single-buyer-cap-exceeded"
    down = ok(await uw.post(path, headers=UW, json={"new_amount": money("60000"),
                                                     "reason": "late payments"}), 201)  # fmt: skip
    gone = ok(await uw.post(path, headers=UW, json={
        "new_amount": money("0"), "effective_from": "2027-03-01", "reason": "exit"}), 201)  # fmt: skip
    events = await read_feed(uw, auth("bank", bank))
    assert [e["type"] for e in events] == ["limit.changed"] * 4
    seen = [(e["data"]["change"], e["data"]["previous_amount"], e["data"]["new_amount"],
             e["data"]["effective_from"], e["data"]["source"]) for e in events]  # fmt: skip
    assert seen == [
        ("new", None, money("100000.00"), "2027-01-01", "external"),
        ("increase", money("100000.00"), money("150000.00"), up["effective_from"], "change"),
        ("reduction", money("150000.00"), money("60000.00"), down["effective_from"], "change"),
        ("withdrawal", money("60000.00"), money("0.00"), gone["effective_from"], "change"),
    ]
    assert down["effective_from"] == "2027-02-09"  # after the 30 days' notice
    assert {e["data"]["limit_id"] for e in events} == {limit["id"]}
    assert ids(await read_feed(uw, auth("policyholder", holder))) == ids(events)


async def test_an_insolvency_announces_the_grade_to_every_holder_and_each_withdrawal_to_its_own(
    uw: httpx.AsyncClient,
) -> None:
    first, holder_a, bank_a = await insured(uw)
    second, holder_b, _ = await insured(uw)
    registrar = unique("ph")  # registered the buyer, holds neither a limit nor a request on it
    buyer = ok(await uw.post("/v1/buyers", headers=auth("policyholder", registrar), json={
        "name": "Shared Buyer", "country": "DE", "registration_number": unique("HRB")}), 201)  # fmt: skip
    await external_limit(uw, first, buyer["id"], "100000")
    await request_limit(uw, second, buyer["id"], "20000")  # a request is enough to hear the grade
    since = await mark(uw)
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": TODAY, "details": "court filing"}), 201)  # fmt: skip
    events = await events_since(uw, since)
    [grade] = of_type(events, "buyer.grade_changed")
    assert grade["data"] == {"buyer_id": buyer["id"], "previous_grade": buyer["grade"],
                             "grade": 10, "graded_on": TODAY, "cause": "signal"}  # fmt: skip
    assert "factors" not in str(events)
    withdrawals = of_type(events, "limit.changed")
    assert first["id"] in {e["data"]["policy_id"] for e in withdrawals}
    assert {e["data"]["policy_id"] for e in withdrawals} <= {first["id"], second["id"]}
    assert all(e["data"]["change"] == "withdrawal" for e in withdrawals)
    assert [e["type"] for e in events] == ["buyer.grade_changed"] + ["limit.changed"] * len(
        withdrawals
    )
    for holder, policy in ((holder_a, first), (holder_b, second)):
        heard = await read_feed(uw, auth("policyholder", holder), types="buyer.grade_changed")
        assert ids(heard) == [grade["id"]]
        mine = await read_feed(uw, auth("policyholder", holder), after=grade["id"],
                               types="limit.changed")  # fmt: skip
        assert {e["data"]["policy_id"] for e in mine} <= {policy["id"]}
        assert holder == holder_b or len(mine) == 1  # the first holder's limit was withdrawn
    assert ids(await read_feed(uw, auth("bank", bank_a), types="buyer.grade_changed")) == [
        grade["id"]
    ]
    assert await read_feed(uw, auth("policyholder", registrar)) == []


async def test_each_withdrawal_is_heard_by_its_own_policys_holder_and_banks_only(
    uw: httpx.AsyncClient,
) -> None:
    """Limits on one buyer under two policies, one with two banks: an insolvency withdraws
    both, and each `limit.changed` reaches the parties of its own limit's policy (read with the
    limits, not policy by policy)."""
    first, holder_a, bank_a = await insured(uw)
    second_bank = unique("bank")
    ok(await uw.post(f"/v1/policies/{first['id']}/assignments", headers=UW,
                     json={"bank_id": second_bank}), 201)  # fmt: skip
    second, holder_b, bank_b = await insured(uw)
    buyer = await make_buyer(uw)
    limits = {policy["id"]: (await external_limit(uw, policy, buyer["id"], "100000"))["id"]
              for policy in (first, second)}  # fmt: skip
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": TODAY, "policy_id": first["id"]}), 201)  # fmt: skip
    heard = {
        party: {e["data"]["limit_id"] for e in await read_feed(uw, headers, types="limit.changed")
                if e["data"]["change"] == "withdrawal"}
        for party, headers in (("a", auth("policyholder", holder_a)), ("bank_a", auth("bank", bank_a)),
                               ("bank_a2", auth("bank", second_bank)),
                               ("b", auth("policyholder", holder_b)), ("bank_b", auth("bank", bank_b)))
    }  # fmt: skip
    assert heard == {"a": {limits[first["id"]]}, "bank_a": {limits[first["id"]]},
                     "bank_a2": {limits[first["id"]]}, "b": {limits[second["id"]]},
                     "bank_b": {limits[second["id"]]}}  # fmt: skip


async def test_a_downgrade_to_grade_8_announces_the_halving_after_the_notice(
    uw: httpx.AsyncClient,
) -> None:
    policy, holder, _ = await insured(uw, reduction_notice_days=30)
    buyer = await make_buyer(uw, indicators=weak_indicators())
    assert buyer["grade"] == 7
    request = await request_limit(uw, policy, buyer["id"], "50000")
    since = await mark(uw)
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "court_judgment", "observed_on": TODAY, "details": "judgment"}), 201)  # fmt: skip
    grade, halved = await events_since(uw, since)
    assert (grade["type"], grade["data"]["previous_grade"], grade["data"]["grade"]) == (
        "buyer.grade_changed", 7, 8)  # fmt: skip
    assert halved["type"] == "limit.changed"
    assert halved["data"]["limit_id"] == request["limit_id"]
    assert halved["data"]["change"] == "halving" and halved["data"]["source"] == "signal"
    assert halved["data"]["new_amount"] == money("25000.00")
    assert halved["data"]["effective_from"] == "2027-02-09"
    assert ids(await read_feed(uw, auth("policyholder", holder)))[-2:] == ids([grade, halved])


async def test_an_overdue_stops_shipments_and_cleared_arrears_end_the_stop_for_the_policys_parties(
    uw: httpx.AsyncClient,
) -> None:
    policy, holder, bank = await insured(uw)
    other, _, _ = await insured(uw)
    buyer = await make_buyer(uw)
    signals = f"/v1/buyers/{buyer['id']}/signals"
    ok(await uw.post(signals, headers=UW, json={"kind": "overdue_notified", "observed_on": "2027-01-05",
                                                 "policy_id": policy["id"]}), 201)  # fmt: skip
    ok(await uw.post(signals, headers=UW, json={"kind": "arrears_cleared", "observed_on": TODAY,
                                                 "policy_id": policy["id"]}), 201)  # fmt: skip
    for party in (auth("policyholder", holder), auth("bank", bank)):
        started, cleared = await read_feed(
            uw, party, types="stop_shipment.started,stop_shipment.cleared"
        )
        assert started["type"] == "stop_shipment.started"
        assert started["data"] == {"stop_shipment_id": started["data"]["stop_shipment_id"],
                                   "policy_id": policy["id"], "buyer_id": buyer["id"],
                                   "notified_on": "2027-01-05"}  # fmt: skip
        assert cleared["type"] == "stop_shipment.cleared"
        assert cleared["data"]["stop_shipment_id"] == started["data"]["stop_shipment_id"]
        assert cleared["data"]["notified_on"] == "2027-01-05"
        assert cleared["data"]["cleared_on"] >= "2027-01-05"
    assert await read_feed(uw, auth("policyholder", other["policyholder_id"])) == []


async def test_a_country_risk_change_announces_each_regraded_buyers_grade_to_its_holders(
    uw: httpx.AsyncClient,
) -> None:
    policy, holder, _ = await insured(uw)
    buyer = await make_buyer(uw, country="FJ")
    await external_limit(uw, policy, buyer["id"], "10000")
    ok(await uw.put("/v1/country-risks/FJ", headers=UW, json={"level": 4}), 200)
    [grade] = await read_feed(uw, auth("policyholder", holder), types="buyer.grade_changed")
    assert grade["data"]["buyer_id"] == buyer["id"]
    assert grade["data"]["cause"] == "country_risk"
    assert grade["data"]["grade"] > grade["data"]["previous_grade"] == buyer["grade"]
    # The same level again regrades nothing: no event.
    ok(await uw.put("/v1/country-risks/FJ", headers=UW, json={"level": 4}), 200)
    assert len(await read_feed(uw, auth("policyholder", holder), types="buyer.grade_changed")) == 1
