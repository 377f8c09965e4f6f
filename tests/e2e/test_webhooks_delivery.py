"""Webhook delivery end to end (issue 11): the services as real processes post the events of their
endpoints to a receiver process on loopback (tests/webhook_receiver.py) that verifies every
signature with `standardwebhooks` and records each `webhook-id` it accepts.

- every type, 100 events each: each event reaches each endpoint that hears of it, once after
  deduplication by id, in `seq` order, signed;
- the receiver killed with SIGKILL mid-run and started again later: still every event, in order;
- the dispatcher (the service process) killed with SIGKILL mid-run and started again: the same;
- two replicas on one database: no event is delivered twice in the attempts log;
- two replicas stopped again and again at random points while they post (mostly SIGKILL, now and
  then SIGTERM) and started again at once: each endpoint's events are posted again only from the
  first one not recorded, never a later one before it; no event is recorded delivered twice.

The events are written with `record_event` into the committed test database (as a use case writes
them). Duplicates on the wire (a message the receiver recorded whose answer was lost) are counted
and printed; run with `-s` to see the figures."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine, make_url

from services.claims.main import hooks as claims_hooks
from services.collections.main import hooks as collections_hooks
from services.underwriting.main import hooks as underwriting_hooks
from shared.db import build_engine, build_sessionmaker
from shared.events import Party, record_event
from tests import webhook_receiver
from tests.conftest import (
    Running,
    auth,
    backend,
    create_migrated_database,
    free_urls,
    start_services,
    unique,
    wait_ready,
)
from tests.replicas import RoundRobinProxy

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

HOOKS = {"underwriting": underwriting_hooks, "claims": claims_hooks,
         "collections": collections_hooks}  # fmt: skip
PER_TYPE = 100
# Fast polls and retries. A lease long enough that a loaded machine never lets one run outlive
# it (the dispatcher kill test shortens it: a killed dispatcher's endpoints are free sooner).
ENV = {"TCI_WEBHOOK_POLL_SECONDS": "0.05", "TCI_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
       "TCI_WEBHOOK_MAX_BACKOFF_SECONDS": "0.5", "TCI_WEBHOOK_TIMEOUT_SECONDS": "2",
       "TCI_WEBHOOK_LEASE_SECONDS": "20", "TCI_OUTBOX_INTERVAL_SECONDS": "60"}  # fmt: skip
FIGURES: list[str] = []


@dataclass
class World:
    database: str
    receiver_dir: Path
    receiver_port: int
    receiver: Any

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    def restart_receiver(self) -> None:
        self.receiver = webhook_receiver.start(self.receiver_dir, self.receiver_port)


@dataclass
class Endpoint:
    service: str
    party: str
    path: str
    id: str
    types: frozenset[str]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A committed database with the three schemas, and the receiver process."""
    b = backend()
    name = f"{b.main_database}_webhooks_{os.getpid()}"
    create_migrated_database(b, name)
    directory = Path(tempfile.mkdtemp(prefix="tci-webhooks-e2e-"))
    port = _port()
    w = World(name, directory, port, webhook_receiver.start(directory, port))
    try:
        yield w
    finally:
        w.receiver.kill()
        w.receiver.wait()
        b.drop_database(name)
        for line in FIGURES:
            print(f"\nwebhooks e2e: {line}")


def register(urls: dict[str, str], w: World, service: str, party: str, role: str,
             types: Sequence[str]) -> Endpoint:  # fmt: skip
    path = f"/{service}/{party}"
    answer = httpx.post(f"{urls[service]}/v1/webhook-endpoints", headers=auth(role, party),
                        json={"url": w.receiver_url + path, "event_types": list(types)})  # fmt: skip
    assert answer.status_code == 201, answer.text
    made = answer.json()
    webhook_receiver.configure(w.receiver_dir, path, made["secret"])
    return Endpoint(service, party, path, made["id"], frozenset(types))


def write_events(
    database: str, service: str, plan: Sequence[tuple[str, Sequence[str]]], batch: int = 50,
    pause: float = 0.0,
) -> list[tuple[str, str, frozenset[str]]]:  # fmt: skip
    """Commit one event per (type, parties) of the plan, `batch` to a transaction, in order;
    each event's id, type and parties."""
    hooks = HOOKS[service]

    async def run() -> list[tuple[str, str, frozenset[str]]]:
        engine = build_engine(backend().url_for(database, service))
        sessions = build_sessionmaker(engine)
        written: list[tuple[str, str, frozenset[str]]] = []
        try:
            for start in range(0, len(plan), batch):
                async with sessions() as session:
                    for kind, parties in plan[start : start + batch]:
                        # The plans' parties are "ph-…" (policyholders) and "bank-…" (banks).
                        heard = [Party("bank" if p.startswith("bank") else "policyholder", p)
                                 for p in parties]  # fmt: skip
                        ident = await record_event(session, hooks.events, type=kind,
                                                   subject_id="e2e", data={"n": len(written)},
                                                   parties=heard)  # fmt: skip
                        written.append((ident, kind, frozenset(parties)))
                    await session.commit()
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await engine.dispose()
        return written

    return asyncio.run(run())


def expected_for(
    endpoint: Endpoint, written: Sequence[tuple[str, str, frozenset[str]]]
) -> list[str]:
    return [
        i for i, kind, parties in written if endpoint.party in parties and kind in endpoint.types
    ]


def wait_for(w: World, endpoints: Sequence[Endpoint], expected: dict[str, list[str]],
             seconds: float = 90) -> None:  # fmt: skip
    deadline = time.monotonic() + seconds
    while True:
        got = collections.defaultdict(set)
        for record in webhook_receiver.received(w.receiver_dir):
            got[record.path].add(record.webhook_id)
        missing = {e.path: len(set(expected[e.path]) - got[e.path]) for e in endpoints}
        if not any(missing.values()):
            return
        assert time.monotonic() < deadline, f"still missing after {seconds}s: {missing}"
        time.sleep(0.1)


def check_arrivals(w: World, endpoints: Sequence[Endpoint], expected: dict[str, list[str]]) -> int:
    """Every endpoint got each of its events after deduplication, and on the wire never an older
    event after a newer one (a resent one right after itself at most); no signature failed. The
    number of duplicates on the wire."""
    records = webhook_receiver.received(w.receiver_dir)
    duplicates = 0
    for endpoint in endpoints:
        want = expected[endpoint.path]
        position = {ident: n for n, ident in enumerate(want)}
        wire = [r.webhook_id for r in records if r.path == endpoint.path]
        assert set(wire) == set(want), endpoint.path
        order = [position[ident] for ident in wire]
        assert order == sorted(order), f"{endpoint.path}: out of order on the wire"
        duplicates += len(wire) - len(want)
    refused = [r for r in webhook_receiver.rejected(w.receiver_dir) if "signature" in r[2]]
    assert refused == []
    return duplicates


def sync_engine(w: World, service: str) -> Engine:
    url = make_url(backend().url_for(w.database, service)).set(drivername="postgresql+psycopg")
    return create_engine(url)


def attempts_log(w: World, endpoints: Sequence[Endpoint]) -> tuple[int, int, dict[str, Any]]:
    """Attempts made and 2xx attempts for these endpoints, and any (endpoint, event) with more
    than one 2xx attempt (none may have)."""
    total = delivered = 0
    twice: dict[str, Any] = {}
    for service in {e.service for e in endpoints}:
        table = HOOKS[service].tables.attempts
        ids = [e.id for e in endpoints if e.service == service]
        engine = sync_engine(w, service)
        with engine.connect() as connection:
            total += connection.execute(
                select(func.count()).where(table.c.endpoint_id.in_(ids))).scalar_one()  # fmt: skip
            ok = table.c.status_code.between(200, 299)
            rows = connection.execute(
                select(table.c.endpoint_id, table.c.event_id, func.count())
                .where(table.c.endpoint_id.in_(ids), ok)
                .group_by(table.c.endpoint_id, table.c.event_id)
            ).all()
        engine.dispose()
        delivered += sum(n for _, _, n in rows)
        twice.update({f"{e}/{v}": n for e, v, n in rows if n > 1})
    return total, delivered, twice


def kill(running: Running, service: str) -> None:
    """SIGKILL the service's processes (no shutdown: leases stay taken until they run out)."""
    for name, log, process in running.processes:
        if name == service:
            process.kill()
            process.wait()
            log.close()
    running.processes = [p for p in running.processes if p[0] != service]


# ---------------------------------------------------------------- the tests


def test_each_of_100_events_of_every_type_reaches_each_endpoint_once_in_order_signed(
    world: World,
) -> None:
    urls = free_urls()
    running = start_services(world.database, urls, env=ENV)
    try:
        holder, bank = unique("ph"), unique("bank")
        endpoints = [register(urls, world, s, holder, "policyholder", HOOKS[s].event_types)
                     for s in HOOKS]  # fmt: skip
        endpoints.append(register(urls, world, "underwriting", bank, "bank",
                                  ["limit.changed", "stop_shipment.started"]))  # fmt: skip
        expected: dict[str, list[str]] = {}
        for service, hooks in HOOKS.items():
            # Round robin over the types; the bank hears of the limit and stop-shipment events.
            plan = [(kind, [holder, bank] if kind.startswith(("limit.", "stop_")) else [holder])
                    for _ in range(PER_TYPE) for kind in hooks.event_types]  # fmt: skip
            written = write_events(world.database, service, plan)
            for endpoint in endpoints:
                if endpoint.service == service:
                    expected[endpoint.path] = expected_for(endpoint, written)
        assert [len(expected[e.path]) for e in endpoints] == [500, 200, 300, 200]
        started = time.monotonic()
        wait_for(world, endpoints, expected)
        took = time.monotonic() - started
    finally:
        running.stop()
    duplicates = check_arrivals(world, endpoints, expected)
    total, delivered, twice = attempts_log(world, endpoints)
    assert twice == {} and delivered == 1200
    FIGURES.append(f"every type x {PER_TYPE}: 1,200 deliveries to 4 endpoints of 3 services in "
                   f"{took:.1f}s after the last commit; {total} attempts, {delivered} 2xx, "
                   f"{duplicates} duplicates on the wire, lost 0")  # fmt: skip


def _stream(world: World, service: str, parties: Sequence[str], events: int) -> tuple[
        threading.Thread, list[tuple[str, str, frozenset[str]]]]:  # fmt: skip
    """Write `events` claim events per party in the background, 10 to a transaction with a pause
    between them, so that a kill lands mid-run."""
    written: list[tuple[str, str, frozenset[str]]] = []
    kinds = HOOKS[service].event_types
    plan = [(kinds[n % len(kinds)], [p]) for n in range(events) for p in parties]

    def run() -> None:
        written.extend(write_events(world.database, service, plan, batch=10, pause=0.02))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, written


def _arrived(world: World, paths: set[str]) -> int:
    return len({r.webhook_id for r in webhook_receiver.received(world.receiver_dir)
                if r.path in paths})  # fmt: skip


def _when_arrived(world: World, paths: set[str], count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while _arrived(world, paths) < count:
        assert time.monotonic() < deadline, f"{_arrived(world, paths)} of {count} arrived"
        time.sleep(0.02)


def test_a_receiver_killed_mid_run_and_started_again_later_still_gets_every_event_in_order(
    world: World,
) -> None:
    urls = free_urls()
    running = start_services(world.database, urls, only=["claims"], env=ENV)
    try:
        parties = [unique("ph") for _ in range(2)]
        endpoints = [register(urls, world, "claims", p, "policyholder", ["claim.status_changed",
                                                                         "claim.paid"])
                     for p in parties]  # fmt: skip
        thread, written = _stream(world, "claims", parties, 150)
        _when_arrived(world, {e.path for e in endpoints}, 100)
        world.receiver.kill()  # SIGKILL, mid-run
        world.receiver.wait()
        at_kill = _arrived(world, {e.path for e in endpoints})
        time.sleep(2.0)  # the dispatcher meets refused connections and backs off meanwhile
        world.restart_receiver()
        thread.join()
        expected = {e.path: expected_for(e, written) for e in endpoints}
        wait_for(world, endpoints, expected)
    finally:
        running.stop()
    duplicates = check_arrivals(world, endpoints, expected)
    total, delivered, twice = attempts_log(world, endpoints)
    assert twice == {} and delivered == 300 and at_kill < 300
    FIGURES.append(f"receiver SIGKILLed after {at_kill} of 300 events, restarted 2 s later: "
                   f"300 of 300 arrived in order; {total} attempts ({total - delivered} failed "
                   f"while it was down), {duplicates} duplicates on the wire, lost 0")  # fmt: skip


def test_a_dispatcher_killed_mid_run_and_started_again_delivers_every_event_in_order(
    world: World,
) -> None:
    urls = free_urls()
    env = {**ENV, "TCI_WEBHOOK_LEASE_SECONDS": "4"}
    running = start_services(world.database, urls, only=["claims"], env=env)
    try:
        parties = [unique("ph") for _ in range(2)]
        endpoints = [register(urls, world, "claims", p, "policyholder", ["claim.status_changed",
                                                                         "claim.paid"])
                     for p in parties]  # fmt: skip
        thread, written = _stream(world, "claims", parties, 150)
        _when_arrived(world, {e.path for e in endpoints}, 100)
        kill(running, "claims")  # SIGKILL, mid-run: its leases stay taken until they run out
        at_kill = _arrived(world, {e.path for e in endpoints})
        time.sleep(1.0)
        start_services(world.database, urls, only=["claims"], env=env, running=running)
        thread.join()
        expected = {e.path: expected_for(e, written) for e in endpoints}
        wait_for(world, endpoints, expected)
    finally:
        running.stop()
    duplicates = check_arrivals(world, endpoints, expected)
    total, delivered, twice = attempts_log(world, endpoints)
    assert twice == {} and delivered == 300 and at_kill < 300
    FIGURES.append(f"dispatcher SIGKILLed after {at_kill} of 300 events, restarted: 300 of 300 "
                   f"arrived in order; {total} attempts, {duplicates} duplicates on the wire, "
                   "lost 0")  # fmt: skip


def test_two_replicas_on_one_database_deliver_no_event_twice_in_the_attempts_log(
    world: World,
) -> None:
    first, second = free_urls(), free_urls()
    env = {**ENV, "TCI_WEBHOOK_BATCH_SIZE": "2"}  # each replica serves 2 endpoints at a time
    running = start_services(world.database, first, only=["claims"], env=env)
    start_services(world.database, second, only=["claims"], env=env, running=running)
    try:
        parties = [unique("ph") for _ in range(6)]
        endpoints = [register(urls, world, "claims", p, "policyholder", ["claim.status_changed",
                                                                         "claim.paid"])
                     for p, urls in zip(parties, [first, second] * 3, strict=True)]  # fmt: skip
        plan = [(("claim.paid", "claim.status_changed")[n % 2], [p])
                for n in range(PER_TYPE) for p in parties]  # fmt: skip
        written = write_events(world.database, "claims", plan)
        expected = {e.path: expected_for(e, written) for e in endpoints}
        wait_for(world, endpoints, expected)
        time.sleep(1.0)  # a late second delivery would have arrived by now
    finally:
        running.stop()
    duplicates = check_arrivals(world, endpoints, expected)
    total, delivered, twice = attempts_log(world, endpoints)
    assert twice == {} and delivered == 600 and total == 600
    assert duplicates == 0
    FIGURES.append(f"two replicas, 6 endpoints x 100 events: {total} attempts, {delivered} 2xx, "
                   f"none twice; {duplicates} duplicates on the wire")  # fmt: skip


# The crash test: how often a replica is stopped, the events each party gets before each stop,
# and how far away (each way) the database is: a few ms, as on a host of its own.
STOPS = 10
BURST = 40
DATABASE_LATENCY = 0.002


def _stopped(replicas: Sequence[Running], seconds: float = 60) -> int:
    """Wait until the process of one of the replicas has ended (the receiver stopped it: killed,
    or stopped cleanly on SIGTERM; a replica that could not start fails the test), forget it, and
    say which replica it was."""
    deadline = time.monotonic() + seconds
    while True:
        for index, running in enumerate(replicas):
            (_, log, process), *_ = running.processes
            if process.poll() is not None:
                log.close()
                running.processes = []
                output = (running.log_dir / "claims.log").read_text(errors="replace")
                assert process.returncode in (0, -signal.SIGKILL, -signal.SIGTERM), output[-3000:]
                return index
        assert time.monotonic() < deadline, "no replica was stopped"
        time.sleep(0.02)


def test_replicas_stopped_at_random_points_post_again_only_from_the_first_unrecorded_event(
    world: World,
) -> None:
    """Two replicas share four endpoints (two each at a time). `STOPS` times a burst of events is
    committed for every party, and the replica posting to one endpoint, at random, is stopped
    (SIGKILL mostly, now and then SIGTERM) by the receiver at a random point of its posting: as
    a message is recorded, before it is answered, or a few ms later; then it starts again. The replicas reach
    the database through a proxy that delays it by `DATABASE_LATENCY`. On the wire no
    endpoint ever gets an event before the one before it is recorded: a stop between a post and
    its record makes that event go out again, right after itself (N, N, N+1), never N, N+1, N;
    and no event is recorded delivered twice."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    print(f"crash order test: random seed {seed}")
    # A SIGKILLed replica's endpoints wait for its lease to run out before the other takes them:
    # a lease of 3 s (a post starts only while the timeout and a second are left of it, and each
    # recorded event renews it) keeps those waits short; 5 s made them most of the test's time.
    env = {**ENV, "TCI_WEBHOOK_LEASE_SECONDS": "3", "TCI_WEBHOOK_TIMEOUT_SECONDS": "1",
           "TCI_WEBHOOK_BATCH_SIZE": "2"}  # fmt: skip
    database = make_url(backend().url_for(world.database, "claims"))
    proxy = RoundRobinProxy("database", [(str(database.host), database.port or 5432)],
                            latency=DATABASE_LATENCY).start()  # fmt: skip
    far = {"claims": database.set(host="127.0.0.1", port=proxy.port).render_as_string(False)}

    def replica(urls: dict[str, str]) -> Running:
        """A replica started, not waited for: it joins the others once it is up, while the
        endpoints of one killed wait for its lease to run out (its start and that wait overlap)."""
        return start_services(world.database, urls, only=["claims"], env=env, database_urls=far,
                              ready=False)  # fmt: skip

    urls, second = free_urls(), free_urls()
    replicas = [replica(urls)]
    stops: collections.Counter[str] = collections.Counter()
    try:
        replicas.append(replica(second))
        wait_ready(replicas[0], urls, ["claims"])
        wait_ready(replicas[1], second, ["claims"])
        parties = [unique("ph") for _ in range(4)]
        endpoints = [register(urls, world, "claims", p, "policyholder", ["claim.status_changed",
                                                                         "claim.paid"])
                     for p in parties]  # fmt: skip
        kinds = HOOKS["claims"].event_types
        written: list[tuple[str, str, frozenset[str]]] = []
        for _ in range(STOPS):
            how = signal.SIGTERM if rng.random() < 0.25 else signal.SIGKILL
            webhook_receiver.kill_on(
                world.receiver_dir, rng.choice(endpoints).path,
                [r.processes[0][2].pid for r in replicas], after=rng.randint(1, BURST // 2),
                how=how, delay_ms=rng.choice([0, 0, rng.randint(1, 30)]),
            )  # fmt: skip
            plan = [(kinds[n % len(kinds)], [p]) for n in range(BURST) for p in parties]
            written += write_events(world.database, "claims", plan)
            victim = _stopped(replicas)
            stops[how.name] += 1
            replicas[victim] = replica(free_urls())
        expected = {e.path: expected_for(e, written) for e in endpoints}
        wait_for(world, endpoints, expected)
        deadline = time.monotonic() + 60  # the last stop may have cut a record: its resend
        while attempts_log(world, endpoints)[1] < len(written):
            assert time.monotonic() < deadline, f"not all recorded (seed {seed})"
            time.sleep(0.2)
        time.sleep(0.5)  # a late resend would have arrived by now
    finally:
        for running in replicas:
            running.stop()
        proxy.stop()
    duplicates = check_arrivals(world, endpoints, expected)
    total, delivered, twice = attempts_log(world, endpoints)
    assert twice == {}, f"recorded delivered twice (seed {seed})"
    assert delivered == len(written)
    FIGURES.append(f"two replicas stopped {STOPS} times at random points ({dict(stops)}) while "
                   f"posting {len(written)} events to 4 endpoints: each in order on the wire, "
                   f"{duplicates} resent right after themselves, {total} attempts, none "
                   "recorded delivered twice")  # fmt: skip
