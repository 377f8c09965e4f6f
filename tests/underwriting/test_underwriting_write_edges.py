"""Hostile or meaningless input on underwriting writes: policy terms that insure nothing (a credit
period of 0 days, an indemnity percentage of 0, a list of covered countries that names none or
names one twice), a refusal that also gives an amount, and a limit change on a policy that has
already ended — each a clear 422 naming what is wrong."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from tests.builders import declared_on, make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique

TODAY = "2027-06-10"
UW = auth("underwriter")


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


def policy_body(**overrides: Any) -> dict[str, Any]:
    return {"policyholder_id": unique("ph"), "currency": "EUR", "start_date": "2027-01-01",
            "end_date": "2027-12-31", "cover_type": "whole_turnover",
            "max_liability": money("5000000"), "premium_rate_pct": "0.35", **overrides}  # fmt: skip


def refused_at(response: httpx.Response, *loc: str | int) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "validation", response.text
    assert [e["loc"] for e in body["errors"]] == [["body", *loc]], response.text
    return str(body["detail"])


async def policies_of(uw: httpx.AsyncClient, holder: str) -> list[dict[str, Any]]:
    listed = ok(await uw.get(f"/v1/policies?policyholder_id={holder}", headers=UW), 200)
    return listed["items"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("overrides", "loc", "said"),
    [
        ({"max_credit_period_days": 0}, ("max_credit_period_days",), "greater than or equal to 1"),
        ({"indemnity_pct": "0"}, ("indemnity_pct",), "greater than zero"),
        ({"indemnity_pct": "0.000"}, ("indemnity_pct",), "greater than zero"),
        ({"political_risk_cover": True, "political_indemnity_pct": "0"},
         ("political_indemnity_pct",), "greater than zero"),
        ({"covered_countries": []}, ("covered_countries",), "covers no country"),
        ({"covered_countries": ["DE", "FR", "DE"]}, ("covered_countries", 2), "'DE'"),
    ],
)  # fmt: skip
async def test_policy_terms_that_insure_nothing_or_repeat_a_country_are_refused(
    uw: httpx.AsyncClient, overrides: dict[str, Any], loc: tuple[str | int, ...], said: str
) -> None:
    body = policy_body(**overrides)
    detail = refused_at(await uw.post("/v1/policies", headers=UW, json=body), *loc)
    assert said in detail
    assert await policies_of(uw, body["policyholder_id"]) == []


async def test_meaningful_edges_of_the_policy_terms_are_still_accepted(
    uw: httpx.AsyncClient,
) -> None:
    accepted = [
        {"max_credit_period_days": 1, "indemnity_pct": "0.000001"},
        {"covered_countries": None},  # null: every country
        {"covered_countries": ["FR", "DE"]},
        {"political_indemnity_pct": "0"},  # no political cover: its percentage pays nothing
        {"reduction_notice_days": 0, "max_extension_days": 0, "deductible": money("0")},
    ]
    for overrides in accepted:
        policy = ok(await uw.post("/v1/policies", headers=UW, json=policy_body(**overrides)), 201)
        if overrides.get("covered_countries"):
            assert policy["covered_countries"] == ["DE", "FR"]


async def test_a_refusal_with_an_amount_is_refused_as_ambiguous_whatever_its_currency(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = (await make_buyer(uw))["id"]
    referred = await request_limit(uw, policy, buyer, "5000000")
    assert referred["status"] == "referred"
    decide = f"/v1/limit-requests/{referred['id']}/decision"

    for amount in (money("100000"), money("100000", "USD"), money("0")):
        detail = refused_at(await uw.post(decide, headers=UW, json={
            "decision": "refuse", "amount": amount, "reason": "too risky"}), "amount")  # fmt: skip
        assert "refusal" in detail
    waiting = ok(await uw.get(f"/v1/limit-requests/{referred['id']}", headers=UW), 200)
    assert waiting["status"] == "referred" and waiting["decided_by"] is None

    refused = ok(await uw.post(decide, headers=UW,
                               json={"decision": "refuse", "reason": "too risky"}), 200)  # fmt: skip
    assert refused["status"] == "refused"


async def test_no_limit_change_is_taken_once_the_policy_has_ended(uw: httpx.AsyncClient) -> None:
    policy = await make_policy(uw, start_date="2026-04-01", end_date="2027-03-31")
    buyer = (await make_buyer(uw))["id"]
    # Granted while the policy ran (recorded from its start, as a migrated book would be).
    recorded = ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer, "amount": money("100000"), "effective_from": "2026-04-01",
        "reason": "migrated"}), 201)  # fmt: skip
    limit_id = recorded["id"]
    late_request = await request_limit(uw, policy, buyer, "50000")
    assert late_request["status"] == "refused"
    assert [r["code"] for r in late_request["reasons"]] == ["policy_inactive"]

    for body in ({"new_amount": money("150000")}, {"new_amount": money("50000")},
                 {"new_amount": money("0")}, {"new_amount": money("100000")},
                 {"new_amount": money("150000"), "effective_from": "2027-03-31"}):  # fmt: skip
        response = await uw.post(f"/v1/limits/{limit_id}/changes", headers=UW,
                                 json={**body, "reason": "review"})  # fmt: skip
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"] == "policy-inactive", response.text
        assert problem["end_date"] == "2027-03-31"
        assert "2027-03-31" in problem["detail"]

    limit = ok(await uw.get(f"/v1/limits/{limit_id}", headers=UW), 200)
    assert [(h["amount"]["amount"], h["effective_from"], h["effective_to"])
            for h in limit["history"]] == [("100000.00", "2026-04-01", None)]  # fmt: skip


async def test_a_limit_change_on_the_policy_s_last_day_is_still_taken(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2026-07-01", end_date=TODAY)
    buyer = (await make_buyer(uw))["id"]
    limit_id = (await request_limit(uw, policy, buyer, "100000"))["limit_id"]
    raised = ok(await uw.post(f"/v1/limits/{limit_id}/changes", headers=UW, json={
        "new_amount": money("150000"), "reason": "review"}), 201)  # fmt: skip
    assert raised["effective_from"] == TODAY


def test_a_refusal_decides_no_amount() -> None:
    with pytest.raises(rules.DecisionRefused) as refused:
        rules.underwriter_decision("refuse", requested=Decimal(100), amount=Decimal(5))
    assert refused.value.loc == ("amount",)


async def test_a_request_referred_while_the_policy_ran_is_not_granted_after_its_end(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-06-30")
    referred = await request_limit(uw, policy, (await make_buyer(uw))["id"], "5000000")
    assert referred["status"] == "referred"
    decide = f"/v1/limit-requests/{referred['id']}/decision"
    with declared_on(uw, dt.date(2027, 7, 15)):  # the underwriter decides after the policy's end
        for body in ({"decision": "approve"},
                     {"decision": "partially_approve", "amount": money("100000")}):  # fmt: skip
            response = await uw.post(decide, headers=UW, json={**body, "reason": "looks fine"})
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["type"] == "policy-inactive" and problem["end_date"] == "2027-06-30"
        waiting = ok(await uw.get(f"/v1/limit-requests/{referred['id']}", headers=UW), 200)
        assert waiting["status"] == "referred"
        refused = ok(await uw.post(decide, headers=UW,
                                   json={"decision": "refuse", "reason": "policy over"}), 200)  # fmt: skip
        assert refused["status"] == "refused" and refused["limit_id"] is None
