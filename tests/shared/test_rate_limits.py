"""Rate limits (api.md, 2026-11-23): a caller past its rate gets 429 `rate-limited` with
Retry-After; the caller is the token's subject, or the client address without a valid token;
counted per process, or across replicas in Redis when TCI_REDIS_URL is set."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter

from services.collections.models import metadata as collections_metadata
from shared.app import create_app
from shared.settings import Settings
from tests.builders import money
from tests.conftest import token, unique

REDIS_URL = "redis://127.0.0.1:6379/15"


def limited_app(**env: Any) -> httpx.AsyncClient:
    """A service app (no database needed) with one authenticated route and one open route."""
    router = APIRouter()

    @router.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app = create_app(service="collections", settings=Settings(**env),
                     metadata=collections_metadata, routers=[router], title="t",
                     description="t")  # fmt: skip
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def bearer(role: str = "underwriter", subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, subject=subject or unique('sub'))}"}


def assert_rate_limited(response: httpx.Response, window_seconds: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "rate-limited"
    assert 1 <= int(response.headers["retry-after"]) <= window_seconds


async def test_a_caller_past_its_rate_gets_429_rate_limited_with_retry_after() -> None:
    async with limited_app(TCI_RATE_LIMIT="5/minute") as client:
        mine, other = bearer(), bearer()
        answers = [(await client.get("/v1/ping", headers=mine)).status_code for _ in range(5)]
        assert answers == [200] * 5
        assert_rate_limited(await client.get("/v1/ping", headers=mine), 60)
        # Counted per subject: another caller still has its own budget.
        assert (await client.get("/v1/ping", headers=other)).status_code == 200


async def test_a_new_token_for_the_same_subject_shares_the_subjects_budget() -> None:
    subject = unique("partner")
    async with limited_app(TCI_RATE_LIMIT="3/minute") as client:
        for _ in range(3):
            assert (await client.get("/v1/ping", headers=bearer(subject=subject))).status_code \
                == 200  # fmt: skip
        assert_rate_limited(await client.get("/v1/ping", headers=bearer(subject=subject)), 60)


async def test_without_a_valid_token_the_client_address_is_the_caller() -> None:
    async with limited_app(TCI_RATE_LIMIT_ANONYMOUS="3/minute") as client:
        answers = [
            (
                await client.get("/v1/ping", headers={"Authorization": f"Bearer junk-{i}"})
            ).status_code
            for i in range(3)
        ]
        assert answers == [200] * 3  # the route takes no token: each is answered
        assert_rate_limited(await client.get("/v1/ping"), 60)
        # A valid token is counted against its subject, not the address.
        assert (await client.get("/v1/ping", headers=bearer())).status_code == 200


async def test_our_own_services_are_not_limited_by_default_and_probes_never() -> None:
    async with limited_app(TCI_RATE_LIMIT="2/minute", TCI_RATE_LIMIT_ANONYMOUS="2/minute") as c:
        service = bearer("service", subject="claims")
        assert {(await c.get("/v1/ping", headers=service)).status_code for _ in range(50)} == {200}
        assert {(await c.get("/healthz")).status_code for _ in range(10)} == {200}


async def test_the_default_rates_admit_a_partners_burst_of_600_requests() -> None:
    async with limited_app() as client:
        mine = bearer()
        codes = [(await client.get("/v1/ping", headers=mine)).status_code for _ in range(100)]
        assert codes == [200] * 100
    # And a flood is refused: 600 requests in a moment pass the per-second rate.
    async with limited_app() as client:
        mine = bearer()
        codes = [(await client.get("/v1/ping", headers=mine)).status_code for _ in range(600)]
        assert codes.count(429) > 0 and codes.count(200) >= 100


def _redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.mark.skipif(not _redis_answers(), reason="no Redis at 127.0.0.1:6379")
async def test_two_instances_sharing_redis_share_one_budget() -> None:
    subject = f"shared-{uuid.uuid4().hex}"
    async with limited_app(TCI_RATE_LIMIT="4/minute", TCI_REDIS_URL=REDIS_URL) as one, \
            limited_app(TCI_RATE_LIMIT="4/minute", TCI_REDIS_URL=REDIS_URL) as two:  # fmt: skip
        headers = bearer(subject=subject)
        assert (await one.get("/v1/ping", headers=headers)).status_code == 200
        assert (await two.get("/v1/ping", headers=headers)).status_code == 200
        assert (await one.get("/v1/ping", headers=headers)).status_code == 200
        assert (await two.get("/v1/ping", headers=headers)).status_code == 200
        assert_rate_limited(await one.get("/v1/ping", headers=headers), 60)
        assert_rate_limited(await two.get("/v1/ping", headers=headers), 60)


async def test_two_instances_without_redis_count_each_its_own() -> None:
    headers = bearer()
    async with limited_app(TCI_RATE_LIMIT="2/minute") as one, \
            limited_app(TCI_RATE_LIMIT="2/minute") as two:  # fmt: skip
        for client in (one, two):
            assert [(await client.get("/v1/ping", headers=headers)).status_code
                    for _ in range(2)] == [200, 200]  # fmt: skip
        assert_rate_limited(await one.get("/v1/ping", headers=headers), 60)


async def test_while_redis_does_not_answer_each_process_counts_alone_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with limited_app(TCI_RATE_LIMIT="2/minute",
                           TCI_REDIS_URL="redis://127.0.0.1:1/0") as client:  # fmt: skip
        headers, other = bearer(), bearer()
        with caplog.at_level(logging.WARNING, logger="tci.app"):
            codes = [(await client.get("/v1/ping", headers=headers)).status_code
                     for _ in range(4)]  # fmt: skip
            assert (await client.get("/v1/ping", headers=other)).status_code == 200
        # Served, but never unlimited: the per-process budget holds while Redis is down.
        assert codes == [200, 200, 429, 429]
        down = [r for r in caplog.records if "rate limit storage unavailable" in r.message]
        assert len(down) == 1, caplog.text  # once per outage, not per request
        assert "counting per process" in down[0].message

        # Redis answers again (here: a storage that works, asked when the retry is due).
        limits = client._transport.app.state.rate_limits  # type: ignore[attr-defined]
        limits.shared = FixedWindowRateLimiter(MemoryStorage())
        limits._ask_shared_at = 0.0
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tci.app"):
            assert (await client.get("/v1/ping", headers=headers)).status_code == 200
            assert (await client.get("/v1/ping", headers=headers)).status_code == 200
        assert limits.shared_down_since is None
        assert ["available again" in r.message for r in caplog.records] == [True], caplog.text


def counted(metrics: str, route: str, status: str) -> float:
    label = f'http_requests_total{{method="GET",route="{route}",service="collections",status="{status}"}} '
    return sum(float(line.removeprefix(label)) for line in metrics.splitlines()
               if line.startswith(label))  # fmt: skip


async def test_a_429_is_counted_under_its_route_and_names_its_instance() -> None:
    async with limited_app(TCI_RATE_LIMIT="1/minute") as client:
        service = bearer("service")
        before = (await client.get("/metrics", headers=service)).text
        headers = bearer()
        assert (await client.get("/v1/ping", headers=headers)).status_code == 200
        refused = await client.get("/v1/ping", headers=headers)
        assert_rate_limited(refused, 60)
        assert refused.json()["instance"] == "/v1/ping"
        after = (await client.get("/metrics", headers=service)).text
    assert counted(after, "/v1/ping", "429") - counted(before, "/v1/ping", "429") == 1
    assert counted(after, "unmatched", "429") == counted(before, "unmatched", "429")


async def test_a_rate_limited_write_stores_nothing(api: Any, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:  # fmt: skip
    monkeypatch.setenv("TCI_RATE_LIMIT", "3/minute")
    uw = await api.open("underwriting")
    writer = bearer()
    holders = [unique("ph") for _ in range(6)]
    codes = []
    for holder in holders:
        body = {"policyholder_id": holder, "currency": "EUR", "start_date": "2026-01-01",
                "end_date": "2026-12-31", "cover_type": "whole_turnover",
                "max_liability": money("5000000"), "premium_rate_pct": "0.35"}  # fmt: skip
        codes.append((await uw.post("/v1/policies", json=body, headers=writer)).status_code)
    assert codes == [201, 201, 201, 429, 429, 429]
    reader = bearer("service")
    stored = [
        len((await uw.get("/v1/policies", params={"policyholder_id": h}, headers=reader))
            .json()["items"])
        for h in holders
    ]  # fmt: skip
    assert stored == [1, 1, 1, 0, 0, 0]
