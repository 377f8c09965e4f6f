"""A replayed answer is never ahead of its effect: when the request that wrote an outbox message
died after its commit holding the message's lease (or could not reach the other service), a
retry with the same Idempotency-Key sends what is still undelivered before it replays the stored
answer (the abuse trial: 13 of 60 notifications answered 201 on retry while underwriting heard
of their overdue only a minute later, when the lease ran out)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from services.claims.models import outbox
from shared.db import get_session, utcnow
from shared.http import ServiceClient
from shared.peers import get_peers
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.builders import keyed, ok
from tests.claims.test_api import HANDLER, INVOICES, complete, filed_claim, insured
from tests.conftest import auth


class SignalsRefused(httpx.AsyncBaseTransport):
    """A peer as the claims service reaches it: reads go through, a write to a path ending in
    `refused` (a signal, a case) is refused (503) while `down` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport, refused: str = "/signals") -> None:
        self.inner, self.refused, self.down, self.signals = inner, refused, True, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(self.refused):
            if self.down:
                return httpx.Response(503, json={"type": "service-unavailable"})
            self.signals += 1
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    claims = await api.open("claims")
    app = claims._transport.app  # type: ignore[attr-defined]
    working = await app.dependency_overrides[get_peers]()
    transport = SignalsRefused(httpx.ASGITransport(app=api("underwriting")._transport.app))  # type: ignore[attr-defined]
    cases = SignalsRefused(httpx.ASGITransport(app=api("collections")._transport.app), "/v1/cases")  # type: ignore[attr-defined]
    client = ServiceClient("http://underwriting", jwt_secret=DEVELOPMENT_JWT_SECRET,
                           caller_name="claims", transport=transport, retries=0)  # fmt: skip
    collections = ServiceClient("http://collections", jwt_secret=DEVELOPMENT_JWT_SECRET,
                                caller_name="claims", transport=cases, retries=0)  # fmt: skip
    app.dependency_overrides[get_peers] = lambda: {**working, "underwriting": client,
                                                   "collections": collections}  # fmt: skip
    yield {"claims": claims, "underwriting": api("underwriting"), "transport": transport,
           "cases": cases, "sessions": app.dependency_overrides[get_session]}  # fmt: skip
    app.dependency_overrides[get_peers] = lambda: working
    await client.aclose()
    await collections.aclose()


async def test_a_replayed_notification_sends_its_stop_shipment_first(apis: dict[str, Any]) -> None:
    claims, uw, transport = apis["claims"], apis["underwriting"], apis["transport"]
    policy, buyer = await insured(uw)
    holder = keyed(auth("policyholder", policy["policyholder_id"]))
    body = {"policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
            "invoices": INVOICES}  # fmt: skip
    first = ok(await claims.post("/v1/overdue-notifications", headers=holder, json=body), 201)
    async for session in apis["sessions"]():
        # As if the request's process had died after its commit, holding the message's lease.
        await session.execute(update(outbox).where(outbox.c.aggregate_id == first["id"]).values(
            lease_owner="lease_dead", lease_until=utcnow().replace(year=2099)))  # fmt: skip
        await session.commit()
    transport.down = False
    replay = await claims.post("/v1/overdue-notifications", headers=holder, json=body)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first
    assert transport.signals == 1  # sent before the replay answered
    async for session in apis["sessions"]():
        row = (await session.execute(select(outbox).where(outbox.c.aggregate_id == first["id"]))
               ).mappings().one()  # fmt: skip
        assert row["delivered_at"] is not None and row["lease_owner"] is None
    check = ok(await uw.post("/v1/coverage-checks", headers=auth("underwriter"), json={
        "policy_id": policy["id"], "buyer_id": buyer["id"],
        "invoice_amount": {"amount": "1000", "currency": "EUR"},
        "shipment_date": "2027-06-11", "due_date": "2027-07-11"}), 200)  # fmt: skip
    assert "stop_shipment" in check["reasons"]
    # Replayed again: nothing is left to send, nothing is sent twice.
    again = await claims.post("/v1/overdue-notifications", headers=holder, json=body)
    assert again.headers["idempotent-replayed"] == "true" and transport.signals == 1


async def test_a_replayed_payment_names_the_case_its_debt_went_to(apis: dict[str, Any]) -> None:
    """The regression trial's case: claims killed mid-burst of payments; retried with their keys,
    13 of 16 replays answered `collection_case_id: null` while collections held the case. A
    replay now delivers what is pending and answers (and keeps) the claim naming its case."""
    claims, uw, transport, cases = (apis["claims"], apis["underwriting"], apis["transport"],
                                    apis["cases"])  # fmt: skip
    transport.down = False
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await complete(claims, await filed_claim(claims, policy, buyer, holder), holder)
    ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    key = keyed(HANDLER)
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=key), 200)
    assert paid["collection_case_id"] is None  # collections refused the case: still pending
    async for session in apis["sessions"]():
        await session.execute(update(outbox).where(
            outbox.c.aggregate_id == claim["id"], outbox.c.target == "collections").values(
            lease_owner="lease_dead", lease_until=utcnow().replace(year=2099)))  # fmt: skip
        await session.commit()
    cases.down = False
    replay = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=key)
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    case_id = replay.json()["collection_case_id"]
    assert case_id is not None and cases.signals == 1
    assert {**replay.json(), "collection_case_id": None} == paid
    read = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert read["collection_case_id"] == case_id
    again = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=key)
    assert again.content == replay.content and cases.signals == 1
