"""Reading a policy (issue 12: the hot read): one statement with no session, the answer built as
plain JSON data, byte for byte the answer a model gives (creating it, listing it)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import make_buyer, make_policy, money, ok, statements_sent
from tests.conftest import auth

UNDERWRITER = auth("underwriter")


async def test_a_policy_reads_as_created_and_as_listed_byte_for_byte(
    uw: httpx.AsyncClient,
) -> None:
    created = await uw.post("/v1/policies", headers=UNDERWRITER, json={
        "policyholder_id": "ph-read-1", "currency": "JPY", "start_date": "2026-01-01",
        "end_date": "2026-12-31", "cover_type": "whole_turnover",
        "max_liability": money("5000000", "JPY"), "premium_rate_pct": "1.125",
        "political_risk_cover": True, "covered_countries": ["DE", "FR"],
        "single_buyer_cap": money("250000", "JPY"), "deductible": money("1000", "JPY")})  # fmt: skip
    policy = ok(created, 201)
    read = await uw.get(f"/v1/policies/{policy['id']}", headers=UNDERWRITER)
    assert read.content == created.content
    for bank in ("bank-read-1", "bank-read-2"):
        ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", headers=UNDERWRITER,
                         json={"bank_id": bank}), 201)  # fmt: skip
    listed = await uw.get("/v1/policies", headers=auth("policyholder", "ph-read-1"))
    read = await uw.get(f"/v1/policies/{policy['id']}", headers=auth("policyholder", "ph-read-1"))
    assert read.json()["assigned_bank_ids"] == ["bank-read-1", "bank-read-2"]
    assert listed.content == b'{"items":[' + read.content + b'],"next_cursor":null}'


async def test_a_policy_reads_in_one_statement(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """The policy with its banks, joined."""
    policy = await make_policy(uw)
    with statements_sent(engines["underwriting"]) as sent:
        ok(await uw.get(f"/v1/policies/{policy['id']}", headers=UNDERWRITER), 200)
    assert len(sent) == 1, "\n".join(sent)


async def test_a_policy_and_a_buyer_read_at_once_for_the_other_services(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """What claims reads before it acts on a (policy, buyer): the policy as its own read answers
    it and the buyer's standing, in one statement; no such buyer is `null` (the policy's 404
    comes first, so a stranger's policy stays indistinguishable); staff and services only."""
    policy = await make_policy(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", headers=UNDERWRITER,
                     json={"bank_id": "bank-both-1"}), 201)  # fmt: skip
    buyer = await make_buyer(uw)
    service = auth("service")
    with statements_sent(engines["underwriting"]) as sent:
        both = await uw.get(f"/v1/policies/{policy['id']}/buyers/{buyer['id']}", headers=service)
    assert len(sent) == 1, "\n".join(sent)
    read = await uw.get(f"/v1/policies/{policy['id']}", headers=service)
    assert ok(both, 200)["policy"] == read.json()
    assert both.json()["policy"]["assigned_bank_ids"] == ["bank-both-1"]
    assert both.json()["buyer"] == {key: buyer[key]
                                    for key in ("id", "country", "legal_form", "grade")}  # fmt: skip
    none = await uw.get(f"/v1/policies/{policy['id']}/buyers/no-such-buyer", headers=service)
    assert ok(none, 200)["buyer"] is None
    missing = await uw.get(f"/v1/policies/no-such-policy/buyers/{buyer['id']}", headers=service)
    assert missing.status_code == 404
    assert "no-such-policy" in missing.json()["detail"]
    holder = auth("policyholder", policy["policyholder_id"])
    refused = await uw.get(f"/v1/policies/{policy['id']}/buyers/{buyer['id']}", headers=holder)
    assert refused.status_code == 403
