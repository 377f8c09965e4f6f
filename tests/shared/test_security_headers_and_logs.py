"""Nothing leaked in headers or logs, and bodies refused precisely (api.md, 2026-11-23): security
headers on every answer, documents as attachments, no `Server`, no access lines with
`--no-access-log`, no bound parameters in a failed statement's text, /metrics for `service`
tokens only, 413/422/429/503 declared everywhere, 413 for a chunked body over the cap, 422 for duplicate
JSON keys, and nothing stored when a body is refused."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from services.claims.main import create_app as claims_app
from services.collections.main import create_app as collections_app
from services.collections.models import metadata as collections_metadata
from services.underwriting.main import create_app as underwriting_app
from shared.app import create_app
from shared.db import build_engine
from shared.settings import Settings
from tests.builders import money
from tests.claims.test_api import INVOICES, apis, insured, upload  # noqa: F401
from tests.conftest import (
    auth,
    backend,
    create_migrated_database,
    free_urls,
    start_services,
    unique,
)

HARDENED = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}


class Body(BaseModel):
    name: str
    amount: int = 0


def bare_app(**env: Any) -> httpx.AsyncClient:
    router = APIRouter()

    @router.post("/v1/echo")
    async def echo(body: Body) -> Body:
        return body

    @router.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("internals")

    app = create_app(service="collections", settings=Settings(**env),
                     metadata=collections_metadata, routers=[router], title="t",
                     description="t")  # fmt: skip
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def assert_hardened(response: httpx.Response, cache: str = "no-store") -> None:
    for name, value in {**HARDENED, "cache-control": cache}.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    csp = response.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'") and "script-src" not in csp


async def test_every_answer_carries_the_security_headers() -> None:
    async with bare_app(TCI_MAX_BODY_BYTES="100", TCI_RATE_LIMIT="3/minute") as client:
        answers = [
            await client.get("/healthz"),  # 200 JSON
            await client.get("/v1/nowhere"),  # 404
            await client.delete("/healthz"),  # 405
            await client.post("/v1/echo", json={"name": "x" * 200}),  # 413
            await client.post("/v1/echo", json={}),  # 422
            await client.get("/v1/boom"),  # 500
            await client.get("/metrics"),  # 401
            await client.get("/openapi.json"),
        ]
        assert [a.status_code for a in answers] == [200, 404, 405, 413, 422, 500, 401, 200]
        headers = auth("underwriter")
        for _ in range(3):
            await client.post("/v1/echo", json={"name": "a"}, headers=headers)
        answers.append(await client.post("/v1/echo", json={"name": "a"}, headers=headers))
        assert answers[-1].status_code == 429
    for answer in answers:
        assert_hardened(answer)


async def test_the_docs_page_is_served_whole_from_the_service_under_a_policy_that_lets_it_run() -> (
    None
):
    async with bare_app() as client:
        docs = await client.get("/docs")
        script = await client.get("/docs/assets/swagger-ui-bundle.js")
        styles = await client.get("/docs/assets/swagger-ui.css")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    # Nothing from another host: the page works offline.
    assert "http://" not in docs.text.replace("http://www.w3.org", "")
    assert "https://" not in docs.text
    assert '"/docs/assets/swagger-ui-bundle.js"' in docs.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert styles.status_code == 200 and styles.headers["content-type"].startswith("text/css")
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline';" in csp and "https:" not in csp
    assert docs.headers["x-content-type-options"] == "nosniff"


async def _download(
    apis: dict[str, httpx.AsyncClient],  # noqa: F811
    filename: str,
) -> httpx.Response:
    """A document uploaded to a new claim under `filename`, then downloaded by a handler."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    created = await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": INVOICES})  # fmt: skip
    assert created.status_code == 201, created.text
    uploaded = await claims.post(
        f"/v1/claims/{created.json()['id']}/documents", headers=holder, data={"kind": "invoice"},
        files={"file": (filename, b"%PDF-1.4 scanned", "application/pdf")},
    )  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    download = await claims.get(uploaded.headers["location"], headers=auth("claims_handler"))
    assert download.status_code == 200, download.text
    return download


async def test_a_document_is_served_as_a_private_attachment_never_rendered(
    apis: dict[str, httpx.AsyncClient],  # noqa: F811
) -> None:
    download = await _download(apis, 'x"; y=<script>.pdf')
    assert_hardened(download, cache="private")
    # httpx sends the quote of the name as %22: the name stored is `x%22; y=<script>.pdf`.
    assert download.headers["content-disposition"] == (
        'attachment; filename="x_22_ y__script_.pdf"; '
        "filename*=UTF-8''x%2522%3B%20y%3D%3Cscript%3E.pdf"
    )


async def test_a_document_named_in_chinese_downloads_under_its_name(
    apis: dict[str, httpx.AsyncClient],  # noqa: F811
) -> None:
    download = await _download(apis, "贸易合同.pdf")
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"____.pdf\"; filename*=UTF-8''%E8%B4%B8%E6%98%93%E5%90%88%E5%90%8C.pdf"
    )


async def test_metrics_answer_only_a_service_token_and_the_probes_stay_open(
    uw: httpx.AsyncClient,
) -> None:
    assert (await uw.get("/metrics")).status_code == 401
    assert (await uw.get("/metrics", headers=auth("underwriter"))).status_code == 403
    scraped = await uw.get("/metrics", headers=auth("service"))
    assert scraped.status_code == 200 and "http_requests_total" in scraped.text
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert (await uw.get(path)).status_code == 200, path


SHARED_CHECK_STATUSES = (
    "413",  # the body cap, read before any route: a body sent to a GET is refused the same
    "422",  # the parameter check: any query parameter, declared or not, must be storable text
    "429",  # the rate limit
    "503",  # the database or a peer out of reach
)


def _operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (service, method, path, operation)
        for service, factory in (("underwriting", underwriting_app), ("claims", claims_app),
                                 ("collections", collections_app))
        for path, operations in factory().openapi()["paths"].items()
        for method, operation in operations.items()
    ]  # fmt: skip


def test_every_status_a_shared_check_answers_is_declared_on_every_route() -> None:
    """api.md: every status a route can answer is declared in its OpenAPI responses; the shared
    middleware and the app-wide parameter check answer 413, 422, 429 and 503 on any route, and
    the bearer token 401 on any route that asks for one, the Idempotency-Key 409 (a replay while
    the first is still running) on any route that takes one."""
    missing = []
    for service, method, path, operation in _operations():
        token = ("401",) if operation.get("security") else ()
        headers = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "header"}
        key = ("409",) if "Idempotency-Key" in headers else ()
        for status in (*SHARED_CHECK_STATUSES, *token, *key):
            declared = operation["responses"].get(status)
            if declared is None or "application/problem+json" not in declared.get("content", {}):
                missing.append(f"{service}: {method.upper()} {path} {status}")
    assert missing == []


async def test_a_nul_in_any_query_parameter_is_a_422_every_route_declares(api: Any) -> None:
    undeclared = []
    for service, method, path, operation in _operations():
        client: httpx.AsyncClient = await api.open(service)
        concrete = path.replace("{", "").replace("}", "")
        answer = await client.request(method.upper(), concrete, params={"x": "\x00"},
                                      headers=auth("service"))  # fmt: skip
        assert answer.status_code == 422, (service, method, path, answer.text[:300])
        assert answer.json()["errors"][0]["loc"] == ["query", "x"]
        if "422" not in operation["responses"]:
            undeclared.append(f"{service}: {method.upper()} {path}")
    assert undeclared == []


async def test_a_get_sent_a_body_over_the_cap_is_a_413() -> None:
    async with bare_app(TCI_MAX_BODY_BYTES=1000) as client:
        answer = await client.request("GET", "/v1/boom", content=b"x" * 2000)
    assert answer.status_code == 413 and answer.json()["type"] == "payload-too-large"


async def test_a_chunked_body_over_the_cap_is_413_not_422() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(17):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    async with bare_app() as client:
        response = await client.post("/v1/echo", content=chunks(),
                                     headers={"content-type": "application/json"})  # fmt: skip
    assert "content-length" not in response.request.headers
    assert response.status_code == 413 and response.json()["type"] == "payload-too-large"


async def test_duplicate_json_keys_are_refused_naming_the_key() -> None:
    async with bare_app() as client:
        top = await client.post("/v1/echo", content=b'{"name": "a", "amount": 1, "amount": 2}',
                                headers={"content-type": "application/json"})  # fmt: skip
        nested = await client.post(
            "/v1/echo", content=b'{"name": "a", "x": [{"k": 1, "k": 1}]}',
            headers={"content-type": "application/json"})  # fmt: skip
        fine = await client.post("/v1/echo", content=b'{"name": "a", "x": [{"k": 1}, {"k": 2}]}',
                                 headers={"content-type": "application/json"})  # fmt: skip
    assert top.status_code == 422 and "'amount'" in top.json()["detail"]
    assert top.json()["errors"] == [{"loc": ["body", "amount"], "msg": top.json()["detail"]}]
    assert nested.status_code == 422 and "'k'" in nested.json()["detail"]
    assert fine.status_code == 200


async def test_a_refused_body_stores_nothing(uw: httpx.AsyncClient) -> None:
    holder = unique("ph")
    fields = json.dumps({"policyholder_id": holder, "currency": "EUR",
                         "start_date": "2026-01-01", "end_date": "2026-12-31",
                         "cover_type": "whole_turnover", "max_liability": money("5000000"),
                         "premium_rate_pct": "0.35"})  # fmt: skip
    body = (fields[:-1] + ', "premium_rate_pct": "0.35"}').encode()
    headers = {**auth("underwriter"), "content-type": "application/json"}
    duplicate = await uw.post("/v1/policies", content=body, headers=headers)
    assert duplicate.status_code == 422

    async def huge() -> AsyncIterator[bytes]:
        yield body[:-1] + b', "notes": "'
        for _ in range(17):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    too_big = await uw.post("/v1/policies", content=huge(), headers=headers)
    assert too_big.status_code == 413
    listed = await uw.get("/v1/policies", params={"policyholder_id": holder},
                          headers=auth("service"))  # fmt: skip
    assert listed.json()["items"] == []
    # The same body without the duplicate is stored: the count above could have been 1.
    fixed = fields.encode()
    assert (await uw.post("/v1/policies", content=fixed, headers=headers)).status_code == 201
    listed = await uw.get("/v1/policies", params={"policyholder_id": holder},
                          headers=auth("service"))  # fmt: skip
    assert len(listed.json()["items"]) == 1


async def test_a_failed_statement_does_not_carry_its_bound_parameters() -> None:
    b = backend()
    engine = build_engine(b.url_for(b.main_database, "underwriting"))
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception) as failed:
                await connection.execute(text("INSERT INTO no_such_table (x) VALUES (:v)"),
                                         {"v": "secret-buyer-row"})  # fmt: skip
    finally:
        await engine.dispose()
    assert "no_such_table" in str(failed.value)
    assert "secret-buyer-row" not in str(failed.value)


@pytest.mark.e2e
def test_a_running_service_sends_no_server_header_no_access_lines_and_metrics_on_its_port(
) -> None:  # fmt: skip
    b = backend()
    database = f"{b.main_database}_headers"
    create_migrated_database(b, database)
    urls = free_urls()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    running = start_services(database, urls, only=["collections"], env={
        "TCI_LOG_LEVEL": "INFO", "TCI_METRICS_PORT": str(metrics_port)})  # fmt: skip
    try:
        base = urls["collections"]
        for _ in range(3):
            answer = httpx.get(f"{base}/healthz")
            assert answer.status_code == 200
            assert "server" not in answer.headers
        assert httpx.get(f"{base}/metrics").status_code == 401
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200 and "http_requests_total" in scraped.text
    finally:
        running.stop()
        b.drop_database(database)
    logs = (running.log_dir / "collections.log").read_text(errors="replace")
    assert "Application startup complete" in logs  # INFO lines are printed...
    assert '"GET /healthz HTTP/1.1" 200' not in logs  # ...but no access line
