"""Coverage-batch benchmark on either engine: times `POST /v1/coverage-checks/batch` with 10,000
items against the books `bench/coverage_checks.py` loads (100,000 buyers and limits, ~5 declared
receivables each), on PostgreSQL or on the embedded SQLite default.

    .venv/bin/python bench/coverage_batch.py --database-url sqlite:///var/bench_coverage.db
    .venv/bin/python bench/coverage_batch.py --database-url postgresql://postgres@127.0.0.1/tci_bench
        [--buyers 100000] [--runs 5] [--port 18002] [--save answer.json] [--profile]
        [--ledger 10000]

A SQLite file is created and loaded when absent (a minute or so), then reused; a PostgreSQL
database must hold the books of an earlier `bench/coverage_checks.py` run (`--database`). The
service runs under uvicorn (one worker) on loopback; each run posts the same batch (the same seed,
the same items) and prints the time to the answer and the CPU the server spent on it (steadier
than the time on a busy machine); on PostgreSQL, then the batch's statements bare on asyncpg and
the ratio. `--save` keeps the last answer's bytes (to compare two trees); `--profile` runs the
batch in this process instead, through the ASGI app under cProfile. `--ledger N` gives one buyer
N more declared receivables (once: kept in the books) and makes every item of the batch a
receivable of that buyer, over the year's shipment dates, a third naming an invoice of its ledger:
a batch whose exposures read a long ledger (its time should grow with items + receivables, not
their product). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import pstats
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` beside the services
from bench.coverage_checks import (
    BATCH_CHUNK,
    BATCH_PARALLEL,
    TODAY,
    bare_batch,
    books,
    item,
    loaded_books,
)
from shared.auth import mint_token
from shared.db import SERVICE_SCHEMAS, new_id
from shared.migrations import upgrade
from shared.settings import DEVELOPMENT_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
BATCH = 10_000


def load_sqlite(url: str, buyers: int) -> tuple[str, list[str]]:
    """The books of `bench/coverage_checks.py` written through SQLAlchemy (its types store dates,
    decimals and JSON as the service reads them on SQLite)."""
    from services.underwriting.models import metadata

    upgrade("underwriting", url)
    engine = _sqlite_engine(url)
    policy_id, ids, tables = books(buyers)
    with engine.begin() as conn:
        for name, (columns, records) in tables.items():
            table = metadata.tables[f"{metadata.schema}.{name}"]
            rows = [dict(zip(columns, _plain(record), strict=True)) for record in records]
            for start in range(0, len(rows), 50_000):
                conn.execute(insert(table), rows[start : start + 50_000])
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return policy_id, ids


def _sqlite_engine(url: str) -> Engine:
    """A plain sqlite3 engine on the file, the service's schema names dropped as the app does."""
    engine = create_engine(url.replace("sqlite+aiosqlite://", "sqlite://"))
    return engine.execution_options(schema_translate_map=dict.fromkeys(SERVICE_SCHEMAS))


def _plain(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """JSON columns as Python values (the PostgreSQL loader copies them as JSON text)."""
    return tuple(json.loads(v) if v in ("{}", "[]") else v for v in record)


def sqlite_books(url: str) -> tuple[str, list[str]] | None:
    from services.underwriting.models import Buyer, Policy

    if not Path(make_url(url).database or "").exists():
        return None
    engine = _sqlite_engine(url)
    with engine.connect() as conn:
        policy_id = conn.execute(select(Policy.id).limit(1)).scalar()
        ids = list(conn.execute(select(Buyer.id)).scalars())
    engine.dispose()
    return (policy_id, ids) if policy_id and ids else None


def ledger_rows(policy_id: str, buyer: str, count: int) -> list[dict[str, Any]]:
    """`count` receivables of one buyer over 200 shipment dates: unpaid, partly paid, paid."""
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(7)
    rows = []
    for n in range(count):
        ship = dt.date(2027, 1, 1) + dt.timedelta(days=n % 200)
        amount = Decimal(rng.randrange(1000, 10000)) / 100
        paid, paid_on = [(Decimal(0), None), (amount / 2, ship + dt.timedelta(days=10)),
                         (amount, ship + dt.timedelta(days=30))][n % 3]  # fmt: skip
        rows.append({"id": new_id("rcv"), "created_at": now, "policy_id": policy_id,
                     "buyer_id": buyer, "invoice_number": f"LEDGER-{n}", "amount": amount,
                     "shipment_date": ship, "due_date": ship + dt.timedelta(days=60),
                     "paid_amount": paid, "paid_on": paid_on, "updated_at": now})  # fmt: skip
    return rows


def add_ledger(url: str, policy_id: str, buyer: str, count: int) -> None:
    """The buyer's long ledger, written once (kept for later runs, as the books are)."""
    rows = ledger_rows(policy_id, buyer, count)
    if url.startswith("sqlite"):
        from services.underwriting.models import Receivable

        engine = _sqlite_engine(url)
        with engine.begin() as conn:
            known = conn.execute(
                select(func.count()).where(
                    Receivable.buyer_id == buyer, Receivable.invoice_number.like("LEDGER-%")
                )
            ).scalar()
            if not known:
                conn.execute(insert(Receivable), rows)
                conn.exec_driver_sql("ANALYZE")
        engine.dispose()
    else:

        async def copy() -> int:
            conn = await asyncpg.connect(url)
            try:
                known = await conn.fetchval(
                    "SELECT count(*) FROM underwriting.receivables WHERE buyer_id = $1 "
                    "AND invoice_number LIKE 'LEDGER-%'", buyer)  # fmt: skip
                if not known:
                    await conn.copy_records_to_table(
                        "receivables", schema_name="underwriting", columns=list(rows[0]),
                        records=[tuple(r.values()) for r in rows])  # fmt: skip
                    await conn.execute("ANALYZE underwriting.receivables")
                return int(known)
            finally:
                await conn.close()

        known = asyncio.run(copy())
        if known and known != count:
            sys.exit(f"the buyer already has a ledger of {known:,}, not {count:,}")


def ledger_batch(policy_id: str, buyer: str, count: int) -> list[dict[str, Any]]:
    """`BATCH` checks on the ledger's buyer over the year, a third naming one of its invoices."""
    rng = random.Random(11)
    batch = []
    for n in range(BATCH):
        ship = dt.date(2027, 1, 1) + dt.timedelta(days=rng.randrange(300))
        check = {"policy_id": policy_id, "buyer_id": buyer,
                 "invoice_amount": {"amount": "150.00", "currency": "EUR"},
                 "shipment_date": ship.isoformat(),
                 "due_date": (ship + dt.timedelta(days=90)).isoformat()}  # fmt: skip
        if n % 3 == 0:
            check["invoice_number"] = f"LEDGER-{rng.randrange(count)}"
        batch.append(check)
    return batch


def the_books(url: str, buyers: int) -> tuple[str, list[str]]:
    if url.startswith("sqlite"):
        found = sqlite_books(url)
        if found is None:
            Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            found = load_sqlite(url, buyers)
            print(f"loaded {len(found[1]):,} buyers into {url} "
                  f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
        upgrade("underwriting", url)  # books loaded by an older tree: their schema brought up
        return found
    found = asyncio.run(loaded_books(url))
    if found is None:
        sys.exit(f"no books in {url}: load them with bench/coverage_checks.py first")
    upgrade("underwriting", url)
    return found


def served(url: str, port: int, batch: dict[str, Any], runs: int, save: str | None) -> None:
    env = {**os.environ, "DATABASE_URL": url, "TCI_LOG_LEVEL": "WARNING",
           "TCI_FIXED_TODAY": TODAY}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "services.underwriting.main:create_app",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="service", subject="bench", ttl_seconds=3600)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as client:  # fmt: skip
            body = json.dumps(batch).encode()
            headers = {"Content-Type": "application/json"}
            client.post("/v1/coverage-checks/batch", content=body, headers=headers)  # warm up
            times, cpus = [], []
            for run in range(runs):
                cpu = _cpu_seconds(server.pid)
                started = time.perf_counter()
                response = client.post("/v1/coverage-checks/batch", content=body, headers=headers)
                took = time.perf_counter() - started
                cpus.append(_cpu_seconds(server.pid) - cpu)
                assert response.status_code == 200, response.text[:500]
                covered = sum(1 for a in response.json()["results"] if a.get("covered"))
                print(f"batch of {len(batch['items']):,} (run {run + 1}): {took * 1000:.0f} ms, "
                      f"the server's CPU {cpus[-1] * 1000:.0f} ms ({covered:,} covered)")  # fmt: skip
                times.append(took)
            if save:
                Path(save).write_bytes(response.content)
        print(f"{make_url(url).get_backend_name()}: best {min(times) * 1000:.0f} ms, "
              f"median {sorted(times)[len(times) // 2] * 1000:.0f} ms; the server's CPU: "
              f"least {min(cpus) * 1000:.0f} ms, median {sorted(cpus)[len(cpus) // 2] * 1000:.0f} ms")  # fmt: skip
        if not url.startswith("sqlite"):
            bare = min(asyncio.run(bare_batch(url, batch["items"], BATCH_CHUNK, BATCH_PARALLEL))
                       for _ in range(runs))  # fmt: skip
            print(f"  its statements bare on asyncpg: best {bare * 1000:.0f} ms; the service's "
                  f"best takes {min(times) / bare:.2f}x (target <= 1.5x)")  # fmt: skip
    finally:
        server.terminate()
        server.wait()


def _cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (user and system), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def profiled(url: str, batch: dict[str, Any], runs: int) -> None:
    """The batch run in this process through the ASGI app, the last runs under cProfile."""
    os.environ.update({"DATABASE_URL": url, "TCI_LOG_LEVEL": "WARNING", "TCI_FIXED_TODAY": TODAY})
    from services.underwriting.main import create_app

    app = create_app()
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="service", subject="bench", ttl_seconds=3600)
    body = json.dumps(batch).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client,
    ):
        await client.post("/v1/coverage-checks/batch", content=body, headers=headers)
        profile = cProfile.Profile()
        for run in range(runs):
            started = time.perf_counter()
            profile.enable()
            response = await client.post("/v1/coverage-checks/batch", content=body, headers=headers)
            profile.disable()
            assert response.status_code == 200, response.text[:500]
            print(f"run {run + 1} (profiled): {(time.perf_counter() - started) * 1000:.0f} ms")
    stats = pstats.Stats(profile).strip_dirs().sort_stats("tottime")
    stats.print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="sqlite:///var/bench_coverage.db")
    parser.add_argument("--buyers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port", type=int, default=18002)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="in this process, under cProfile")
    parser.add_argument("--save", help="write the last answer's bytes to this file")
    parser.add_argument("--ledger", type=int, default=0,
                        help="every item on one buyer with this many more receivables")  # fmt: skip
    args = parser.parse_args()
    url = args.database_url
    policy_id, ids = the_books(url, args.buyers)
    random.seed(args.seed)
    batch = {"items": [item(policy_id, b) for b in random.sample(ids, min(BATCH, len(ids)))]}
    if args.ledger:
        buyer = min(ids)
        started = time.perf_counter()
        add_ledger(url, policy_id, buyer, args.ledger)
        print(f"{buyer}: a ledger of {args.ledger:,} receivables "
              f"({time.perf_counter() - started:.1f}s to make sure of it)")  # fmt: skip
        batch = {"items": ledger_batch(policy_id, buyer, args.ledger)}
    if args.profile:
        asyncio.run(profiled(url, batch, args.runs))
    else:
        served(url, args.port, batch, args.runs, args.save)


if __name__ == "__main__":
    main()
