"""The statements claims' write paths send to PostgreSQL and the requests they make of
underwriting, counted (issue 12): each path's budget, the idempotency claim, the change, the
stored answer, the events and the outbox delivery after the answer included."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.http import ServiceClient
from tests.builders import keyed, ok, statements_sent
from tests.claims.test_api import INVOICES, filed_claim, insured, invoice
from tests.conftest import auth

pytestmark = pytest.mark.postgres

TODAY = "2027-06-10"


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    return {"claims": await api.open("claims"), "underwriting": api("underwriting")}


@contextmanager
def peer_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The requests claims makes of the other services meanwhile ("METHOD path")."""
    made: list[str] = []
    request = ServiceClient.request

    async def recorded(self: ServiceClient, method: str, path: str, **kw: Any) -> httpx.Response:
        made.append(f"{method} {path.split('/')[2]}")
        return await request(self, method, path, **kw)

    monkeypatch.setattr(ServiceClient, "request", recorded)
    yield made
    monkeypatch.setattr(ServiceClient, "request", request)


async def test_an_overdue_notification_sends_seven_statements_and_two_requests(
    apis: dict[str, httpx.AsyncClient], engines: dict[str, AsyncEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Claim (1), what earlier notifications said of the invoices (their original due dates
    and first standing, read together: 2 before), the notification, its invoices, the signal
    in the outbox (leased to the request as it is written: no lease of its own after the
    commit, 8 before), the answer; after the answer the delivery's mark. Underwriting is asked
    for the policy and the buyer (in one call: 3 requests before) and told of the overdue."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    with statements_sent(engines["claims"]) as sent, peer_requests(monkeypatch) as made:
        ok(await claims.post("/v1/overdue-notifications", headers=keyed(holder), json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
            "invoices": INVOICES}), 201)  # fmt: skip
    assert sorted(made) == ["GET policies", "POST buyers"]
    assert len(sent) <= 7, "\n".join(sent)


async def test_a_claim_filing_sends_nine_statements_and_two_requests(
    apis: dict[str, httpx.AsyncClient], engines: dict[str, AsyncEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Claim (1), the invoices' notified due dates, the claim, the hold on its invoices (the
    holders are read only when an invoice is held already: 11 before), the signal in the
    outbox (leased as it is written: 10 before), the claim's invoices, the answer, the event;
    after the answer the delivery's mark. Underwriting: the policy and the buyer in one call,
    then the protracted default's payment delay (an insolvency's signal waits for the approval)."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw, protracted_default_wait_days=30)
    holder = auth("policyholder", policy["policyholder_id"])
    with statements_sent(engines["claims"]) as sent, peer_requests(monkeypatch) as made:
        ok(await claims.post("/v1/claims", headers=keyed(holder), json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "protracted_default",
            "invoices": INVOICES}), 201)  # fmt: skip
    assert sorted(made) == ["GET policies", "POST buyers"]
    assert not [s for s in sent if "FROM claims.claimed_invoices" in s]
    assert len(sent) <= 9, "\n".join(sent)


async def test_a_document_sends_five_statements_and_no_request(
    apis: dict[str, httpx.AsyncClient], engines: dict[str, AsyncEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Claim (1), the claim locked, then the kinds it has received (read apart: a statement that
    waited for the lock would see the documents of the upload it waited for as missing), the
    document, the answer."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await filed_claim(claims, policy, buyer, holder)
    with statements_sent(engines["claims"]) as sent, peer_requests(monkeypatch) as made:
        stored = ok(await claims.post(
            f"/v1/claims/{claim['id']}/documents", headers=keyed(holder), data={"kind": "invoice"},
            files={"file": ("invoice.pdf", b"%PDF-1.4 scanned", "application/pdf")}), 201)  # fmt: skip
    assert "invoice" not in stored["missing_documents"]
    assert made == []
    assert len(sent) <= 5, "\n".join(sent)


async def test_a_second_claim_on_a_held_invoice_is_refused_naming_the_holder(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """The hold is tried first; the invoice a live claim holds is then named with its claim."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    first = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": INVOICES[:1]}), 201)  # fmt: skip
    again = await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01",
        "invoices": [*INVOICES[:1], invoice("INV-9", "1000", "2027-03-02", "2027-05-01")]})  # fmt: skip
    assert again.status_code == 409, again.text
    assert again.json()["claims"] == {"INV-1": first["id"]}
