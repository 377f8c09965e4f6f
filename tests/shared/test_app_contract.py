"""What every service answers the same way: problem+json errors, auth, request ids, metrics,
idempotency, pagination, body caps and decimal strings."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from importlib import import_module
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.collections.models import metadata as collections_metadata
from services.underwriting.models import metadata as underwriting_metadata
from shared.app import create_app
from shared.db import SessionDep, utcnow
from shared.idempotency import CommandDep, purge_expired
from shared.settings import Settings
from tests.builders import assert_no_floats, make_policy, money
from tests.conftest import auth, token, unique

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if type_:
        assert body["type"] == type_
    return body  # type: ignore[no-any-return]


class Echoed(BaseModel):
    name: str


def bare_app(settings: Settings | None = None) -> httpx.AsyncClient:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @router.post("/boom-body")
    async def echo(body: Echoed) -> Echoed:
        return body

    @router.get("/leak", response_model=None)
    async def leak():  # type: ignore[no-untyped-def]  # undeclared: FastAPI's encoder decides
        return {"amount": Decimal("1.10")}

    app = create_app(service="collections", settings=settings or Settings(),
                     metadata=collections_metadata, routers=[router], title="t",
                     description="t")  # fmt: skip
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_an_unexpected_error_is_a_problem_500_without_the_traceback() -> None:
    async with bare_app() as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-42"})
    body = problem(response, 500, "internal-error")
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-42"
    assert "req-42" in body["detail"]


async def test_a_decimal_in_a_plain_dict_leaks_as_a_float_and_the_guard_catches_it() -> None:
    async with bare_app() as client:
        body = (await client.get("/leak")).json()
    with pytest.raises(AssertionError, match="float"):
        assert_no_floats(body)


async def test_unknown_route_and_method_are_problems() -> None:
    async with bare_app() as client:
        problem(await client.get("/nope"), 404, "not-found")
        not_allowed = await client.post("/healthz")
        problem(not_allowed, 405)
        assert not_allowed.headers["allow"] == "GET"


UNUSUAL_METHODS = ("PATCH", "PUT", "DELETE", "POST", "GET")


@pytest.mark.parametrize("service", ["underwriting", "claims", "collections"])
async def test_a_405_allows_every_method_its_path_serves(service: str) -> None:
    """RFC 9110: `Allow` lists every method the resource takes (`PUT /v1/policies` is GET, POST;
    `PUT /v1/buyers/{id}/signals` is GET, POST), not only those of the first route matched."""
    app = import_module(f"services.{service}.main").create_app()
    paths = app.openapi()["paths"]
    checked = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:  # fmt: skip
        for template, operations in paths.items():
            served = {m.upper() for m in operations if m.upper() in UNUSUAL_METHODS}
            missing = next(m for m in UNUSUAL_METHODS if m not in served)
            path = re.sub(r"\{[^}]+\}", "x1", template)
            answer = await client.request(missing, path, headers=auth("service"))
            problem(answer, 405, "method-not-allowed")
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            assert allowed == served, (missing, template)
            checked += len(served) > 1
    assert checked > 0


@pytest.mark.parametrize("service", ["underwriting", "claims", "collections"])
async def test_a_trailing_slash_is_a_404_naming_the_path_meant(service: str) -> None:
    """No 307 with an empty body (and an `http` Location behind a TLS proxy): the problem says
    which path was meant; a path served by no route at all is a plain 404."""
    app = import_module(f"services.{service}.main").create_app()
    first = next(iter(app.openapi()["paths"]))
    path = re.sub(r"\{[^}]+\}", "x1", first)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:  # fmt: skip
        answer = await client.get(path + "/", headers=auth("service"))
        assert path in problem(answer, 404)["detail"]
        assert "location" not in answer.headers
        unknown = await client.get("/v1/nothing-here/", headers=auth("service"))
        assert "without the slash" not in problem(unknown, 404)["detail"]


async def test_an_unreadable_body_is_422() -> None:
    async with bare_app() as client:
        for body, kind in ((b"\xff\xfe{", "application/json"), (b"{not json", "application/json")):
            answer = await client.post("/boom-body", content=body, headers={"content-type": kind})
            assert problem(answer, 422, "validation")["errors"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    ("content_type", "body", "named"),
    [
        ("application/xml", b"<name>x</name>", "'application/xml'"),
        ("application/x-www-form-urlencoded", b"name=x", "'application/x-www-form-urlencoded'"),
        ("text/plain; charset=utf-8", b'{"name": "x"}', "'text/plain'"),
        ("multipart/form-data; boundary=b", b"--b--", "'multipart/form-data'"),
        (None, b'{"name": "x"}', "without a Content-Type"),
        (None, b"", "without a Content-Type"),
    ],
)  # fmt: skip
async def test_a_json_route_sent_another_content_type_says_to_send_application_json(
    content_type: str | None, body: bytes, named: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with bare_app() as client:
        answer = await client.post("/boom-body", content=body, headers=headers)
    refused = problem(answer, 422, "validation")
    assert "Content-Type: application/json" in refused["detail"] and named in refused["detail"]
    assert refused["errors"][0]["loc"] == ["body"]
    assert "application/json" in refused["errors"][0]["msg"]


async def test_a_json_body_of_the_wrong_shape_keeps_its_own_message() -> None:
    async with bare_app() as client:
        answer = await client.post("/boom-body", json=[1])
    refused = problem(answer, 422, "validation")
    assert "Content-Type" not in refused["detail"]
    assert "valid dictionary" in refused["detail"]


async def test_metrics_count_requests_by_route_template() -> None:
    async with bare_app() as client:
        await client.get("/healthz")
        text = (await client.get("/metrics", headers=auth("service"))).text
    assert 'http_requests_total{method="GET",route="/healthz",service="collections",status="200"}' \
        in text  # fmt: skip
    assert "http_request_duration_seconds_bucket" in text


async def test_a_body_over_the_cap_is_413() -> None:
    settings = Settings(TCI_MAX_BODY_BYTES=1000)
    async with bare_app(settings) as client:
        response = await client.post("/healthz", content=b"x" * 2000)
    assert problem(response, 413, "payload-too-large")["instance"] == "/healthz"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "required"),
        ({"Authorization": "Basic abc"}, "Bearer"),
        ({"Authorization": "Bearer nonsense"}, "malformed"),
    ],
)
async def test_missing_or_bad_tokens_are_401(uw: httpx.AsyncClient, headers: dict[str, str],
                                             why: str) -> None:  # fmt: skip
    response = await uw.get("/v1/policies/pol_x", headers=headers)
    assert why in problem(response, 401, "unauthorized")["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_token_is_401_and_a_wrong_role_403(uw: httpx.AsyncClient) -> None:
    expired = {"Authorization": f"Bearer {token('underwriter', ttl_seconds=-60)}"}
    problem(await uw.get("/v1/policies/pol_x", headers=expired), 401)
    response = await uw.post("/v1/policies", json={}, headers=auth("policyholder", "ph"))
    problem(response, 403, "forbidden")


async def test_validation_errors_list_each_field(uw: httpx.AsyncClient) -> None:
    body = {"policyholder_id": "ph", "currency": "ZZZ", "start_date": "2026-02-30",
            "end_date": "2026-12-31", "cover_type": "whole_turnover",
            "max_liability": money("1"), "premium_rate_pct": "0.3",
            "covered_countries": ["XX"]}  # fmt: skip
    response = await uw.post("/v1/policies", json=body, headers=auth("underwriter"))
    errors = problem(response, 422, "validation")["errors"]
    fields = {tuple(e["loc"][1:2]) for e in errors}
    assert {("currency",), ("start_date",), ("covered_countries",)} <= fields


async def test_nul_bytes_and_floats_are_refused(uw: httpx.AsyncClient) -> None:
    nul = {"name": "Bad\u0000Co", "country": "DE", "registration_number": "1"}
    problem(await uw.post("/v1/buyers", json=nul, headers=auth("underwriter")), 422, "validation")
    floaty = {"policyholder_id": "ph", "currency": "EUR", "start_date": "2026-01-01",
              "end_date": "2026-12-31", "cover_type": "whole_turnover",
              "max_liability": {"amount": 1000.5, "currency": "EUR"},
              "premium_rate_pct": "0.3"}  # fmt: skip
    problem(await uw.post("/v1/policies", json=floaty, headers=auth("underwriter")), 422)
    problem(
        await uw.post(
            "/v1/policies",
            content=b"{not json",
            headers={**auth("underwriter"), "content-type": "application/json"},
        ),
        422,
        "validation",
    )


async def test_an_idempotent_replay_returns_the_first_answer(uw: httpx.AsyncClient) -> None:
    body = {"policyholder_id": "ph-idem", "currency": "EUR", "start_date": "2026-01-01",
            "end_date": "2026-12-31", "cover_type": "whole_turnover",
            "max_liability": money("100000"), "premium_rate_pct": "0.5"}  # fmt: skip
    headers = {**auth("underwriter"), "Idempotency-Key": "k-1"}
    first = await uw.post("/v1/policies", json=body, headers=headers)
    again = await uw.post("/v1/policies", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    other = await uw.post("/v1/policies", json={**body, "premium_rate_pct": "0.6"},
                          headers=headers)  # fmt: skip
    problem(other, 422, "idempotency-key-reused")
    # The same document sent with other spacing and key order is the same request.
    respaced = json.dumps(dict(reversed(list(body.items()))), indent=2)
    replay = await uw.post("/v1/policies", content=respaced,
                           headers={**headers, "content-type": "application/json"})  # fmt: skip
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == first.json()


async def test_a_key_past_its_retention_is_free_again_before_the_purge_removes_it(
    uw: httpx.AsyncClient,
) -> None:
    settings = uw._transport.app.state.settings  # type: ignore[attr-defined]
    headers = {**auth("underwriter"), "Idempotency-Key": unique("k")}
    body = {"country": "LU", "name": "Kept", "registration_number": unique("kept")}
    first = await uw.post("/v1/buyers", json=body, headers=headers)
    assert first.status_code == 201
    settings.idempotency_retention_hours = 0  # the first answer's key is now past its retention
    other = {**body, "registration_number": unique("other")}
    again = await uw.post("/v1/buyers", json=other, headers=headers)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert again.json()["registration_number"] == other["registration_number"]


async def test_lists_page_with_an_opaque_cursor(uw: httpx.AsyncClient) -> None:
    reader = auth("underwriter")
    for n in range(3):
        body = {"country": "NL", "name": f"B{n}", "registration_number": f"page-{n}"}
        assert (await uw.post("/v1/buyers", json=body, headers=reader)).status_code == 201
    first = (await uw.get("/v1/buyers?country=NL&limit=2", headers=reader)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (await uw.get(f"/v1/buyers?country=NL&limit=2&cursor={first['next_cursor']}",
                           headers=reader)).json()  # fmt: skip
    assert [b["registration_number"] for b in first["items"] + second["items"]] == [
        "page-0",
        "page-1",
        "page-2",
    ]
    assert second["next_cursor"] is None
    problem(await uw.get("/v1/buyers?limit=0", headers=reader), 422)
    problem(await uw.get("/v1/buyers?limit=501", headers=reader), 422)
    problem(await uw.get("/v1/buyers?cursor=garbage", headers=reader), 422)


async def test_readiness_checks_the_database(uw: httpx.AsyncClient) -> None:
    assert (await uw.get("/readyz")).json() == {"status": "ready"}
    assert (await uw.get("/healthz")).status_code == 200
    policy = await make_policy(uw)
    assert policy["indemnity_pct"] == "90"


async def test_expired_idempotency_keys_are_purged_and_fresh_ones_kept(
    engines: dict[str, AsyncEngine],
) -> None:
    engine = engines["underwriting"]
    table = underwriting_metadata.tables["underwriting.idempotency_keys"]
    caller = unique("purge-test")
    now = utcnow()
    rows = [{"caller": caller, "route": "POST /v1/buyers", "key": key, "fingerprint": "f",
             "status_code": 201, "body": "{}", "location": None, "created_at": at}
            for key, at in (("old", now - dt.timedelta(hours=49)),
                            ("fresh", now - dt.timedelta(hours=47)))]  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(insert(table), rows)
    purged = await purge_expired(engine, table, older_than=dt.timedelta(hours=48))
    async with engine.connect() as connection:
        kept = (await connection.execute(select(table.c.key).where(table.c.caller == caller))).all()
        await connection.execute(delete(table).where(table.c.caller == caller))
        await connection.commit()
    assert purged >= 1 and [k for (k,) in kept] == ["fresh"]


async def test_a_failure_after_the_commit_leaves_the_committed_answer_standing(
    uw: httpx.AsyncClient,
) -> None:
    app = uw._transport.app  # type: ignore[attr-defined]
    ran: list[str] = []

    async def committed(cmd: CommandDep, session: SessionDep) -> Response:
        async def handler() -> Echoed:
            await session.execute(text("SELECT 1"))
            return Echoed(name="kept")

        async def after(outcome: Echoed) -> None:
            ran.append(outcome.name)
            raise RuntimeError("the peer fell over")

        return await cmd.run(handler, status_code=201, after_commit=after)

    app.add_api_route("/v1/after-commit-probe", committed, methods=["POST"])
    headers = {**auth("underwriter"), "Idempotency-Key": unique("k")}
    first = await uw.post("/v1/after-commit-probe", headers=headers)
    assert first.status_code == 201 and first.json() == {"name": "kept"} and ran == ["kept"]
    replay = await uw.post("/v1/after-commit-probe", headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and ran == ["kept"]  # not run again
