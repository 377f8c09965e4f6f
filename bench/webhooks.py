"""Webhook delivery benchmark: starts the claims service (one uvicorn worker, its dispatcher) and the
test receiver (tests/webhook_receiver.py, verifying every signature) on loopback, registers webhook
endpoints, commits 10,000 events at once for them, and prints the events delivered per second and
the lag from each event's commit to its arrival (p50/p99); then the lag at a steady rate.

    .venv/bin/python bench/webhooks.py [--events 10000] [--endpoints 1] [--rate 50]
                                       [--seconds 10] [--poll 0.1] [--database URL | --name NAME]
                                       [--keep]

The database: `--database URL` uses that one (migrated to head; it is never dropped, and the rows
this run wrote are deleted at the end); else a new database (`--name`, default
`tci_bench_webhooks_<pid>`; it must not exist yet) is created at BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped at the end (`--keep` keeps it). Either
URL may name a Unix socket (`postgresql:///postgres?host=/var/run/postgresql`). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from services.claims.main import hooks
from shared.auth import mint_token
from shared.db import build_engine, build_sessionmaker
from shared.events import policyholder, record_event
from shared.migrations import upgrade
from shared.settings import DEVELOPMENT_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test receiver is in tests/, which is not installed
from tests import webhook_receiver  # noqa: E402

SUBJECT = f"bench-{os.getpid()}"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plain(url: str) -> str:
    """The URL as asyncpg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(admin: str, name: str) -> str:
    conn = await asyncpg.connect(_plain(admin))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # fails if it exists: never reused
    finally:
        await conn.close()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin: str, name: str) -> None:
    conn = await asyncpg.connect(_plain(admin))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# What the service's own events carry that its metrics read when they commit (a claim's cause,
# status and amount): the benchmark's events look like the service's to them.
EVENT_DATA = {"cause": "insolvency", "status": "filed", "previous_status": None,
              "amount": {"amount": "1000.00", "currency": "EUR"}}  # fmt: skip


async def write(url: str, parties: list[str], count: int, batch: int, rate: float | None
                ) -> dict[str, int]:  # fmt: skip
    """Commit `count` events round robin over the parties, `batch` to a transaction (at `rate`
    events a second, if given); each event id's commit time (ns)."""
    engine = build_engine(url)
    sessions = build_sessionmaker(engine)
    committed: dict[str, int] = {}
    kinds = hooks.event_types
    started = time.perf_counter()
    try:
        for first in range(0, count, batch):
            async with sessions() as session:
                ids = [await record_event(session, hooks.events, type=kinds[n % len(kinds)],
                                          subject_id=SUBJECT, data={"n": n, **EVENT_DATA},
                                          parties=[policyholder(parties[n % len(parties)])])
                       for n in range(first, min(first + batch, count))]  # fmt: skip
                await session.commit()
            now = time.time_ns()
            committed.update(dict.fromkeys(ids, now))
            if rate:
                ahead = (first + batch) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    finally:
        await engine.dispose()
    return committed


def arrivals(directory: Path, wanted: dict[str, int], seconds: float) -> dict[str, int]:
    """The first arrival (ns) of each wanted event id, waiting up to `seconds` for all."""
    deadline = time.monotonic() + seconds
    while True:
        first: dict[str, int] = {}
        for record in webhook_receiver.received(directory):
            if record.webhook_id in wanted and record.webhook_id not in first:
                first[record.webhook_id] = record.arrived_ns
        if len(first) == len(wanted) or time.monotonic() > deadline:
            return first
        time.sleep(0.2)


def report(name: str, committed: dict[str, int], arrived: dict[str, int], wire: int) -> None:
    lags = sorted((arrived[i] - committed[i]) / 1e6 for i in arrived)
    span = (max(arrived.values()) - min(committed.values())) / 1e9
    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else lags * 99
    print(f"{name}: {len(arrived):,} of {len(committed):,} events delivered in {span:.1f}s from "
          f"the first commit: {len(arrived) / span:,.0f} events/s; lag from commit to delivery "
          f"p50 {q[49]:,.0f} ms, p99 {q[98]:,.0f} ms, max {lags[-1]:,.0f} ms; "
          f"{wire - len(arrived)} duplicates on the wire, lost {len(committed) - len(arrived)}")  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_service(url: str, port: int, poll: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "TCI_LOG_LEVEL": "WARNING",
           "TCI_RATE_LIMIT": "", "TCI_OUTBOX_INTERVAL_SECONDS": "60",
           "TCI_WEBHOOK_POLL_SECONDS": str(poll)}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "services.claims.main:create_app",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT)  # fmt: skip
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the claims service did not start")


def register(base: str, receiver: str, directory: Path, count: int) -> tuple[list[str], list[str]]:
    """`count` endpoints, each of a party of its own; the parties and the endpoint ids."""
    parties, ids = [], []
    for n in range(count):
        party = f"{SUBJECT}-{n}"
        token = mint_token(DEVELOPMENT_JWT_SECRET, role="policyholder", party_id=party)
        answer = httpx.post(f"{base}/v1/webhook-endpoints",
                            headers={"Authorization": f"Bearer {token}"},
                            json={"url": f"{receiver}/{party}",
                                  "event_types": list(hooks.event_types)})  # fmt: skip
        answer.raise_for_status()
        webhook_receiver.configure(directory, f"/{party}", answer.json()["secret"])
        parties.append(party)
        ids.append(answer.json()["id"])
    return parties, ids


async def forget(url: str, endpoint_ids: list[str]) -> None:
    """Delete what this run wrote in a database it was given."""
    engine = build_engine(url)
    async with engine.begin() as connection:
        await connection.execute(delete(hooks.tables.endpoints).where(
            hooks.tables.endpoints.c.id.in_(endpoint_ids)))  # fmt: skip
        await connection.execute(delete(hooks.events.events).where(
            hooks.events.events.c.subject_id == SUBJECT))  # fmt: skip
    await engine.dispose()


def run(url: str, args: argparse.Namespace) -> list[str]:
    upgrade("claims", url)
    directory = Path(tempfile.mkdtemp(prefix="tci-bench-receiver-"))
    receiver_port, port = _port(), _port()
    receiver = webhook_receiver.start(directory, receiver_port)
    server = start_service(url, port, args.poll)
    endpoint_ids: list[str] = []
    try:
        parties, endpoint_ids = register(f"http://127.0.0.1:{port}",
                                         f"http://127.0.0.1:{receiver_port}", directory,
                                         args.endpoints)  # fmt: skip
        print(f"claims service with {args.endpoints} endpoint(s), poll {args.poll}s; "
              f"committing {args.events:,} events in transactions of {args.batch}")  # fmt: skip
        cpu = {"service": cpu_seconds(server.pid), "receiver": cpu_seconds(receiver.pid)}
        queued = asyncio.run(write(url, parties, args.events, args.batch, None))
        arrived = arrivals(directory, queued, args.timeout)
        wire = sum(1 for r in webhook_receiver.received(directory) if r.webhook_id in queued)
        report(f"{args.events:,} queued", queued, arrived, wire)
        per_event = {name: (cpu_seconds(pid) - cpu[name]) / len(arrived) * 1000
                     for name, pid in (("service", server.pid), ("receiver", receiver.pid))}  # fmt: skip
        print(f"CPU per event delivered: service {per_event['service']:.2f} ms, receiver "
              f"{per_event['receiver']:.2f} ms (load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs)")  # fmt: skip
        steady = asyncio.run(write(url, parties, int(args.rate * args.seconds), 1, args.rate))
        arrived = arrivals(directory, steady, args.timeout)
        wire = sum(1 for r in webhook_receiver.received(directory) if r.webhook_id in steady)
        report(f"steady {args.rate:g}/s", steady, arrived, wire)
        status = Path(f"/proc/{server.pid}/status")
        if status.exists():
            memory = dict(line.split(":", 1) for line in status.read_text().splitlines())
            print(f"service memory: peak {memory['VmHWM'].strip()}, now {memory['VmRSS'].strip()}")
    finally:
        server.terminate()
        server.wait()
        receiver.kill()
        receiver.wait()
    return endpoint_ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100, help="events per transaction")
    parser.add_argument("--rate", type=float, default=50, help="steady phase: events a second")
    parser.add_argument("--seconds", type=float, default=10, help="steady phase: how long")
    parser.add_argument("--poll", type=float, default=0.1, help="TCI_WEBHOOK_POLL_SECONDS")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--database", help="an existing database to use (never dropped)")
    parser.add_argument(
        "--name",
        default=f"tci_bench_webhooks_{os.getpid()}",
        help="the database to create (when no --database is given)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database this run creates")
    args = parser.parse_args()
    if args.database:
        url = args.database
        endpoint_ids = run(url, args)
        asyncio.run(forget(url, endpoint_ids))
        return
    admin = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = asyncio.run(create_database(admin, args.name))
    try:
        run(url, args)
    finally:
        if not args.keep:
            asyncio.run(drop_database(admin, args.name))


if __name__ == "__main__":
    main()
