"""The claim-filing path: what the filing tells underwriting (a protracted default's payment
delay) is delivered before the answer is sent (a bank's check made once the policyholder has its 201 sees it), and underwriting's two
reads (the policy and the buyer) are made at once, never cached."""

from __future__ import annotations

import asyncio
import json
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
from tests.claims.test_api import INVOICES, insured, invoice, upload
from tests.conftest import auth

TODAY = "2027-06-10"


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    return {"claims": await api.open("claims"), "underwriting": api("underwriting")}


def filing(policy: dict[str, Any], buyer_id: str) -> dict[str, Any]:
    return {"policy_id": policy["id"], "buyer_id": buyer_id, "cause": "insolvency",
            "event_date": "2027-06-01", "invoices": INVOICES}  # fmt: skip


async def outbox_of(app: Any, claim_id: str) -> list[dict[str, Any]]:
    async for session in app.dependency_overrides[get_session]():
        rows = await session.execute(select(outbox).where(outbox.c.aggregate_id == claim_id))
        return [dict(row) for row in rows.mappings().all()]
    raise AssertionError("no session")


async def test_the_signal_is_delivered_once_before_the_answer_is_sent(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Drive the claims app at the ASGI level: when the answer's first byte is sent, the buyer's
    signal (a protracted default's payment delay) has been delivered (2xx), once, and nothing more
    is sent after it."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw, protracted_default_wait_days=30)
    holder = auth("policyholder", policy["policyholder_id"])
    app = claims._transport.app  # type: ignore[attr-defined]
    protracted = {**filing(policy, buyer["id"]), "cause": "protracted_default", "event_date": None}
    body = json.dumps(protracted).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"authorization", holder["Authorization"].encode()),
               (b"idempotency-key", b"file-once"), (b"host", b"claims")]  # fmt: skip
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/claims", "raw_path": b"/v1/claims", "root_path": "",
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("claims", 80)}  # fmt: skip
    sent: list[bytes] = []
    at_answer: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.sleep(3600)  # the client stays connected
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 201
            location = dict(message["headers"])[b"location"].decode()
            at_answer.extend(await outbox_of(app, location.rsplit("/", 1)[1]))
        elif message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    await app(scope, receive, send)
    [message] = at_answer
    assert message["target"] == "underwriting" and message["delivered_at"] is not None
    assert message["attempts"] == 1 and 200 <= message["response_status"] < 300
    assert json.loads(b"".join(sent))["id"] == message["aggregate_id"]
    [after] = await outbox_of(app, message["aggregate_id"])
    assert after["delivered_at"] is not None and 200 <= after["response_status"] < 300
    assert after["attempts"] == 1 and after["lease_owner"] is None
    # The claim reads as filed, and the session of the request is usable again.
    claim = ok(await claims.get(f"/v1/claims/{message['aggregate_id']}", headers=holder), 200)
    assert claim["status"] == "documents_pending"


class Counting(httpx.AsyncBaseTransport):
    """Underwriting in-process, counting the requests in flight at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.in_flight = 0
        self.most = 0
        self.paths: list[str] = []
        self.one_at_a_time = asyncio.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.paths.append(request.url.path)
        try:
            await asyncio.sleep(0.05)  # both reads are on their way before either is answered
            async with self.one_at_a_time:  # the in-process app serves them from one session
                return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def counted(apis: dict[str, httpx.AsyncClient]) -> Any:
    app = apis["claims"]._transport.app  # type: ignore[attr-defined]
    working = await app.dependency_overrides[get_peers]()
    underwriting = apis["underwriting"]._transport.app  # type: ignore[attr-defined]
    transport = Counting(httpx.ASGITransport(app=underwriting))
    client = ServiceClient("http://underwriting", jwt_secret=DEVELOPMENT_JWT_SECRET,
                           caller_name="claims", transport=transport,
                           one_at_a_time=False)  # fmt: skip
    app.dependency_overrides[get_peers] = lambda: {**working, "underwriting": client}
    yield transport
    app.dependency_overrides[get_peers] = lambda: working
    await client.aclose()


async def test_the_policy_and_the_buyer_are_read_in_one_call_every_time(
    apis: dict[str, httpx.AsyncClient], counted: Counting
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    first = filing(policy, buyer["id"])
    ok(await claims.post("/v1/claims", headers=holder, json={**first, "invoices": INVOICES[:1]}),
       201)  # fmt: skip
    both = f"/v1/policies/{policy['id']}/buyers/{buyer['id']}"
    assert [p for p in counted.paths if not p.endswith("/signals")] == [both]
    # The next filing reads both again (nothing is cached: a policy or a buyer changed in
    # between is seen at once).
    ok(await claims.post("/v1/claims", headers=holder, json={**first, "invoices": INVOICES[1:]}),
       201)  # fmt: skip
    assert [p for p in counted.paths if not p.endswith("/signals")] == [both, both]


@pytest.mark.parametrize(("policy_known", "buyer_known", "missing"),
                         [(False, False, "policy"), (False, True, "policy"),
                          (True, False, "buyer")])  # fmt: skip
async def test_a_refusal_names_the_policy_first_as_when_read_in_turn(
    apis: dict[str, httpx.AsyncClient], policy_known: bool, buyer_known: bool, missing: str
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    body = filing(policy if policy_known else {"id": "pol_unknown"},
                  buyer["id"] if buyer_known else "byr_unknown")  # fmt: skip
    refused = await claims.post("/v1/claims", headers=holder, json=body)
    assert refused.status_code == 404, refused.text
    assert missing in refused.json()["detail"]
    other = auth("policyholder", "someone-else")  # another holder's policy is not found either
    hidden = await claims.post("/v1/claims", headers=other, json=filing(policy, "byr_unknown"))
    assert hidden.status_code == 404 and "policy" in hidden.json()["detail"]


async def test_the_answer_to_a_filing_is_the_claim_as_a_read_shows_it(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """The answer is made from what the filing wrote, not read back: the same as a read of the
    claim, its invoices in the read's order, also when two invoices share both dates (the
    database's collation then orders their numbers)."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    spread = [invoice("S-3", "1000.5", "2027-03-20", "2027-05-19"),
              invoice("S-1", "2000", "2027-03-01", "2027-05-19"),
              invoice("S-2", "300.25", "2027-03-01", "2027-04-30")]  # fmt: skip
    tied = [invoice("b-2", "10", "2027-03-01", "2027-04-30"),
            invoice("B-1", "20", "2027-03-01", "2027-04-30"),
            invoice("a-3", "30.1", "2027-03-01", "2027-04-30")]  # fmt: skip
    answers = []
    for invoices in (spread, tied):
        body = {**filing(policy, buyer["id"]), "invoices": invoices}
        filed = ok(await claims.post("/v1/claims", headers=holder, json=body), 201)
        assert filed == ok(await claims.get(f"/v1/claims/{filed['id']}", headers=holder), 200)
        answers.append(filed)
    assert [i["number"] for i in answers[0]["invoices"]] == ["S-2", "S-1", "S-3"]
    assert answers[0]["documents"] == [] and answers[0]["disputes"] == []


async def test_each_upload_answers_where_the_claim_stands_as_a_read_shows_it(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """An upload's answer (the documents still missing, the status, the decision date) is what
    a read of the claim then shows, a kind sent twice included, up to the file's completion."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = ok(await claims.post("/v1/claims", headers=holder, json=filing(policy, buyer["id"])),
               201)  # fmt: skip
    kinds = claim["missing_documents"]
    for kind in [kinds[0], kinds[0], *kinds[1:]]:
        stored = ok(await upload(claims, claim["id"], kind, holder), 201)
        read = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)
        assert stored["missing_documents"] == read["missing_documents"]
        assert stored["claim_status"] == read["status"]
        assert stored["decision_due"] == read["decision_due"]
    assert read["status"] == "under_review" and read["missing_documents"] == []
    assert len(read["documents"]) == len(kinds) + 1
