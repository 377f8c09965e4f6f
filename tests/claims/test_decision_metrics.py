"""`/metrics` counts each claim once by the decision taken on it (`tci_claim_decisions_total`:
approved, or rejected without an approval). An approved claim rejected afterwards because nothing
can be paid on it (its buyer sanctioned since) is not a second claim decided: it is counted as an
approval withdrawn (`tci_claim_approvals_withdrawn_total`), and a refused approval counts nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import ok
from tests.claims.test_sanctions_at_payment import APPROVE, approved_claim, assessed_claim
from tests.conftest import auth

HANDLER = auth("claims_handler")
UW = auth("underwriter")
REJECT = {"decision": "reject", "reason": "excluded: sanctioned buyer"}
Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    return {"claims": await api.open("claims"), "underwriting": api("underwriting"),
            "collections": api("collections")}  # fmt: skip


async def scrape(claims: httpx.AsyncClient) -> Scrape:
    answer = await claims.get("/metrics", headers=auth("service"))
    assert answer.status_code == 200, answer.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}  # fmt: skip


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def decide(claims: httpx.AsyncClient, claim_id: str, body: dict[str, str]) -> httpx.Response:
    return await claims.post(f"/v1/claims/{claim_id}/decision", headers=HANDLER, json=body)


async def test_a_claim_approved_then_rejected_as_unpayable_is_decided_once(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    approved = await approved_claim(apis)  # approved, then its buyer is sanctioned
    refused_first = await assessed_claim(apis)  # assessed, its buyer sanctioned before approval
    rejected_first = await assessed_claim(apis)  # rejected outright
    before = await scrape(claims)

    sanctions = [ok(await uw.post("/v1/sanctions", headers=UW, json={
        "buyer_id": claim["buyer_id"], "reason": "listed"}), 201)
        for claim in (approved, refused_first)]  # fmt: skip
    try:
        ok(await decide(claims, approved["id"], REJECT), 200)
        refused = await decide(claims, refused_first["id"], APPROVE)
        assert refused.status_code == 422 and refused.json()["type"] == "buyer-sanctioned"
        ok(await decide(claims, refused_first["id"], REJECT), 200)
        ok(await decide(claims, rejected_first["id"], REJECT), 200)
    finally:
        for sanction in sanctions:
            ok(await uw.delete(f"/v1/sanctions/{sanction['id']}", headers=UW), 200)

    after = await scrape(claims)
    # the approval was counted when it was taken; the rejection after it is not a second decision
    assert moved(before, after, "tci_claim_decisions_total", outcome="approved") == 0
    assert moved(before, after, "tci_claim_decisions_total", outcome="rejected") == 2
    assert moved(before, after, "tci_claim_approvals_withdrawn_total") == 1


async def test_an_approval_is_counted_once_when_it_is_taken(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims = apis["claims"]
    claim = await assessed_claim(apis)
    before = await scrape(claims)
    ok(await decide(claims, claim["id"], APPROVE), 200)
    again = await decide(claims, claim["id"], APPROVE)
    assert again.status_code == 409 and again.json()["type"] == "already-decided"
    ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    after = await scrape(claims)
    assert moved(before, after, "tci_claim_decisions_total", outcome="approved") == 1
    assert moved(before, after, "tci_claim_decisions_total", outcome="rejected") == 0
    assert moved(before, after, "tci_claim_approvals_withdrawn_total") == 0
