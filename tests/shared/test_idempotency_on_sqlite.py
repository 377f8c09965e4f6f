"""Idempotency on the embedded default, SQLite, with real concurrency: the claims app on its own
SQLite file (migrated by the real migrations, whatever database the suite runs on), a test-only
route whose handler writes and then holds its transaction open until the test lets it finish."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Response
from pydantic import BaseModel
from sqlalchemy import insert

from services.claims.config import ClaimsSettings
from services.claims.main import create_app
from services.claims.models import idempotency_keys
from shared.auth import CallerDep
from shared.db import SessionDep, utcnow
from shared.idempotency import RUNNING, CommandDep, fingerprint
from shared.migrations import upgrade
from shared.problems import ProblemType, unprocessable
from tests.conftest import token

SLOW = "/test-only/slow"
SUBJECT = "idempotency-tester"
SCOPE = f"claims_handler:{SUBJECT}:"  # Caller.scope: one caller sends every request here
CLAIM_SECONDS = 30


class Note(BaseModel):
    note: str


class Done(BaseModel):
    id: str
    note: str


@dataclass
class Gate:
    """What the slow handler waits for, and how often it ran."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    runs: int = 0
    fail: bool = False


# A problem type of this test only (not in the catalogue: no service answers it).
TEST_FAILURE = ProblemType("test-failure", 422, "Test failure", "the test's first attempt fails")


def add_slow_route(app: FastAPI, gate: Gate) -> None:
    async def slow(session: SessionDep, caller: CallerDep, cmd: CommandDep, body: Note) -> Response:
        async def handler() -> Done:
            gate.runs += 1
            # A real write: on SQLite this transaction now holds the database's write lock.
            await session.execute(insert(idempotency_keys).values(
                caller="test-only", route="write", key=uuid.uuid4().hex, fingerprint="-",
                status_code=200, body="{}", created_at=utcnow()))  # fmt: skip
            gate.started.set()
            await gate.release.wait()
            if gate.fail:
                raise unprocessable(TEST_FAILURE, "the first attempt fails")
            return Done(id=uuid.uuid4().hex, note=body.note)

        return await cmd.run(handler, status_code=201)

    app.router.add_api_route(SLOW, slow, methods=["POST"])


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Gate, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/claims.db"
    await asyncio.to_thread(upgrade, "claims", url)
    settings = ClaimsSettings(
        DATABASE_URL=url,
        TCI_IDEMPOTENCY_CLAIM_SECONDS=CLAIM_SECONDS,
        TCI_UNDERWRITING_URL="http://127.0.0.1:9",
        TCI_COLLECTIONS_URL="http://127.0.0.1:9",
    )  # type: ignore[call-arg]
    app = create_app(settings)
    gate = Gate()
    add_slow_route(app, gate)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://claims") as client:
            yield client, gate, url


def headers(key: str | None = None) -> dict[str, str]:
    sent = {"Authorization": f"Bearer {token('claims_handler', subject=SUBJECT)}"}
    return sent if key is None else {**sent, "Idempotency-Key": key}


async def test_on_sqlite_a_twin_sent_while_the_first_runs_gets_409_and_a_later_one_the_replay(
    sqlite_app: tuple[httpx.AsyncClient, Gate, str],
) -> None:
    client, gate, _ = sqlite_app
    key = uuid.uuid4().hex
    first = asyncio.create_task(client.post(SLOW, json={"note": "a"}, headers=headers(key)))
    await asyncio.wait_for(gate.started.wait(), 10)
    # The first holds SQLite's write lock: the twin must not wait for it.
    twin = await asyncio.wait_for(client.post(SLOW, json={"note": "a"}, headers=headers(key)), 5)
    other = await asyncio.wait_for(client.post(SLOW, json={"note": "b"}, headers=headers(key)), 5)
    gate.release.set()
    answered = await asyncio.wait_for(first, 10)
    replay = await client.post(SLOW, json={"note": "a"}, headers=headers(key))

    assert twin.status_code == 409 and twin.json()["type"].endswith("idempotency-key-in-use")
    assert twin.headers["Retry-After"] == "1"  # when to ask again
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency-key-reused")
    assert answered.status_code == 201 and "idempotent-replayed" not in answered.headers
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == answered.json()
    assert gate.runs == 1


async def test_on_sqlite_a_key_whose_request_failed_is_free_for_a_retry_at_once(
    sqlite_app: tuple[httpx.AsyncClient, Gate, str],
) -> None:
    client, gate, _ = sqlite_app
    key = uuid.uuid4().hex
    gate.fail = True
    gate.release.set()
    failed = await client.post(SLOW, json={"note": "a"}, headers=headers(key))
    gate.fail = False
    retried = await client.post(SLOW, json={"note": "a"}, headers=headers(key))
    assert failed.status_code == 422 and failed.json()["type"].endswith("test-failure")
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert gate.runs == 2


async def test_on_sqlite_a_key_held_by_a_request_that_died_is_taken_over_after_the_claim_period(
    sqlite_app: tuple[httpx.AsyncClient, Gate, str],
) -> None:
    client, gate, _ = sqlite_app
    gate.release.set()
    app = client._transport.app  # type: ignore[attr-defined]
    # What a process that died mid-request leaves behind: a committed claim, still running.
    recent, dead = uuid.uuid4().hex, uuid.uuid4().hex
    same = fingerprint("POST", SLOW, "", b'{"note":"a"}')
    async with app.state.engine.begin() as connection:
        for key, age in ((recent, 1), (dead, CLAIM_SECONDS + 1)):
            await connection.execute(insert(idempotency_keys).values(
                caller=SCOPE, route=f"POST {SLOW}", key=key, fingerprint=same,
                status_code=RUNNING, body="", created_at=utcnow() - dt.timedelta(seconds=age)))  # fmt: skip
    runs = gate.runs
    still_running = await client.post(SLOW, json={"note": "a"}, headers=headers(recent))
    taken_over = await client.post(SLOW, json={"note": "a"}, headers=headers(dead))
    assert still_running.status_code == 409
    assert taken_over.status_code == 201 and "idempotent-replayed" not in taken_over.headers
    assert gate.runs == runs + 1


async def test_on_sqlite_a_new_key_sent_while_another_request_writes_waits_its_turn_and_runs(
    sqlite_app: tuple[httpx.AsyncClient, Gate, str],
) -> None:
    client, gate, _ = sqlite_app
    first = asyncio.create_task(client.post(SLOW, json={"note": "a"}, headers=headers("one")))
    await asyncio.wait_for(gate.started.wait(), 10)
    # Another key finds the database's write lock taken: not a twin, so it waits, not 409.
    second = asyncio.create_task(client.post(SLOW, json={"note": "b"}, headers=headers("two")))
    await asyncio.sleep(0.3)
    gate.release.set()
    answers = await asyncio.wait_for(asyncio.gather(first, second), 20)
    # The connections went back to the pool waiting as usual: more writes still queue up.
    more = await asyncio.wait_for(asyncio.gather(*(
        client.post(SLOW, json={"note": str(n)}, headers=headers(f"more-{n}")) for n in range(5)
    )), 20)  # fmt: skip
    assert [a.status_code for a in answers] == [201, 201]
    assert [a.status_code for a in more] == [201] * 5
    assert gate.runs == 7
