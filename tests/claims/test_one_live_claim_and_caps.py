"""An invoice belongs to one live claim at most (a rejected or lapsed claim frees it), and the caps
hold at payment as at approval: in-process, on both engines. The same rules under concurrent
requests are proved over real processes in tests/e2e/test_money_under_concurrency.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from services.claims.models import Claim
from shared.db import get_session
from tests.builders import money, ok
from tests.claims.test_api import INVOICES, another_buyer, complete, insured, invoice
from tests.conftest import auth

HANDLER = auth("claims_handler")


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    return {"claims": await api.open("claims"), "underwriting": api("underwriting")}


def filing(policy: dict[str, Any], buyer: dict[str, Any], invoices: list[Any]) -> dict[str, Any]:
    return {"policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
            "event_date": "2027-06-01", "invoices": invoices}  # fmt: skip


async def test_an_invoice_in_a_live_claim_cannot_be_claimed_again_until_the_claim_is_rejected(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"])
    holder = auth("policyholder", policy["policyholder_id"])
    first = ok(await claims.post("/v1/claims", headers=holder,
                                 json=filing(policy, buyer, INVOICES)), 201)  # fmt: skip
    # One invoice in common is enough.
    again = await claims.post("/v1/claims", headers=holder, json=filing(
        policy, buyer, [INVOICES[1], invoice("INV-3", "1000", "2027-03-20", "2027-05-19")]))  # fmt: skip
    assert again.status_code == 409 and again.json()["type"] == "invoice-already-claimed"
    assert again.json()["claims"] == {"INV-2": first["id"]}
    ok(await claims.post(f"/v1/claims/{first['id']}/decision", headers=HANDLER,
                         json={"decision": "reject", "reason": "not our risk"}), 200)  # fmt: skip
    refiled = ok(await claims.post("/v1/claims", headers=holder,
                                   json=filing(policy, buyer, INVOICES)), 201)  # fmt: skip
    assert refiled["id"] != first["id"] and refiled["status"] == "documents_pending"


@pytest.mark.parametrize("written", ["INV-2\u200b", "ＩＮＶ－２", "INV\u2060-2", " INV-2\u00a0"])
async def test_an_invoice_number_written_in_another_form_of_the_same_characters_is_that_invoice(
    apis: dict[str, httpx.AsyncClient], written: str
) -> None:
    """A zero-width space, a word joiner or full-width letters do not make another invoice: it
    stays in its one live claim (it was claimed and paid again under each form)."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"])
    holder = auth("policyholder", policy["policyholder_id"])
    first = ok(await claims.post("/v1/claims", headers=holder,
                                 json=filing(policy, buyer, INVOICES)), 201)  # fmt: skip
    again = await claims.post("/v1/claims", headers=holder, json=filing(
        policy, buyer, [{**INVOICES[1], "number": written}]))  # fmt: skip
    assert again.status_code == 409 and again.json()["type"] == "invoice-already-claimed"
    assert again.json()["claims"] == {"INV-2": first["id"]}


async def test_a_claim_that_lapsed_frees_its_invoices_even_before_the_lapse_is_recorded(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], documents_grace_days=5,
                                  claim_filing_days=60)  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    first = ok(await claims.post("/v1/claims", headers=holder,
                                 json=filing(policy, buyer, INVOICES)), 201)  # fmt: skip
    assert first["documents_due"] == "2027-06-15"
    settings = claims._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date(2027, 6, 16)  # the grace has run out, nothing was sent
    refiled = ok(await claims.post("/v1/claims", headers=holder,
                                   json=filing(policy, buyer, INVOICES)), 201)  # fmt: skip
    assert refiled["id"] != first["id"]
    lapsed = ok(await claims.get(f"/v1/claims/{first['id']}", headers=holder), 200)
    assert lapsed["status"] == "lapsed"
    recorded = ok(await claims.get(f"/v1/claims?status=lapsed&policy_id={policy['id']}",
                                   headers=HANDLER), 200)  # fmt: skip
    assert [c["id"] for c in recorded["items"]] == [first["id"]]


async def test_a_list_filtered_by_status_shows_a_lapse_before_it_is_recorded(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Reads show a lapse at once, lists filtered by status too: the claim is among the lapsed
    ones, and no longer among those awaiting documents, before the sweep records it."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], documents_grace_days=5)
    holder = auth("policyholder", policy["policyholder_id"])
    pending = ok(await claims.post("/v1/claims", headers=holder,
                                   json=filing(policy, buyer, INVOICES[:1])), 201)  # fmt: skip
    held = ok(await claims.post("/v1/claims", headers=holder,
                                json=filing(policy, buyer, INVOICES[1:])), 201)  # fmt: skip
    ok(await claims.post(f"/v1/claims/{held['id']}/disputes", headers=HANDLER, json={
        "raised_on": "2027-06-10", "description": "quality", "invoice_numbers": ["INV-2"]}), 201)  # fmt: skip
    settings = claims._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date(2027, 6, 16)  # the grace has run out, nothing was sent

    async def listed(status: str) -> list[tuple[str, str]]:
        page = ok(await claims.get(f"/v1/claims?status={status}&policy_id={policy['id']}",
                                   headers=HANDLER), 200)  # fmt: skip
        return [(c["id"], c["status"]) for c in page["items"]]

    assert await listed("lapsed") == [(pending["id"], "lapsed"), (held["id"], "lapsed")]
    assert await listed("documents_pending") == []
    assert await listed("on_hold") == []


async def test_a_dispute_read_or_settled_after_the_grace_period_shows_its_claim_lapsed(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """A claim on hold awaiting documents lapses when its grace period ends: its dispute, read or
    settled then, shows the claim lapsed, and the settlement does not bring it back."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], documents_grace_days=5)
    holder = auth("policyholder", policy["policyholder_id"])
    held = ok(await claims.post("/v1/claims", headers=holder,
                                json=filing(policy, buyer, INVOICES)), 201)  # fmt: skip
    dispute = ok(await claims.post(f"/v1/claims/{held['id']}/disputes", headers=HANDLER, json={
        "raised_on": "2027-06-10", "description": "quality", "invoice_numbers": ["INV-2"]}), 201)  # fmt: skip
    settings = claims._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date(2027, 6, 16)  # the grace has run out, nothing was sent
    path = f"/v1/claims/{held['id']}/disputes/{dispute['id']}"
    read = ok(await claims.get(path, headers=holder), 200)
    assert read["claim_status"] == "lapsed"
    settled = ok(await claims.post(f"{path}/resolution", headers=HANDLER,
                                   json={"outcome": "policyholder"}), 200)  # fmt: skip
    assert settled["claim_status"] == "lapsed"
    claim = ok(await claims.get(f"/v1/claims/{held['id']}", headers=holder), 200)
    assert claim["status"] == "lapsed"


async def test_a_payment_the_caps_no_longer_leave_room_for_is_refused(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Payment checks the caps again: an approved claim (here one recorded approved before the
    caps were serialised) is not paid past the maximum liability (two buyers: each claim is
    within its own buyer's limit)."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], max_liability=money("100000"))
    holder = auth("policyholder", policy["policyholder_id"])
    filed = []
    for number, on in (("A", buyer), ("B", await another_buyer(apis["underwriting"], policy))):
        claim = ok(await claims.post("/v1/claims", headers=holder, json=filing(policy, on, [
            invoice(f"{number}-1", "80000", "2027-03-01", "2027-04-30"),
            invoice(f"{number}-2", "40000", "2027-03-20", "2027-05-19")])), 201)  # fmt: skip
        claim = await complete(claims, claim, holder)
        assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment",
                                        headers=HANDLER), 200)  # fmt: skip
        assert assessed["indemnity"] == money("85000.00")
        filed.append(claim["id"])
    ok(await claims.post(f"/v1/claims/{filed[0]}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    ok(await claims.post(f"/v1/claims/{filed[0]}/payment", headers=HANDLER), 200)
    session = claims._transport.app.dependency_overrides[get_session]  # type: ignore[attr-defined]
    async for s in session():
        await s.execute(update(Claim).where(Claim.id == filed[1]).values(status="approved"))
        await s.commit()
    refused = await claims.post(f"/v1/claims/{filed[1]}/payment", headers=HANDLER)
    assert refused.status_code == 409 and refused.json()["type"] == "caps-exceeded"
    assert refused.json()["cap_left"] == money("15000.00")
    still = ok(await claims.get(f"/v1/claims/{filed[1]}", headers=HANDLER), 200)
    assert still["status"] == "approved" and still["paid_on"] is None
