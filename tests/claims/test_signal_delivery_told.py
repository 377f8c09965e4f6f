"""An act that tells underwriting of the claim's buyer (the insolvency of an approved insolvency
claim, the payment delay of a protracted default filed, the loss of a paid claim) says in its
answer whether underwriting has the signal (`buyer_signal.delivery`): `delivered` before the
answer went, or `pending` when underwriting refused it or could not be reached. The act stands
either way; the outbox delivers the signal later, a replay of the act's Idempotency-Key too, and
the replay then says so."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.claims.models import outbox
from shared.db import get_session
from shared.http import ServiceClient
from shared.peers import get_peers
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.builders import keyed, ok
from tests.claims.test_api import HANDLER, INVOICES, UW, complete, filed_claim, insured
from tests.conftest import auth

APPROVE = {"decision": "approve", "reason": "insolvency proof checked"}


class Underwriting(httpx.AsyncBaseTransport):
    """Underwriting as the claims service reaches it: reads go to the real app; a signal goes
    there too while `state` is `up`, is answered 503 `service-unavailable` while `refusing`, and
    is sent over loopback to a port nothing listens on while `down` (a real refused
    connection)."""

    def __init__(self, app: httpx.AsyncBaseTransport, closed_port: int) -> None:
        self.app, self.closed_port, self.state = app, closed_port, "up"
        self.network = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/signals"):
            if self.state == "refusing":
                return httpx.Response(503, json={
                    "type": "service-unavailable", "title": "Service Unavailable", "status": 503,
                    "detail": "the database cannot be reached"}, headers={"Retry-After": "1"})  # fmt: skip
            if self.state == "down":
                request.url = request.url.copy_with(host="127.0.0.1", port=self.closed_port)
                return await self.network.handle_async_request(request)
        return await self.app.handle_async_request(request)

    async def aclose(self) -> None:
        await self.network.aclose()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch, closed_port: int
               ) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    claims = await api.open("claims")
    app = claims._transport.app  # type: ignore[attr-defined]
    working = await app.dependency_overrides[get_peers]()
    transport = Underwriting(httpx.ASGITransport(app=api("underwriting")._transport.app),  # type: ignore[attr-defined]
                             closed_port)  # fmt: skip
    client = ServiceClient("http://underwriting", jwt_secret=DEVELOPMENT_JWT_SECRET,
                           caller_name="claims", transport=transport, retries=0)  # fmt: skip
    app.dependency_overrides[get_peers] = lambda: {**working, "underwriting": client}
    yield {"claims": claims, "underwriting": api("underwriting"), "underwriting_link": transport,
           "sessions": app.dependency_overrides[get_session]}  # fmt: skip
    app.dependency_overrides[get_peers] = lambda: working
    await client.aclose()
    await transport.aclose()


async def signals_in_outbox(apis: dict[str, Any], claim_id: str) -> list[dict[str, Any]]:
    async for session in apis["sessions"]():
        rows = await session.execute(select(outbox).where(
            outbox.c.aggregate_id == claim_id, outbox.c.target == "underwriting"))  # fmt: skip
        return [dict(row) for row in rows.mappings().all()]
    raise AssertionError("no session")


async def assessed_insolvency(apis: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An insolvency claim (known on 1 June 2027) with its file complete and assessed; its buyer."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await complete(claims, await filed_claim(claims, policy, buyer, holder), holder)
    ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    return claim, buyer


async def grade_of(apis: dict[str, Any], buyer_id: str) -> int:
    return int(
        ok(await apis["underwriting"].get(f"/v1/buyers/{buyer_id}", headers=UW), 200)["grade"]
    )


async def test_an_approval_says_the_insolvency_reached_underwriting_when_it_did(
    apis: dict[str, Any],
) -> None:
    """A replay of its key says the same (the answer is not stored a second time for the news of
    the delivery: the replay reads it from the outbox)."""
    claims = apis["claims"]
    claim, buyer = await assessed_insolvency(apis)
    key = keyed(HANDLER)
    approved = ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=key,
                                    json=APPROVE), 200)  # fmt: skip
    assert approved["status"] == "approved"
    assert approved["buyer_signal"] == {"kind": "insolvency_filing", "observed_on": "2027-06-01",
                                        "delivery": "delivered"}  # fmt: skip
    assert await grade_of(apis, buyer["id"]) == 10
    for _ in range(2):
        replayed = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=key,
                                     json=APPROVE)  # fmt: skip
        assert replayed.headers["idempotent-replayed"] == "true"
        assert ok(replayed, 200) == approved


@pytest.mark.parametrize("underwriting", ["refusing", "down"])
async def test_an_approval_underwriting_cannot_take_says_the_insolvency_is_pending(
    apis: dict[str, Any],
    underwriting: str,
) -> None:
    """Approved all the same (the approval is committed, the signal kept in the outbox); the
    answer says the buyer's grade does not follow yet, and a replay of the approval's key, once
    underwriting takes the signal, delivers it and says so."""
    claims = apis["claims"]
    claim, buyer = await assessed_insolvency(apis)
    graded = await grade_of(apis, buyer["id"])
    apis["underwriting_link"].state = underwriting
    key = keyed(HANDLER)
    approved = ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=key,
                                    json=APPROVE), 200)  # fmt: skip
    assert approved["status"] == "approved" and approved["decision"] == "approve"
    assert approved["buyer_signal"] == {"kind": "insolvency_filing", "observed_on": "2027-06-01",
                                        "delivery": "pending"}  # fmt: skip
    assert await grade_of(apis, buyer["id"]) == graded  # underwriting has not heard of it
    [signal] = await signals_in_outbox(apis, claim["id"])
    assert signal["delivered_at"] is None and signal["attempts"] == 1
    read = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert read["status"] == "approved" and read["buyer_signal"] is None  # a read sends nothing

    replayed = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=key, json=APPROVE)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert ok(replayed, 200) == approved  # still refused: the replay says the same

    apis["underwriting_link"].state = "up"
    replayed = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=key, json=APPROVE)
    assert replayed.headers["idempotent-replayed"] == "true"
    delivered = ok(replayed, 200)
    assert delivered == {**approved, "buyer_signal": {**approved["buyer_signal"],
                                                      "delivery": "delivered"}}  # fmt: skip
    assert await grade_of(apis, buyer["id"]) == 10
    [signal] = await signals_in_outbox(apis, claim["id"])
    assert signal["delivered_at"] is not None
    again = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=key, json=APPROVE)
    assert again.content == replayed.content


async def test_a_rejection_and_a_cause_that_says_nothing_of_the_buyer_carry_no_signal(
    apis: dict[str, Any],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    claim, _ = await assessed_insolvency(apis)
    rejected = ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                    json={"decision": "reject", "reason": "no proof"}), 200)  # fmt: skip
    assert rejected["status"] == "rejected" and rejected["buyer_signal"] is None
    policy, buyer = await insured(uw, political_risk_cover=True)
    holder = auth("policyholder", policy["policyholder_id"])
    political = await filed_claim(claims, policy, buyer, holder, cause="political")
    assert political["buyer_signal"] is None


@pytest.mark.parametrize("underwriting", ["up", "refusing", "down"])
async def test_a_protracted_default_filed_says_whether_its_payment_delay_reached_underwriting(
    apis: dict[str, Any],
    underwriting: str,
) -> None:
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], protracted_default_wait_days=30)
    holder = auth("policyholder", policy["policyholder_id"])
    apis["underwriting_link"].state = underwriting
    filed = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "protracted_default",
        "invoices": INVOICES}), 201)  # fmt: skip
    assert filed["status"] == "documents_pending"
    delivery = "delivered" if underwriting == "up" else "pending"
    assert filed["buyer_signal"] == {"kind": "payment_delay", "observed_on": "2027-06-10",
                                     "delivery": delivery}  # fmt: skip
    [signal] = await signals_in_outbox(apis, filed["id"])
    assert (signal["delivered_at"] is not None) is (underwriting == "up")


async def test_a_payment_says_whether_its_loss_reached_underwriting(apis: dict[str, Any]) -> None:
    claims = apis["claims"]
    claim, _ = await assessed_insolvency(apis)
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER, json=APPROVE), 200)
    apis["underwriting_link"].state = "refusing"
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid" and paid["collection_case_id"]  # collections took its case
    assert paid["buyer_signal"] == {"kind": "claim_paid", "observed_on": "2027-06-10",
                                    "delivery": "pending"}  # fmt: skip
