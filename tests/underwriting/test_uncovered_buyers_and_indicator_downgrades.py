"""Limits follow a grade however it moves (an underwriter's indicators, a policyholder's confirmed
ones) as they follow a signal's; and no person grants or raises a limit on a buyer the insurer does
not cover (sanctioned, it or its country; not insurable), as none may on an insolvent one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import (
    check,
    make_buyer,
    make_policy,
    money,
    ok,
    request_limit,
    weak_indicators,
)
from tests.conftest import auth, token, unique
from tests.feed import events_since, mark
from tests.underwriting.conftest import PINNED_TODAY

UW = auth("underwriter")
TODAY = PINNED_TODAY


async def _limit_amounts(uw: httpx.AsyncClient, limit_id: str) -> list[tuple[str, str | None]]:
    limit = ok(await uw.get(f"/v1/limits/{limit_id}", headers=UW), 200)
    return [(e["amount"]["amount"], e["effective_from"]) for e in limit["history"]]


@pytest.mark.parametrize("path", ["underwriter", "confirmed declaration"])
async def test_indicators_that_bring_a_buyer_to_the_halving_grade_halve_its_limits(
    pinned: httpx.AsyncClient, path: str
) -> None:
    uw = pinned
    policy = await make_policy(uw, reduction_notice_days=30)
    holder = auth("policyholder", policy["policyholder_id"])
    buyer = await make_buyer(uw, indicators=weak_indicators())
    assert buyer["grade"] == 7
    limit = await request_limit(uw, policy, buyer["id"], "40000")
    assert limit["status"] == "approved"
    worse = {"overdue_ratio": "0.5"}
    if path == "underwriter":
        answer = ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                                  json=worse), 200)  # fmt: skip
    else:
        declared = ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=holder,
                                    json=worse), 200)  # fmt: skip
        assert declared["grade"] == 7 and declared["limit_changes"] == []
        answer = ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators/confirmation",
                                  headers=UW), 200)  # fmt: skip
    assert answer["grade"] == 8
    [change] = answer["limit_changes"]
    assert change["limit_id"] == limit["limit_id"]
    assert change["new_amount"] == money("20000.00")
    assert change["effective_from"] == "2027-02-09"  # 10 January + 30 days' notice
    assert "grade 8" in change["reason"]
    amounts = await _limit_amounts(uw, limit["limit_id"])
    assert ("20000.00", "2027-02-09") in amounts
    after = ok(await check(uw, policy, buyer["id"], "30000", "2027-02-09", "2027-03-09"), 200)
    assert after["covered_amount"] == money("20000.00")
    # Worse again (grade 9): already at the halving grades, nothing is halved twice.
    again = ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                             json={"litigation_count": 3}), 200)  # fmt: skip
    assert again["grade"] == 9 and again["limit_changes"] == []


async def _referred(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str) -> str:
    referred = await request_limit(uw, policy, buyer_id, "1500000")
    assert referred["status"] == "referred"
    return str(referred["id"])


@pytest.mark.parametrize("listed", ["buyer", "country"])
async def test_no_person_grants_or_raises_a_limit_on_a_sanctioned_buyer(
    pinned: httpx.AsyncClient, listed: str
) -> None:
    uw = pinned
    country = "PT" if listed == "country" else "DE"
    policy = await make_policy(uw, single_buyer_cap=money("2000000"))
    buyer = await make_buyer(uw, country=country)
    granted = await request_limit(uw, policy, buyer["id"], "100000")
    referral = await _referred(uw, await make_policy(uw), buyer["id"])
    target = {"buyer_id": buyer["id"]} if listed == "buyer" else {"country": country}
    sanction = ok(await uw.post("/v1/sanctions", headers=UW, json={**target, "reason": "listed"}),
                  201)  # fmt: skip
    try:
        decide = f"/v1/limit-requests/{referral}/decision"
        approved = await uw.post(decide, headers=UW, json={"decision": "approve", "reason": "ok"})
        assert approved.status_code == 422, approved.text
        assert approved.json()["type"] == "buyer-not-covered"
        assert "sanctioned: only a refusal is possible" in approved.text
        raised = await uw.post(f"/v1/limits/{granted['limit_id']}/changes", headers=UW,
                               json={"new_amount": money("150000"), "reason": "more"})  # fmt: skip
        assert raised.status_code == 422 and "sanctioned" in raised.text, raised.text
        assert raised.json()["type"] == "buyer-not-covered"
        recorded = await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
            "buyer_id": buyer["id"], "amount": money("150000"), "effective_from": TODAY,
            "reason": "migrated"})  # fmt: skip
        assert recorded.status_code == 422 and "sanctioned" in recorded.text, recorded.text
        assert await _limit_amounts(uw, granted["limit_id"]) == [("100000.00", TODAY)]
        # A cut, and a refusal, are always possible.
        cut = await uw.post(f"/v1/limits/{granted['limit_id']}/changes", headers=UW,
                            json={"new_amount": money("0"), "reason": "sanctioned"})  # fmt: skip
        assert cut.status_code == 201, cut.text
        refused = ok(await uw.post(decide, headers=UW, json={"decision": "refuse",
                                                             "reason": "sanctioned"}), 200)  # fmt: skip
        assert refused["status"] == "refused"
    finally:  # a country's listing would refuse every later test's buyers of it
        ok(await uw.delete(f"/v1/sanctions/{sanction['id']}", headers=UW), 200)


async def test_no_person_records_or_grants_a_limit_on_an_uninsurable_buyer(
    pinned: httpx.AsyncClient,
) -> None:
    uw = pinned
    policy = await make_policy(uw)
    for legal_form in ("individual", "public_entity"):
        buyer = await make_buyer(uw, legal_form=legal_form, registration_number=unique("ID"))
        recorded = await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
            "buyer_id": buyer["id"], "amount": money("10000"), "effective_from": TODAY,
            "reason": "migrated"})  # fmt: skip
        assert recorded.status_code == 422, recorded.text
        assert recorded.json()["type"] == "buyer-not-covered"
        article = "an" if legal_form == "individual" else "a"
        assert f"not insurable ({article} {legal_form.replace('_', ' ')})" in recorded.text


async def test_an_idempotency_key_protects_a_party_across_its_tokens_and_a_person_alone(
    pinned: httpx.AsyncClient,
) -> None:
    """A partner renews its token (another subject, the same party) and retries: the retry is a
    replay. Two people of the insurer are two callers, each with its own keys."""
    uw = pinned
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    path = f"/v1/policies/{policy['id']}/limit-requests"
    body = {"buyer_id": buyer["id"], "amount": money("10000"), "payment_terms_days": 60}
    key = {"Idempotency-Key": unique("key")}
    answers = []
    for subject in ("token-before-renewal", "token-after-renewal"):
        bearer = token("policyholder", policy["policyholder_id"], subject=subject)
        answers.append(await uw.post(path, json=body,
                                     headers={"Authorization": f"Bearer {bearer}", **key}))  # fmt: skip
    first, retried = answers
    assert first.status_code == retried.status_code == 201, retried.text
    assert retried.headers.get("Idempotent-Replayed") == "true"
    assert retried.json()["id"] == first.json()["id"]
    # Two underwriters with one key: two callers, two signals.
    signal = {"kind": "payment_delay", "observed_on": TODAY}
    made = set()
    for subject in ("underwriter-a", "underwriter-b"):
        bearer = token("underwriter", subject=subject)
        answer = await uw.post(f"/v1/buyers/{buyer['id']}/signals", json=signal,
                               headers={"Authorization": f"Bearer {bearer}", **key})  # fmt: skip
        assert answer.status_code == 201 and "Idempotent-Replayed" not in answer.headers
        made.add(answer.json()["id"])
    assert len(made) == 2


async def test_a_change_that_replaces_a_scheduled_cut_says_the_cut_is_cancelled(
    pinned: httpx.AsyncClient,
) -> None:
    uw = pinned
    policy = await make_policy(uw, reduction_notice_days=30)
    buyer = await make_buyer(uw, indicators=weak_indicators())
    limit = await request_limit(uw, policy, buyer["id"], "40000")
    signal = ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "court_judgment", "observed_on": TODAY, "details": "judgment"}), 201)  # fmt: skip
    [halving] = signal["limit_changes"]
    assert (halving["new_amount"], halving["effective_from"]) == (money("20000.00"), "2027-02-09")
    since = await mark(uw)
    raised = ok(await uw.post(f"/v1/limits/{limit['limit_id']}/changes", headers=UW, json={
        "new_amount": money("45000"), "effective_from": TODAY, "reason": "secured"}), 201)  # fmt: skip
    cancelled = [{"amount": money("20000.00"), "effective_from": "2027-02-09",
                  "payment_terms_days": 90}]  # fmt: skip
    assert raised["cancelled"] == cancelled
    [event] = await events_since(uw, since)
    assert event["data"]["change"] == "increase" and event["data"]["cancelled"] == cancelled
    assert await _limit_amounts(uw, limit["limit_id"]) == [("45000.00", TODAY)]
    # A plain increase with nothing scheduled cancels nothing.
    again = ok(await uw.post(f"/v1/limits/{limit['limit_id']}/changes", headers=UW, json={
        "new_amount": money("46000"), "effective_from": TODAY, "reason": "more"}), 201)  # fmt: skip
    assert again["cancelled"] == []
    # A reduction scheduled, then another on the same date: the first never takes effect.
    changes = f"/v1/limits/{limit['limit_id']}/changes"
    cut = {"new_amount": money("30000"), "effective_from": "2027-03-01", "reason": "cut"}
    assert ok(await uw.post(changes, headers=UW, json=cut), 201)["cancelled"] == []
    deeper = ok(await uw.post(changes, headers=UW, json={**cut, "new_amount": money("20000")}),
                201)  # fmt: skip
    assert deeper["cancelled"] == [{"amount": money("30000.00"), "effective_from": "2027-03-01",
                                    "payment_terms_days": 90}]  # fmt: skip
