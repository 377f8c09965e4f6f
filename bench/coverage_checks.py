"""Coverage-check benchmark: loads buyers, limits and ~5 declared receivables per buyer into a
fresh PostgreSQL database, starts the underwriting service (one uvicorn worker) on loopback, and
prints single checks per second with p50/p99 latency, and the time of one batch of 10,000.

    .venv/bin/python bench/coverage_checks.py [--buyers 100000] [--seconds 15] [--concurrency 32]
                                              [--reuse] [--load-generator wrk|httpx]

The single checks are driven by `wrk` (a C load generator; `apt-get install wrk`) when it is on
PATH, each request a random buyer and shipment date; else by an httpx client in this process,
which costs the server much of its CPU on a 2-core machine and so understates the figure.
Needs PostgreSQL at BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres, or
a socket URL: postgresql://postgres@/postgres?host=/var/run/postgresql), where it creates
`--database` (default `tci_bench`) when absent and never drops it; `--reuse` keeps the books
already loaded there. After each batch it runs the batch's own statements bare on asyncpg and
prints the service's time as a multiple of theirs (target: 1.5x at most). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from shared.auth import mint_token
from shared.db import new_id
from shared.migrations import upgrade
from shared.settings import DEVELOPMENT_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
TODAY = "2027-07-01"
BATCH_CHUNK, BATCH_PARALLEL = 1000, 4  # the service's defaults (TCI_UW_COVERAGE_BATCH_*)


def books(buyers: int) -> tuple[str, list[str], dict[str, tuple[list[str], list[tuple[Any, ...]]]]]:
    """The policy, the buyers and every table's columns and rows: one whole-turnover policy,
    `buyers` buyers each with a limit, two entries of grade history and ~5 declared receivables
    (JSON columns as JSON text)."""
    now = dt.datetime.now(dt.UTC)
    policy_id = new_id("pol")
    policy = {
        "id": policy_id, "created_at": now, "policyholder_id": "bench-holder", "currency": "EUR",
        "start_date": dt.date(2027, 1, 1), "end_date": dt.date(2027, 12, 31),
        "cover_type": "whole_turnover", "max_liability": Decimal(100_000_000),
        "premium_rate_pct": Decimal("0.35"), "indemnity_pct": Decimal(90),
        "political_risk_cover": False, "political_indemnity_pct": Decimal(90),
        "covered_countries": None, "max_credit_period_days": 180, "deductible": Decimal(0),
        "claim_threshold": Decimal(0), "discretionary_limit": Decimal(0),
        "single_buyer_cap": None, "claim_filing_days": 30, "documents_grace_days": 30,
        "overdue_notification_days": 60, "max_extension_days": 60,
        "protracted_default_wait_days": 180, "reduction_notice_days": 30,
        "claims_calendar_country": "CN", "collection_ladder": "reminder_15_30_45",
        "created_by": "bench",
    }  # fmt: skip
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
        "policies": (list(policy), [tuple(policy.values())])
    }
    ids = [new_id("buy") for _ in range(buyers)]
    tables["buyers"] = (
        ["id", "created_at", "name", "country", "registration_number", "registration_key",
         "legal_form", "indicators", "grade", "grade_factors", "registered_by", "graded_at"],
        [(b, now, f"Buyer {i}", "DE", f"R{i}", f"R{i}", "company", "{}", 2, "[]", "bench", now)
         for i, b in enumerate(ids)],
    )  # fmt: skip
    limits = [new_id("lim") for _ in ids]
    tables["credit_limits"] = (
        ["id", "created_at", "policy_id", "buyer_id", "decided_on"],
        [(lim, now, policy_id, b, dt.date(2027, 1, 1)) for lim, b in zip(limits, ids, strict=True)],
    )  # fmt: skip
    tables["limit_amounts"] = (
        ["id", "created_at", "limit_id", "amount", "payment_terms_days", "effective_from",
         "reason", "source", "decided_by"],
        [(new_id("lam"), now, lim, Decimal(100000), 120, dt.date(2027, 1, 1), "bench",
          "external", "bench") for lim in limits],
    )  # fmt: skip
    # Two entries of grade history per buyer: registration, then a regrade in spring.
    tables["buyer_grades"] = (
        ["id", "created_at", "buyer_id", "graded_on", "grade", "factors", "indicators",
         "country_risk_level", "cause", "created_by"],
        [(new_id("grd"), now, b, day, grade, "[]", "{}", 2, cause, "bench")
         for b in ids for day, grade, cause in ((dt.date(2026, 12, 1), 2, "registration"),
                                                (dt.date(2027, 4, 1), 3, "indicators"))],
    )  # fmt: skip
    receivables = []
    for i, b in enumerate(ids):
        for n in range(5):
            ship = dt.date(2027, 1, 1) + dt.timedelta(days=random.randrange(200))
            receivables.append((new_id("rcv"), now, policy_id, b, f"INV-{i}-{n}",
                                Decimal(random.randrange(1000, 20000)), ship,
                                ship + dt.timedelta(days=60), Decimal(0), None, now))  # fmt: skip
    tables["receivables"] = (
        ["id", "created_at", "policy_id", "buyer_id", "invoice_number", "amount",
         "shipment_date", "due_date", "paid_amount", "paid_on", "updated_at"],
        receivables,
    )  # fmt: skip
    return policy_id, ids, tables


async def load(dsn: str, buyers: int) -> tuple[str, list[str]]:
    policy_id, ids, tables = books(buyers)
    conn = await asyncpg.connect(dsn)
    for name, (columns, records) in tables.items():
        await conn.copy_records_to_table(
            name, schema_name="underwriting", columns=columns, records=records
        )
    await conn.execute("ANALYZE")
    await conn.close()
    return policy_id, ids


def item(policy_id: str, buyer: str) -> dict[str, object]:
    ship = dt.date(2027, 1, 1) + dt.timedelta(days=random.randrange(300))
    return {"policy_id": policy_id, "buyer_id": buyer,
            "invoice_amount": {"amount": "15000.00", "currency": "EUR"},
            "shipment_date": ship.isoformat(),
            "due_date": (ship + dt.timedelta(days=90)).isoformat()}  # fmt: skip


WRK_SCRIPT = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
local base = os.time({year = 2027, month = 1, day = 1, hour = 12})
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}
function init(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16)) end
function request()
  local ship = base + math.random(0, 299) * 86400
  local body = string.format(
    '{"policy_id":"%(policy)s","buyer_id":"%%s","invoice_amount":{"amount":"15000.00",' ..
    '"currency":"EUR"},"shipment_date":"%%s","due_date":"%%s"}',
    ids[math.random(#ids)], os.date("!%%Y-%%m-%%d", ship), os.date("!%%Y-%%m-%%d", ship + 90 * 86400))
  return wrk.format("POST", "/v1/coverage-checks", headers, body)
end
"""


def measure_with_wrk(
    base: str,
    token: str,
    policy_id: str,
    ids: list[str],
    seconds: float,
    connections: int,
    label: str = "single checks",
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp, "ids.txt")
        ids_file.write_text("\n".join(ids))
        script = Path(tmp, "check.lua")
        script.write_text(WRK_SCRIPT % {"ids": ids_file, "token": token, "policy": policy_id})
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency",
                   "-s", str(script), base]  # fmt: skip
        subprocess.run([*command[:3], "-d2s", *command[4:]], check=True, capture_output=True)
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = re.search(r"50%\s+(\S+)", out)[1]  # type: ignore[index]
    p99 = re.search(r"99%\s+(\S+)", out)[1]  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    print(f"{label} (wrk, 1 thread): {rate:,.0f}/s over {seconds:.0f}s, {connections} "
          f"connections, p50 {p50}, p99 {p99}, non-200 {bad[1] if bad else 0}"
          f"{', socket errors ' + errors[1] if errors else ''}")  # fmt: skip
    return rate


async def measure_with_httpx(
    client: httpx.AsyncClient, policy_id: str, ids: list[str], seconds: float, workers: int
) -> None:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.post("/v1/coverage-checks",
                                         json=item(policy_id, random.choice(ids)))  # fmt: skip
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"single checks (httpx, in-process): {len(latencies) / elapsed:,.0f}/s over "
          f"{elapsed:.1f}s, {workers} concurrent, p50 {quantiles[49] * 1000:.1f} ms, "
          f"p99 {quantiles[98] * 1000:.1f} ms, non-200 {errors}")  # fmt: skip


async def measure(
    dsn: str,
    base: str,
    policy_id: str,
    ids: list[str],
    seconds: float,
    workers: int,
    generator: str,
) -> None:
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="service", subject="bench", ttl_seconds=3600)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=60) as client:  # fmt: skip
        for _ in range(200):  # warm up
            response = await client.post("/v1/coverage-checks",
                                         json=item(policy_id, random.choice(ids)))  # fmt: skip
            assert response.status_code == 200, response.text[:500]
        if generator == "wrk":
            rate = measure_with_wrk(base, token, policy_id, ids, seconds, workers)
            floor = bare_single_rate(dsn, token, policy_id, ids, seconds, workers)
            print(f"  the service answers {rate / floor:.0%} of the bare app's rate "
                  f"(bench/bare_coverage.py: the same SQL on asyncpg, no framework)")  # fmt: skip
        else:
            await measure_with_httpx(client, policy_id, ids, seconds, workers)
        batch = {"items": [item(policy_id, b) for b in random.sample(ids, min(10_000, len(ids)))]}
        service_times = []
        for attempt in range(3):
            started = time.perf_counter()
            response = await client.post("/v1/coverage-checks/batch", json=batch)
            took = time.perf_counter() - started
            assert response.status_code == 200, response.text[:500]
            answers = response.json()["results"]
            covered = sum(1 for a in answers if a.get("covered"))
            print(f"batch of {len(batch['items']):,} (run {attempt + 1}): {took * 1000:.0f} ms "
                  f"({covered:,} covered)")  # fmt: skip
            service_times.append(took)
            bare = await bare_batch(dsn, batch["items"], BATCH_CHUNK, BATCH_PARALLEL)
            print(f"  its statements bare on asyncpg: {bare * 1000:.0f} ms, the service takes "
                  f"{took / bare:.2f}x (target <= 1.5x)")  # fmt: skip


def bare_single_rate(
    dsn: str, token: str, policy_id: str, ids: list[str], seconds: float, connections: int
) -> float:
    """The floor of the single check: bench/bare_coverage.py under uvicorn, the same load."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "TCI_FIXED_TODAY": TODAY}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.bare_coverage:create_app",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                probe = httpx.post(f"{base}/v1/coverage-checks", json=item(policy_id, ids[0]))
                if probe.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        return measure_with_wrk(base, token, policy_id, ids, seconds, connections,
                                label="  the same checks bare")  # fmt: skip
    finally:
        server.terminate()
        server.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bare_batch(dsn: str, batch: list[dict[str, object]], chunk: int, parallel: int) -> float:
    """The batch's own statements run bare on asyncpg: the same SQL as the service's, the same
    chunks on as many connections at once, the rows fetched and nothing else. Seconds taken."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

    from services.underwriting import repository as repo

    today = dt.date.fromisoformat(TODAY)
    items = [repo.BatchItem(i, str(it["policy_id"]), str(it["buyer_id"]),
                            dt.date.fromisoformat(str(it["shipment_date"])),
                            None if it.get("invoice_number") is None else str(it["invoice_number"]))
             for i, it in enumerate(batch)]  # fmt: skip
    sql, order, literals, _ = repo._BATCH["postgresql"].for_asyncpg(asyncpg_dialect())
    pool = await asyncpg.create_pool(dsn, min_size=parallel, max_size=parallel)
    gate = asyncio.Semaphore(parallel)

    async def run(part: list[repo.BatchItem]) -> int:
        params = {"items": repo._items_json(part), "today": today, "bank_id": None}
        async with gate, pool.acquire() as conn:
            return len(await conn.fetch(sql, *[params.get(n, literals.get(n)) for n in order]))

    chunks = [items[start : start + chunk] for start in range(0, len(items), chunk)]
    await asyncio.gather(*(run(part) for part in chunks))  # prepares the statement everywhere
    started = time.perf_counter()
    rows = sum(await asyncio.gather(*(run(part) for part in chunks)))
    took = time.perf_counter() - started
    await pool.close()
    assert rows == len(items)
    return took


async def loaded_books(dsn: str) -> tuple[str, list[str]] | None:
    """The policy and buyers of an earlier run, when `--reuse` finds them."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        policy_id = await conn.fetchval("SELECT id FROM underwriting.policies LIMIT 1")
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM underwriting.buyers")]
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()
    return (policy_id, ids) if policy_id and ids else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buyers", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--database", default="tci_bench", help="created if absent, never dropped")
    parser.add_argument("--reuse", action="store_true", help="keep the books of an earlier run")
    parser.add_argument("--load-generator", choices=["wrk", "httpx"],
                        default="wrk" if shutil.which("wrk") else "httpx")  # fmt: skip
    args = parser.parse_args()
    admin = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = make_url(admin).set(database=args.database).render_as_string(False)

    async def create() -> None:
        """A database of the benchmark's own: created when absent, never dropped."""
        conn = await asyncpg.connect(admin)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", args.database):
                sys.exit(f"{args.database} exists: --reuse its books, or name another --database")
            await conn.execute(f'CREATE DATABASE "{args.database}"')
        finally:
            await conn.close()

    books = asyncio.run(loaded_books(dsn)) if args.reuse else None
    if books is None:
        asyncio.run(create())
        upgrade("underwriting", dsn)
        started = time.perf_counter()
        books = asyncio.run(load(dsn, args.buyers))
        print(f"loaded {len(books[1]):,} buyers and limits, {len(books[1]) * 5:,} receivables "
              f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
    else:
        print(f"reusing {len(books[1]):,} buyers and limits in {args.database}")
        upgrade("underwriting", dsn)  # books loaded by an older tree: their schema brought up
    policy_id, ids = books
    # Today in mid-year: checks of past shipments read the grade history, later ones today's grade.
    env = {**os.environ, "DATABASE_URL": dsn, "TCI_LOG_LEVEL": "WARNING",
           "TCI_FIXED_TODAY": TODAY}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "services.underwriting.main:create_app",
         "--port", str(args.port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT)  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        asyncio.run(
            measure(dsn, base, policy_id, ids, args.seconds, args.concurrency, args.load_generator)
        )
        status = Path(f"/proc/{server.pid}/status")
        if status.exists():
            memory = dict(line.split(":", 1) for line in status.read_text().splitlines())
            print(f"server memory: peak {memory['VmHWM'].strip()}, now {memory['VmRSS'].strip()}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
