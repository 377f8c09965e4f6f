"""A decision and a payment do not wait on a collections service that hangs (it takes the
connection and never answers): the recoveries read gives up within `TCI_HTTP_TIMEOUT_SECONDS`,
retries included (a peer that timed out is not asked again), and the answer waits for the
subrogation case's delivery no longer than `TCI_OUTBOX_ANSWER_WAIT_SECONDS`; the message stays
in the outbox, and a replay of the payment's Idempotency-Key delivers it once collections
answers again."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.claims.models import outbox
from shared.db import get_session
from shared.http import ServiceClient
from shared.peers import get_peers
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.builders import ok
from tests.claims.test_api import complete, filed_claim, insured
from tests.conftest import auth

HANDLER = auth("claims_handler")
TIMEOUT = 1.0  # TCI_HTTP_TIMEOUT_SECONDS for the test
ANSWER_WAIT = 0.3  # TCI_OUTBOX_ANSWER_WAIT_SECONDS for the test
SLACK = 0.7  # the in-process work of the request itself


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A real local server that takes connections (its backlog) and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield silent.getsockname()[1]


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    return {"claims": await api.open("claims"), "underwriting": api("underwriting"),
            "collections": api("collections")}  # fmt: skip


async def test_a_hung_collections_holds_neither_the_approval_nor_the_payment(
    apis: dict[str, httpx.AsyncClient], silent_port: int
) -> None:
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"])
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await complete(claims, await filed_claim(claims, policy, buyer, holder), holder)
    ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)

    app = claims._transport.app  # type: ignore[attr-defined]
    app.state.settings.outbox_answer_wait_seconds = ANSWER_WAIT
    original = app.dependency_overrides[get_peers]
    working = await original()
    # As the lifespan builds it (shared.peers.build_peers): the timeout setting, the retries.
    hung = ServiceClient(f"http://127.0.0.1:{silent_port}", jwt_secret=DEVELOPMENT_JWT_SECRET,
                         caller_name="claims", timeout_seconds=TIMEOUT)  # fmt: skip

    async def peers_with_hung_collections() -> dict[str, ServiceClient]:
        return {**working, "collections": hung}

    app.dependency_overrides[get_peers] = peers_with_hung_collections
    try:
        started = time.monotonic()
        ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                             json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
        approving = time.monotonic() - started
        keyed = {**HANDLER, "Idempotency-Key": f"pay-{claim['id']}"}
        started = time.monotonic()
        paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=keyed), 200)
        paying = time.monotonic() - started
    finally:
        await hung.aclose()
        app.dependency_overrides[get_peers] = original
    # One recoveries read of at most the timeout each; the payment's delivery waited no longer
    # than the answer wait (a read retried, or the case's send waited out, took 3 × as long).
    assert approving < TIMEOUT + SLACK, approving
    assert paying < TIMEOUT + ANSWER_WAIT + SLACK, paying
    assert paid["status"] == "paid" and paid["collection_case_id"] is None
    session = app.dependency_overrides[get_session]
    async for s in session():
        pending = (await s.execute(select(outbox).where(
            outbox.c.aggregate_id == claim["id"], outbox.c.target == "collections"))
        ).mappings().one()  # fmt: skip
        assert pending["delivered_at"] is None and pending["attempts"] == 1
        assert pending["lease_owner"] is None  # released for the background loop
        assert pending["last_error"].startswith("503")

    # Collections answers again: a replay of the payment delivers the case before answering.
    replayed = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=keyed)
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert ok(replayed, 200)["collection_case_id"]
