"""Webhook endpoints and their delivery, in process (api.md, "Events and webhooks"): the URL rules
that keep deliveries off private networks, who sees which endpoint, the secret shown once, the
attempts log, the backoff that keeps trying for a day and more, `failing` past the retry span,
410 disabling an endpoint, and delivery in order of the endpoint's own types only.

The routes run in the rolled-back transaction of the `api` fixture; the dispatcher runs on the
committed test database (its own transactions, as in production), with a party of its own per
test, and posts to the receiver of tests/webhook_receiver.py running as a process on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.claims.events import EVENT_TYPES as CLAIMS_EVENT_TYPES
from services.claims.main import hooks
from shared.auth import Caller, mint_token
from shared.db import build_sessionmaker, new_id
from shared.events import Party, policyholder, record_event
from shared.settings import Settings
from shared.webhooks import (
    SECRET_PREFIX,
    UrlRefused,
    WebhookEndpointCreate,
    _Run,
    address_refusal,
    new_secret,
    next_retry,
    post_message,
    retry_delay,
    sending_client,
    vet_url,
)
from tests import webhook_receiver
from tests.builders import ok
from tests.conftest import auth, unique

HANDLER = auth("claims_handler")
STAFF = Caller(subject="test-handler", role="claims_handler", party_id=None)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, Path]]:
    """The receiver process: its base URL and its directory."""
    directory = Path(tempfile.mkdtemp(prefix="tci-receiver-"))
    port = _port()
    process = webhook_receiver.start(directory, port)
    yield f"http://127.0.0.1:{port}", directory
    process.kill()
    process.wait()


def fast(**overrides: Any) -> Settings:
    """Development settings whose retries come within a test's time."""
    values: dict[str, Any] = {"webhook_retry_base_seconds": 0.01,
                              "webhook_max_backoff_seconds": 0.05, **overrides}  # fmt: skip
    return Settings(**values)


@pytest.fixture
async def committed(engines: dict[str, AsyncEngine]) -> AsyncIterator[async_sessionmaker[Any]]:
    """Sessions on the committed claims database; the endpoints a test made are deleted after."""
    sessionmaker = build_sessionmaker(engines["claims"])
    async with sessionmaker() as session:
        before = set((await session.execute(select(hooks.tables.endpoints.c.id))).scalars())
    yield sessionmaker
    async with sessionmaker() as session:
        table = hooks.tables.endpoints
        await session.execute(delete(table).where(table.c.id.not_in(before)))
        await session.commit()


async def register(
    sessionmaker: async_sessionmaker[AsyncSession], party: str, url: str, types: list[str],
    settings: Settings,
) -> dict[str, Any]:  # fmt: skip
    async with sessionmaker() as session:
        made = await hooks.register(session, STAFF, WebhookEndpointCreate(
            url=url, event_types=types, party_role="policyholder", party_id=party), settings)  # fmt: skip
        await session.commit()
    return made.model_dump()


async def announce(
    sessionmaker: async_sessionmaker[AsyncSession], party: str, *types: str
) -> list[str]:
    """Commit one event per type, in order, for the party; their ids."""
    async with sessionmaker() as session:
        ids = [await record_event(session, hooks.events, type=kind, subject_id="clm_test",
                                  data={"n": n}, parties=[policyholder(party)])
               for n, kind in enumerate(types)]  # fmt: skip
        await session.commit()
    return ids


async def endpoint_row(sessionmaker: async_sessionmaker[AsyncSession], ident: str) -> Any:
    async with sessionmaker() as session:
        table = hooks.tables.endpoints
        return (await session.execute(select(table).where(table.c.id == ident))).one()


async def attempts_of(sessionmaker: async_sessionmaker[AsyncSession], ident: str) -> list[Any]:
    async with sessionmaker() as session:
        table = hooks.tables.attempts
        statement = select(table).where(table.c.endpoint_id == ident)
        return list((await session.execute(statement.order_by(table.c.attempted_at))).all())


# ---------------------------------------------------------------- URL rules


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "127.0.0.1", "169.254.169.254",
     "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
     "fc00::1", "ff02::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
     "2002:a00:1::", "64:ff9b:1::a00:1"],
)  # fmt: skip
def test_deliveries_go_to_no_private_loopback_link_local_multicast_reserved_or_unspecified_address(
    address: str,
) -> None:
    assert address_refusal(address, development=False) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111",
                                     "::ffff:93.184.215.14"])  # fmt: skip
def test_public_addresses_take_deliveries(address: str) -> None:
    assert address_refusal(address, development=False) is None


def test_development_allows_loopback_and_nothing_else_private() -> None:
    for loopback in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"):
        assert address_refusal(loopback, development=True) is None
    for private in ("10.0.0.1", "169.254.169.254", "fe80::1", "0.0.0.0"):
        assert address_refusal(private, development=True) is not None


async def refusal(url: str, *, development: bool = False, resolver: Any = None) -> str:
    extra = {"resolver": resolver} if resolver else {}
    with pytest.raises(UrlRefused) as refused:
        await vet_url(url, development=development, resolve_within=5, **extra)
    return str(refused.value)


async def test_outside_development_a_url_must_be_https_without_credentials_to_a_public_host(
) -> None:  # fmt: skip
    assert "must be https" in await refusal("http://93.184.215.14/hook")
    assert "user name or password" in await refusal("https://user:pw@93.184.215.14/hook")
    assert "user name or password" in await refusal("https://token@93.184.215.14/hook")
    assert "loopback" in await refusal("https://localhost/hook")  # resolved, really
    assert "private" in await refusal("https://[::ffff:192.168.0.1]/hook")
    assert "must be https" in await refusal("ftp://93.184.215.14/hook")
    assert "does not resolve" in await refusal("https://no-such-host.invalid/hook")
    target = await vet_url("https://93.184.215.14:8443/hook?x=1#frag", development=False,
                           resolve_within=5)  # fmt: skip
    assert (target.address, str(target.url)) == (
        "93.184.215.14",
        "https://93.184.215.14:8443/hook?x=1",
    )


@pytest.mark.parametrize("port", [0, 65536, 99999])
async def test_a_url_whose_port_no_connection_can_use_is_refused(port: int) -> None:
    why = await refusal(f"https://93.184.215.14:{port}/hook")
    assert f"port {port}" in why
    assert f"port {port}" in await refusal(f"http://localhost:{port}/hook", development=True)


async def test_a_host_is_refused_when_any_of_its_addresses_is_private() -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    why = await refusal("https://hooks.example.com/x", resolver=rebinding)
    assert "hooks.example.com resolves to 10.0.0.7, a private address" in why


async def test_development_allows_http_to_loopback() -> None:
    target = await vet_url("http://localhost:9/hook", development=True, resolve_within=5)
    assert target.address in ("127.0.0.1", "::1")
    assert "private" in await refusal("http://10.0.0.1/hook", development=True)


async def test_resolving_and_posting_together_end_within_the_timeout() -> None:
    """A slow DNS answer leaves the post only what is left of the timeout: a dispatcher starts a
    post only while its lease lasts one timeout more, and none of its posts may outlive it."""

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(0.9)
        return ["127.0.0.1"]

    settings = fast(webhook_timeout_seconds=1.0)
    with socket.socket() as silent:  # takes connections (its backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://hooks.example.com:{silent.getsockname()[1]}/hook"
        started = time.monotonic()
        async with sending_client(settings.webhook_timeout_seconds) as client:
            outcome = await post_message(client, url, new_secret(), {"id": "evt_slow"}, settings,
                                         resolver=slow)  # fmt: skip
        took = time.monotonic() - started
    assert (outcome.status_code, outcome.error) == (None, "no answer within 1 s")
    assert took < 1.5


async def test_a_refused_url_is_a_422_webhook_url_refused_and_nothing_is_stored(api: Any) -> None:
    claims = await api.open("claims")
    holder = auth("policyholder", unique("ph"))
    for url, why in (("http://169.254.169.254/latest/meta-data", "link-local"),
                     ("https://user:secret@127.0.0.1/x", "user name or password"),
                     ("http://[::ffff:10.0.0.1]/x", "private")):  # fmt: skip
        answer = await claims.post("/v1/webhook-endpoints", headers=holder,
                                   json={"url": url, "event_types": ["claim.paid"]})  # fmt: skip
        assert answer.status_code == 422, answer.text
        assert answer.json()["type"] == "webhook-url-refused" and why in answer.json()["detail"]
    assert ok(await claims.get("/v1/webhook-endpoints", headers=holder), 200)["items"] == []


async def test_outside_development_http_and_loopback_are_refused_at_registration(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "a-production-secret-for-this-test-only-0123456789"
    monkeypatch.setenv("TCI_ENV", "production")
    monkeypatch.setenv("TCI_JWT_SECRET", secret)
    claims = await api.open("claims")
    token = mint_token(secret, role="policyholder", party_id=unique("ph"))
    headers = {"Authorization": f"Bearer {token}"}
    for url, why in (("http://93.184.215.14/x", "must be https"),
                     ("https://127.0.0.1:8443/x", "loopback")):  # fmt: skip
        answer = await claims.post("/v1/webhook-endpoints", headers=headers,
                                   json={"url": url, "event_types": ["claim.paid"]})  # fmt: skip
        assert answer.status_code == 422 and why in answer.json()["detail"], answer.text


# ---------------------------------------------------------------- routes


async def test_an_endpoint_is_registered_for_the_callers_party_and_its_secret_is_shown_once(
    api: Any, receiver: tuple[str, Path]
) -> None:
    claims = await api.open("claims")
    party = unique("ph")
    holder = auth("policyholder", party)
    made = ok(await claims.post("/v1/webhook-endpoints", headers=holder, json={
        "url": f"{receiver[0]}/once", "event_types": ["claim.paid", "claim.paid"]}), 201)  # fmt: skip
    assert made["secret"].startswith(SECRET_PREFIX) and len(made["secret"]) > 40
    assert (made["party_id"], made["status"], made["event_types"]) == (
        party,
        "active",
        ["claim.paid"],
    )
    read = ok(await claims.get(f"/v1/webhook-endpoints/{made['id']}", headers=holder), 200)
    listed = ok(await claims.get("/v1/webhook-endpoints", headers=holder), 200)
    assert "secret" not in read and [e["id"] for e in listed["items"]] == [made["id"]]
    assert all("secret" not in e for e in listed["items"])
    assert made["secret"] not in (read.__repr__() + listed.__repr__())


async def test_event_types_must_be_the_services_own(api: Any, receiver: tuple[str, Path]) -> None:
    claims = await api.open("claims")
    holder = auth("policyholder", unique("ph"))
    for types, loc in ((["claim.paid", "limit.changed"], ["body", "event_types", 1]),
                       ([], ["body", "event_types"])):  # fmt: skip
        answer = await claims.post("/v1/webhook-endpoints", headers=holder,
                                   json={"url": f"{receiver[0]}/t", "event_types": types})  # fmt: skip
        assert answer.status_code == 422 and answer.json()["type"] == "validation", answer.text
        assert loc in [e["loc"] for e in answer.json()["errors"]]


async def test_an_endpoint_is_seen_by_its_party_and_staff_and_a_stranger_gets_the_missing_ids_404(
    api: Any, receiver: tuple[str, Path]
) -> None:
    claims = await api.open("claims")
    owner, stranger = unique("ph"), unique("ph")
    holder, other = auth("policyholder", owner), auth("policyholder", stranger)
    made = ok(await claims.post("/v1/webhook-endpoints", headers=holder, json={
        "url": f"{receiver[0]}/seen", "event_types": ["claim.paid"]}), 201)  # fmt: skip
    ident = made["id"]
    missing = f"whe_{'0' * (len(ident) - 4)}"
    for suffix in ("", "/deliveries"):
        theirs = await claims.get(f"/v1/webhook-endpoints/{ident}{suffix}", headers=other)
        nobody = await claims.get(f"/v1/webhook-endpoints/{missing}{suffix}", headers=other)
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.content.replace(ident.encode(), missing.encode()) == nobody.content
    assert (
        await claims.post(f"/v1/webhook-endpoints/{ident}/test", headers=other)
    ).status_code == 404
    assert (await claims.delete(f"/v1/webhook-endpoints/{ident}", headers=other)).status_code == 404
    assert (
        ok(await claims.get(f"/v1/webhook-endpoints/{ident}", headers=HANDLER), 200)["id"] == ident
    )
    assert ok(await claims.get("/v1/webhook-endpoints", headers=other), 200)["items"] == []
    filtered = ok(await claims.get(f"/v1/webhook-endpoints?party_id={owner}", headers=HANDLER), 200)
    assert [e["id"] for e in filtered["items"]] == [ident]
    peeking = await claims.get(f"/v1/webhook-endpoints?party_id={owner}", headers=other)
    assert ok(peeking, 200)["items"] == []
    assert (
        await claims.delete(f"/v1/webhook-endpoints/{ident}", headers=holder)
    ).status_code == 204
    assert (await claims.get(f"/v1/webhook-endpoints/{ident}", headers=holder)).status_code == 404


async def test_staff_register_for_the_party_they_name_and_a_party_only_for_itself(
    api: Any, receiver: tuple[str, Path]
) -> None:
    collections = await api.open("collections")
    party = unique("bank")
    body = {"url": f"{receiver[0]}/staff", "event_types": ["case.closed"]}
    collector = auth("collector")
    nameless = await collections.post("/v1/webhook-endpoints", headers=collector, json=body)
    assert nameless.status_code == 422 and nameless.json()["errors"][0]["loc"] == [
        "body",
        "party_id",
    ]
    roleless = await collections.post("/v1/webhook-endpoints", headers=collector,
                                      json={**body, "party_id": party})  # fmt: skip
    assert roleless.status_code == 422 and roleless.json()["errors"][0]["loc"] == [
        "body", "party_role"]  # fmt: skip
    made = ok(await collections.post("/v1/webhook-endpoints", headers=collector,
                                     json={**body, "party_role": "bank", "party_id": party}), 201)  # fmt: skip
    assert (made["party_role"], made["party_id"], made["created_by"] != "") == ("bank", party, True)
    bank = auth("bank", party)
    assert ok(await collections.get(f"/v1/webhook-endpoints/{made['id']}", headers=bank), 200)
    posing = await collections.post("/v1/webhook-endpoints", headers=bank,
                                    json={**body, "party_id": unique("bank")})  # fmt: skip
    assert posing.status_code == 422 and posing.json()["errors"][0]["loc"] == ["body", "party_id"]
    own = await collections.post("/v1/webhook-endpoints", headers=bank,
                                 json={**body, "party_id": party})  # fmt: skip
    assert ok(own, 201)["party_id"] == party


async def test_a_test_message_is_signed_posted_at_once_and_listed_in_the_deliveries(
    api: Any, receiver: tuple[str, Path]
) -> None:
    base, directory = receiver
    underwriting = await api.open("underwriting")
    holder = auth("policyholder", unique("ph"))
    path = f"/{unique('test')}"
    made = ok(await underwriting.post("/v1/webhook-endpoints", headers=holder, json={
        "url": base + path, "event_types": ["limit.changed"]}), 201)  # fmt: skip
    webhook_receiver.configure(directory, path, made["secret"])
    first = ok(await underwriting.post(f"/v1/webhook-endpoints/{made['id']}/test",
                                       headers=holder), 200)  # fmt: skip
    webhook_receiver.configure(directory, path, made["secret"], status=500, body="no\x00 room")
    second = ok(await underwriting.post(f"/v1/webhook-endpoints/{made['id']}/test",
                                        headers=holder), 200)  # fmt: skip
    assert (first["delivered"], first["status_code"], first["error"]) == (True, 204, None)
    assert (second["delivered"], second["status_code"]) == (False, 500)
    assert second["error"] == "answered 500: no\ufffd room"  # a NUL is not stored as text
    arrived = [r for r in webhook_receiver.received(directory) if r.path == path]
    assert [(r.webhook_id, r.type) for r in arrived] == [(first["event_id"], "webhook.test")]
    url = f"/v1/webhook-endpoints/{made['id']}/deliveries"
    page = ok(await underwriting.get(f"{url}?limit=1", headers=holder), 200)
    rest = ok(await underwriting.get(f"{url}?limit=1&cursor={page['next_cursor']}",
                                     headers=holder), 200)  # fmt: skip
    assert [a["id"] for a in page["items"] + rest["items"]] == [first["id"], second["id"]]
    assert rest["next_cursor"] is None
    # Every object carries its id and created_at (api.md): an attempt is recorded as it is made.
    assert [a["created_at"] for a in page["items"] + rest["items"]] == [
        first["attempted_at"], second["attempted_at"]]  # fmt: skip
    assert first["created_at"] == first["attempted_at"]


# ---------------------------------------------------------------- retries


def test_the_default_backoff_keeps_retrying_for_more_than_24_hours() -> None:
    settings = Settings()
    start = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    for jitter in (0.0, 0.999):
        now, attempts = start, 0
        while True:
            attempts += 1
            retry = next_retry(attempts, start, now, settings, jitter)
            if retry is None:
                break
            assert retry - now <= dt.timedelta(seconds=settings.webhook_max_backoff_seconds)
            now = retry
        assert now - start >= dt.timedelta(hours=24), (jitter, now - start)
        assert 20 <= attempts <= 200, attempts


def test_the_backoff_doubles_up_to_its_cap_and_jitter_takes_at_most_half() -> None:
    delays = [retry_delay(n, base=5, cap=3600, jitter=0) for n in range(1, 14)]
    assert delays[:4] == [5, 10, 20, 40] and delays[-1] == 3600
    assert retry_delay(3, base=5, cap=3600, jitter=0.999) >= 10
    assert retry_delay(500, base=5, cap=3600, jitter=0) == 3600  # no overflow


# ---------------------------------------------------------------- the dispatcher


async def test_the_dispatcher_delivers_the_endpoints_types_in_order_signed_and_skips_the_rest(
    committed: async_sessionmaker[AsyncSession], receiver: tuple[str, Path]
) -> None:
    base, directory = receiver
    party, path, settings = unique("ph"), f"/{unique('order')}", fast()
    await announce(committed, party, "claim.paid")  # before the endpoint: in the feed only
    made = await register(committed, party, base + path, ["claim.paid"], settings)
    webhook_receiver.configure(directory, path, made["secret"])
    ids = await announce(committed, party, "claim.paid", "claim.status_changed", "claim.paid",
                         "claim.status_changed", "claim.paid")  # fmt: skip
    await announce(committed, unique("ph"), "claim.paid")  # another party's
    while await hooks.dispatch_once(committed, settings):
        pass
    arrived = [r.webhook_id for r in webhook_receiver.received(directory) if r.path == path]
    assert arrived == [ids[0], ids[2], ids[4]]
    assert [r for r in webhook_receiver.rejected(directory) if r[0] == path] == []
    row = await endpoint_row(committed, made["id"])
    assert (row.status, row.lease_owner, row.head_attempts) == ("active", None, 0)
    async with committed() as session:
        assert row.after_seq == max(e.seq for e in await hooks.events_after(
            session, policyholder(party), 0, 100))  # the trailing skipped event is passed too  # fmt: skip
    attempts = await attempts_of(committed, made["id"])
    assert [(a.event_id, a.status_code, a.attempt) for a in attempts] == [
        (ids[0], 204, 1), (ids[2], 204, 1), (ids[4], 204, 1)]  # fmt: skip


async def test_a_410_disables_the_endpoint_and_nothing_more_is_posted(
    committed: async_sessionmaker[AsyncSession], receiver: tuple[str, Path]
) -> None:
    base, directory = receiver
    party, path, settings = unique("ph"), f"/{unique('gone')}", fast()
    made = await register(committed, party, base + path, ["claim.paid"], settings)
    webhook_receiver.configure(directory, path, made["secret"], status=410)
    ids = await announce(committed, party, "claim.paid", "claim.paid")
    while await hooks.dispatch_once(committed, settings):
        pass
    row = await endpoint_row(committed, made["id"])
    assert row.status == "disabled" and f"410 Gone to {ids[0]}" in row.disabled_reason
    assert [(a.event_id, a.status_code) for a in await attempts_of(committed, made["id"])] == [
        (ids[0], 410)]  # fmt: skip
    assert await hooks.dispatch_once(committed, settings) == 0


async def test_a_failing_head_event_holds_the_endpoint_until_the_span_then_it_is_failing(
    committed: async_sessionmaker[AsyncSession], receiver: tuple[str, Path]
) -> None:
    base, directory = receiver
    party, path = unique("ph"), f"/{unique('failing')}"
    settings = fast(webhook_retry_span_seconds=0.3)
    made = await register(committed, party, base + path, ["claim.paid"], settings)
    webhook_receiver.configure(directory, path, made["secret"], status=503)
    ids = await announce(committed, party, "claim.paid", "claim.paid")
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    while (row := await endpoint_row(committed, made["id"])).status == "active":
        assert dt.datetime.now(dt.UTC) < deadline
        await hooks.dispatch_once(committed, settings)
    attempts = await attempts_of(committed, made["id"])
    assert row.status == "failing" and f"{ids[0]} not delivered in" in row.disabled_reason
    assert {a.event_id for a in attempts} == {ids[0]}  # the later event never overtook it
    assert [a.attempt for a in attempts] == list(range(1, len(attempts) + 1))
    assert len(attempts) >= 2 and attempts[-1].attempted_at - attempts[0].attempted_at >= (
        dt.timedelta(seconds=0.3))  # fmt: skip
    assert await hooks.dispatch_once(committed, settings) == 0  # failing: left alone
    # The receiver is back; a successful test makes the endpoint active and its events go out.
    webhook_receiver.configure(directory, path, made["secret"])
    async with committed() as session:
        test = await hooks.test(session, STAFF, made["id"], settings)
        await session.commit()
    assert test.delivered
    while await hooks.dispatch_once(committed, settings):
        pass
    arrived = [r.webhook_id for r in webhook_receiver.received(directory) if r.path == path]
    assert arrived == [test.event_id, *ids]
    assert (await endpoint_row(committed, made["id"])).status == "active"


async def test_a_receiver_that_is_down_is_retried_and_the_event_waits_for_it(
    committed: async_sessionmaker[AsyncSession], receiver: tuple[str, Path]
) -> None:
    party, settings = unique("ph"), fast()
    made = await register(committed, party, f"http://127.0.0.1:{_port()}/down", ["claim.paid"],
                          settings)  # fmt: skip
    await announce(committed, party, "claim.paid")
    await hooks.dispatch_once(committed, settings)
    row = await endpoint_row(committed, made["id"])
    (attempt,) = await attempts_of(committed, made["id"])
    assert (attempt.status_code, row.status, row.head_attempts) == (None, "active", 1)
    assert "ConnectError" in attempt.error and row.next_attempt_at > attempt.attempted_at
    assert row.after_seq < attempt.event_seq and row.lease_owner is None


def test_every_service_announces_its_own_types() -> None:
    assert hooks.event_types == CLAIMS_EVENT_TYPES == ("claim.status_changed", "claim.paid")


async def test_a_run_whose_lease_ran_out_and_was_taken_over_posts_and_records_nothing_more(
    committed: async_sessionmaker[AsyncSession], receiver: tuple[str, Path]
) -> None:
    base, directory = receiver
    party, path, settings = unique("ph"), f"/{unique('stale')}", fast()
    made = await register(committed, party, base + path, ["claim.paid"], settings)
    webhook_receiver.configure(directory, path, made["secret"])
    await announce(committed, party, "claim.paid", "claim.paid")
    owner = "lease_stale_run"
    (claimed,) = [e for e in await hooks._claim(committed, owner, 100, settings)
                  if e["id"] == made["id"]]  # fmt: skip
    run = _Run(hooks, committed, claimed, owner, settings, leased_at=0.0)  # long run out
    async with committed() as session:  # another dispatcher took the endpoint over meanwhile
        table = hooks.tables.endpoints
        await session.execute(table.update().where(table.c.id == made["id"])
                              .values(lease_owner="lease_other_run"))  # fmt: skip
        await session.commit()
    await hooks._serve(run)
    assert [r for r in webhook_receiver.received(directory) if r.path == path] == []
    assert await attempts_of(committed, made["id"]) == []
    row = await endpoint_row(committed, made["id"])
    assert (row.lease_owner, row.after_seq) == ("lease_other_run", claimed["after_seq"])


async def test_runs_stopped_at_random_points_never_post_an_event_before_the_one_before_is_recorded(
    committed: async_sessionmaker[AsyncSession], receiver: tuple[str, Path]
) -> None:
    """A dispatcher run cancelled at random points (a stop: its tasks are cancelled), again and
    again, until every event is recorded delivered: on the wire an event goes out again only
    right after itself (N, N, N+1), and each is recorded delivered once (a mark cut off by the
    stop may have committed: giving the lease back must not move the endpoint back behind it)."""
    base, directory = receiver
    party, path = unique("ph"), f"/{unique('stopped')}"
    settings = fast(webhook_timeout_seconds=1.0, webhook_lease_seconds=3.0)
    made = await register(committed, party, base + path, ["claim.paid"], settings)
    webhook_receiver.configure(directory, path, made["secret"])
    ids = await announce(committed, party, *["claim.paid"] * 40)
    async with committed() as session:
        last = max(e.seq for e in await hooks.events_after(session, policyholder(party), 0, 100))
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    deadline = time.monotonic() + 90
    while (await endpoint_row(committed, made["id"])).after_seq < last:  # not all recorded yet
        assert time.monotonic() < deadline, f"not all delivered (seed {seed})"
        owner, leased_at = new_id("lease"), time.monotonic()
        claimed = [e for e in await hooks._claim(committed, owner, 100, settings)
                   if e["id"] == made["id"]]  # fmt: skip
        if not claimed:
            await asyncio.sleep(0.05)
            continue
        serving = asyncio.ensure_future(
            hooks._serve(_Run(hooks, committed, claimed[0], owner, settings, leased_at))
        )
        await asyncio.sleep(rng.uniform(0, 0.03))
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    wire = [ids.index(r.webhook_id) for r in webhook_receiver.received(directory) if r.path == path]
    assert wire == sorted(wire), f"out of order on the wire (seed {seed}): {wire}"
    attempts = await attempts_of(committed, made["id"])
    delivered = [a.event_id for a in attempts if a.status_code and 200 <= a.status_code < 300]
    assert sorted(delivered) == sorted(ids), f"not each recorded delivered once (seed {seed})"


# ---------------------------------------------------------------- a party is its role and its id

SERVICE_TYPES = {"underwriting": "limit.changed", "claims": "claim.paid",
                 "collections": "case.closed"}  # fmt: skip


@pytest.mark.parametrize("service", sorted(SERVICE_TYPES))
async def test_a_token_of_another_role_carrying_the_owners_id_gets_the_missing_ids_404(
    api: Any, receiver: tuple[str, Path], service: str
) -> None:
    """A bank's token carrying a policyholder's id is not that policyholder (nor the other way
    round): it reads, tests and deletes none of its endpoints, as a stranger."""
    client = await api.open(service)
    party = unique("ph")
    body = {"url": f"{receiver[0]}/roles", "event_types": [SERVICE_TYPES[service]]}
    for owner_role, posing_role in (("policyholder", "bank"), ("bank", "policyholder")):
        owner, posing = auth(owner_role, party), auth(posing_role, party)
        made = ok(await client.post("/v1/webhook-endpoints", headers=owner, json=body), 201)
        assert (made["party_role"], made["party_id"]) == (owner_role, party)
        ident = made["id"]
        missing = f"whe_{'0' * (len(ident) - 4)}"
        for suffix in ("", "/deliveries"):
            theirs = await client.get(f"/v1/webhook-endpoints/{ident}{suffix}", headers=posing)
            nobody = await client.get(f"/v1/webhook-endpoints/{missing}{suffix}", headers=posing)
            assert theirs.status_code == nobody.status_code == 404, theirs.text
            assert theirs.content.replace(ident.encode(), missing.encode()) == nobody.content
        tested = await client.post(f"/v1/webhook-endpoints/{ident}/test", headers=posing)
        assert tested.status_code == 404, tested.text
        deleted = await client.delete(f"/v1/webhook-endpoints/{ident}", headers=posing)
        assert deleted.status_code == 404, deleted.text
        assert ok(await client.get("/v1/webhook-endpoints", headers=posing), 200)["items"] == []
        # The owner still has it, and staff see it, by role and id.
        assert ok(await client.get(f"/v1/webhook-endpoints/{ident}", headers=owner), 200)
        listed = ok(await client.get("/v1/webhook-endpoints", headers=owner), 200)["items"]
        assert [e["id"] for e in listed] == [ident]
        staff = await client.get("/v1/webhook-endpoints", headers=HANDLER,
                                 params={"party_id": party, "party_role": owner_role})  # fmt: skip
        assert [e["id"] for e in ok(staff, 200)["items"]] == [ident]
        assert (await client.delete(f"/v1/webhook-endpoints/{ident}", headers=owner)
                ).status_code == 204  # fmt: skip


async def test_a_party_registers_only_in_its_own_role(api: Any, receiver: tuple[str, Path]) -> None:
    claims = await api.open("claims")
    party = unique("bank")
    body = {"url": f"{receiver[0]}/own-role", "event_types": ["claim.paid"]}
    posing = await claims.post("/v1/webhook-endpoints", headers=auth("bank", party),
                               json={**body, "party_role": "policyholder"})  # fmt: skip
    assert posing.status_code == 422 and posing.json()["errors"][0]["loc"] == [
        "body", "party_role"]  # fmt: skip
    own = await claims.post("/v1/webhook-endpoints", headers=auth("bank", party),
                            json={**body, "party_role": "bank"})  # fmt: skip
    assert ok(own, 201)["party_role"] == "bank"


async def test_the_dispatcher_delivers_a_partys_events_to_its_role_only(
    committed: async_sessionmaker[AsyncSession], receiver: tuple[str, Path]
) -> None:
    """An event a policyholder hears reaches the policyholder's endpoint, not the endpoint of a
    bank of the same id; and the other way round."""
    base, directory = receiver
    party, settings = unique("ph"), fast()
    made: dict[str, dict[str, Any]] = {}
    for role in ("policyholder", "bank"):
        path = f"/{unique(role)}"
        async with committed() as session:
            made[role] = (await hooks.register(session, STAFF, WebhookEndpointCreate(
                url=base + path, event_types=["claim.paid"], party_role=role, party_id=party),
                settings)).model_dump()  # fmt: skip
            await session.commit()
        made[role]["path"] = path
        webhook_receiver.configure(directory, path, made[role]["secret"])
    heard: dict[str, list[str]] = {}
    for role in ("policyholder", "bank"):
        async with committed() as session:
            heard[role] = [await record_event(session, hooks.events, type="claim.paid",
                                              subject_id="clm_test", data={"role": role},
                                              parties=[Party(role, party)])]  # fmt: skip
            await session.commit()
    while await hooks.dispatch_once(committed, settings):
        pass
    for role in ("policyholder", "bank"):
        arrived = [r.webhook_id for r in webhook_receiver.received(directory)
                   if r.path == made[role]["path"]]  # fmt: skip
        assert arrived == heard[role], role
