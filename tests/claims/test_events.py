"""Claims' events, written with the change they announce: every move of a claim's status (filed, file
complete, held and resumed, assessed, decided, paid, lapsed) and its payment, heard by the claim's
policyholder and the banks assigned to its policy at the time (asked of underwriting). A refused act
and a replay write none."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from services.claims.service import lapse_overdue
from shared.db import get_session
from tests.builders import money, ok
from tests.claims.test_api import INVOICES, complete, insured
from tests.conftest import auth, unique
from tests.feed import of_type, read_feed

TODAY = "2027-06-10"
HANDLER = auth("claims_handler")
UW = auth("underwriter")


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    return {"claims": await api.open("claims"), "underwriting": api("underwriting"),
            "collections": api("collections")}  # fmt: skip


async def assign(uw: httpx.AsyncClient, policy: dict[str, Any]) -> str:
    bank = unique("bank")
    ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", headers=UW,
                     json={"bank_id": bank}), 201)  # fmt: skip
    return bank


async def file(claims: httpx.AsyncClient, policy: dict[str, Any], buyer: dict[str, Any],
               holder: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    return ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": INVOICES}), 201)  # fmt: skip


def moves(events: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(e["data"]["previous_status"], e["data"]["status"])
            for e in of_type(events, "claim.status_changed")]  # fmt: skip


async def test_a_claim_from_filing_to_payment_announces_each_status_and_the_payment(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw, collections = apis["claims"], apis["underwriting"], apis["collections"]
    policy, buyer = await insured(uw)
    bank = await assign(uw, policy)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await file(claims, policy, buyer, holder)
    [filed] = await read_feed(claims, holder)
    assert filed["type"] == "claim.status_changed"
    assert filed["data"] == {
        "claim_id": claim["id"], "policy_id": policy["id"], "buyer_id": buyer["id"],
        "cause": "insolvency", "previous_status": None, "status": "documents_pending",
        "held_status": None, "changed_on": TODAY, "reason": None, "indemnity": None,
        "decision_due": None, "documents_due": claim["documents_due"],
    }  # fmt: skip
    # A bank assigned after the filing is not told of this claim: its parties are those of the
    # policy when it was filed (a change of status never waits on underwriting).
    late_bank = await assign(uw, policy)
    await complete(claims, claim, holder)
    too_soon = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER)
    assert too_soon.status_code == 409  # not approved yet: nothing announced
    ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    reason = "file complete, cover confirmed"
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": reason}), 200)  # fmt: skip
    once = {**HANDLER, "Idempotency-Key": unique("pay")}
    ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=once), 200)
    replay = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=once)
    assert replay.headers["idempotent-replayed"] == "true"
    again = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER)
    assert again.status_code == 409

    events = await read_feed(claims, holder)
    assert moves(events) == [(None, "documents_pending"), ("documents_pending", "under_review"),
                             ("under_review", "assessed"), ("assessed", "approved"),
                             ("approved", "paid")]  # fmt: skip
    assert [e["type"] for e in events][-2:] == ["claim.status_changed", "claim.paid"]
    by_status = {e["data"]["status"]: e["data"] for e in of_type(events, "claim.status_changed")}
    assert by_status["assessed"]["indemnity"] == money("85000.00")
    assert by_status["approved"]["reason"] == reason
    assert by_status["under_review"]["decision_due"] == "2027-07-01"
    assert events[-1]["data"] == {"claim_id": claim["id"], "policy_id": policy["id"],
                                  "buyer_id": buyer["id"], "amount": money("85000.00"),
                                  "paid_on": TODAY}  # fmt: skip
    assert [e["id"] for e in await read_feed(claims, auth("bank", bank))] == [
        e["id"] for e in events]  # fmt: skip
    assert await read_feed(claims, auth("bank", late_bank)) == []
    assert await read_feed(claims, auth("policyholder", unique("ph"))) == []
    assert await read_feed(claims, auth("bank", unique("bank"))) == []
    # The payment opened the subrogation case: collections announces it to the policyholder.
    [opened] = await read_feed(collections, holder)
    assert opened["type"] == "case.stage_changed"
    assert (opened["data"]["claim_id"], opened["data"]["previous_stage"]) == (claim["id"], None)


async def test_a_dispute_holds_the_claim_and_its_settlement_resumes_it(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await complete(claims, await file(claims, policy, buyer, holder), holder)
    dispute = ok(await claims.post(f"/v1/claims/{claim['id']}/disputes", headers=holder, json={
        "raised_on": "2027-06-05", "description": "quality", "invoice_numbers": ["INV-2"]}), 201)  # fmt: skip
    ok(await claims.post(f"/v1/claims/{claim['id']}/disputes/{dispute['id']}/resolution",
                         headers=HANDLER, json={"outcome": "policyholder"}), 200)  # fmt: skip
    events = await read_feed(claims, holder)
    assert moves(events)[-2:] == [("under_review", "on_hold"), ("on_hold", "under_review")]
    held, resumed = of_type(events, "claim.status_changed")[-2:]
    assert held["data"]["held_status"] == "under_review"
    assert held["data"]["reason"] == f"dispute {dispute['id']} raised"
    assert resumed["data"]["reason"] == "every dispute settled"


async def test_a_rejection_is_announced_with_its_reason(apis: dict[str, httpx.AsyncClient]) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await file(claims, policy, buyer, holder)
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "reject", "reason": "fraud suspected"}), 200)  # fmt: skip
    [_, rejected] = await read_feed(claims, holder)
    assert (rejected["data"]["status"], rejected["data"]["reason"]) == ("rejected",
                                                                         "fraud suspected")  # fmt: skip


async def test_the_lapse_sweep_announces_each_lapse_to_the_claims_parties(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    bank = await assign(uw, policy)
    claim = await file(claims, policy, buyer, holder)
    app = claims._transport.app  # type: ignore[attr-defined]
    async for session in app.dependency_overrides[get_session]():
        # (other tests' claims may lapse too where their rollback does not reach, on SQLite)
        assert claim["id"] not in await lapse_overdue(session, dt.date(2027, 7, 10))
        assert claim["id"] in await lapse_overdue(session, dt.date(2027, 7, 11))
        await session.commit()
    _filed, lapsed = await read_feed(claims, auth("bank", bank))
    assert (lapsed["data"]["previous_status"], lapsed["data"]["status"]) == (
        "documents_pending", "lapsed")  # fmt: skip
    assert lapsed["data"]["changed_on"] == "2027-07-11"
    assert lapsed["data"]["reason"] == (
        f"documents still missing when the grace period ended on {claim['documents_due']}"
    )
    assert moves(await read_feed(claims, holder)) == [(None, "documents_pending"),
                                                      ("documents_pending", "lapsed")]  # fmt: skip
