"""A database that drops, a peer that does not answer (api.md, 2026-11-23): 503
`service-unavailable` with Retry-After, never a 500; /readyz says so; the service recovers by
itself when the database is back."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest
from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.collections.models import metadata as collections_metadata
from shared.app import create_app
from shared.db import build_engine
from shared.http import ServiceClient
from shared.settings import DEVELOPMENT_JWT_SECRET, Settings
from tests.builders import money
from tests.conftest import auth, backend, create_migrated_database, free_urls, start_services


def unreachable_app() -> httpx.AsyncClient:
    """Routes that reach a database and a peer on a loopback port nobody listens on."""
    router = APIRouter()

    @router.get("/v1/from-database")
    async def from_database(request: Request) -> None:
        engine = build_engine("postgresql://postgres@127.0.0.1:1/nowhere")
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    @router.get("/v1/from-peer")
    async def from_peer() -> None:
        peer = ServiceClient("http://127.0.0.1:1", jwt_secret=DEVELOPMENT_JWT_SECRET,
                             caller_name="test", retries=1)  # fmt: skip
        try:
            await peer.request("GET", "/v1/anything")
        finally:
            await peer.aclose()

    app = create_app(service="collections", settings=Settings(), metadata=collections_metadata,
                     routers=[router], title="t", description="t")  # fmt: skip
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_an_unreachable_database_or_peer_is_503_with_retry_after_never_500() -> None:
    async with unreachable_app() as client:
        for path in ("/v1/from-database", "/v1/from-peer"):
            answer = await client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["type"] == "service-unavailable"
            assert answer.json()["instance"] == path  # as every other problem answer
            assert int(answer.headers["retry-after"]) >= 1


POLICY = {"policyholder_id": "ph-outage", "currency": "EUR", "start_date": "2026-01-01",
          "end_date": "2026-12-31", "cover_type": "whole_turnover",
          "max_liability": money("5000000"), "premium_rate_pct": "0.35"}  # fmt: skip


def _admin(database_url: str) -> psycopg.Connection[tuple[object, ...]]:
    admin = make_url(database_url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(admin.render_as_string(False), autocommit=True)


@pytest.mark.postgres
@pytest.mark.e2e
def test_a_database_that_refuses_connections_gives_503_and_the_service_recovers_by_itself(
) -> None:  # fmt: skip
    b = backend()
    database = f"{b.main_database}_outage"
    create_migrated_database(b, database)
    urls = free_urls()
    running = start_services(database, urls, only=["underwriting"],
                             env={"TCI_DB_POOL_SIZE": "4"})  # fmt: skip
    base = urls["underwriting"]
    service = auth("service")
    try:
        created = httpx.post(f"{base}/v1/policies", json=POLICY,
                             headers=auth("underwriter"), timeout=10)  # fmt: skip
        assert created.status_code == 201, created.text
        policy_url = f"{base}/v1/policies/{created.json()['id']}"
        answers: Counter[int] = Counter()
        bad: list[str] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    for url in (policy_url, f"{base}/readyz"):
                        try:
                            answer = client.get(url, headers=service)
                        except httpx.TransportError as exc:  # the process must keep answering
                            bad.append(repr(exc))
                            continue
                        answers[answer.status_code] += 1
                        if answer.status_code == 503 and (
                            "retry-after" not in answer.headers
                            or answer.json()["type"] != "service-unavailable"
                        ):
                            bad.append(answer.text)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        with _admin(b.base_url) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))  # fmt: skip
            time.sleep(1.5)
            down = httpx.get(f"{base}/readyz", timeout=10)
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        time.sleep(0.7)
        stop.set()
        for thread in threads:
            thread.join()
        assert down.status_code == 503 and down.json()["type"] == "service-unavailable"
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.2)
        assert httpx.get(policy_url, headers=service, timeout=10).status_code == 200
        assert bad == []
        assert set(answers) <= {200, 503}, answers
        assert answers[503] > 0 and answers[200] > 0, answers
    finally:
        running.stop()
        b.drop_database(database)


def test_a_connection_broken_mid_protocol_by_a_terminating_server_is_unavailable() -> None:
    """What asyncpg raised once while the database was terminating its backends (a 500 before)."""
    from asyncpg.exceptions._base import InternalClientError

    from shared.db import is_unavailable

    broken = InternalClientError("cannot switch to state 12; another operation (2) is in progress")
    assert is_unavailable(broken)
    assert not is_unavailable(ValueError("cannot switch to state 12"))


def test_the_drivers_and_clients_errors_that_mean_unavailable_are_told_from_the_others() -> None:
    """One table names them: a lost asyncpg connection (not any interface error), a peer that did
    not answer (any of httpx's transport errors, not an answer it did not like), also when they
    are the cause of another error."""
    import httpx
    from asyncpg.exceptions import ConnectionDoesNotExistError
    from asyncpg.exceptions._base import InterfaceError

    from shared.db import is_unavailable

    assert is_unavailable(InterfaceError("connection is closed"))
    assert is_unavailable(ConnectionDoesNotExistError("connection was closed in the middle"))
    assert not is_unavailable(InterfaceError("the server expects 2 arguments, 3 were passed"))
    assert is_unavailable(httpx.ConnectError("refused"))
    assert is_unavailable(httpx.ReadTimeout("slow"))
    request = httpx.Request("GET", "http://peer/")
    answer = httpx.Response(500, request=request)
    assert not is_unavailable(httpx.HTTPStatusError("500", request=request, response=answer))
    try:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError as exc:
            raise RuntimeError("reading the policy") from exc
    except RuntimeError as wrapped:
        assert is_unavailable(wrapped)
