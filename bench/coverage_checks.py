"""Coverage-check benchmark: loads buyers, limits and ~5 declared receivables per buyer into a
fresh PostgreSQL database, starts the underwriting service (one uvicorn worker) on loopback, and
prints single checks per second with p50/p99 latency, and the time of one batch of 10,000.

    .venv/bin/python bench/coverage_checks.py [--buyers 100000] [--seconds 15] [--concurrency 32]

Needs PostgreSQL at BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres,
where it creates and drops `tci_bench`). Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

from shared.auth import mint_token
from shared.db import new_id
from shared.migrations import upgrade
from shared.settings import DEVELOPMENT_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]


async def load(dsn: str, buyers: int) -> tuple[str, list[str]]:
    conn = await asyncpg.connect(dsn)
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
    await conn.copy_records_to_table(
        "policies",
        schema_name="underwriting",
        columns=list(policy),
        records=[tuple(policy.values())],
    )
    ids = [new_id("buy") for _ in range(buyers)]
    await conn.copy_records_to_table(
        "buyers", schema_name="underwriting",
        columns=["id", "created_at", "name", "country", "registration_number", "legal_form",
                 "indicators", "grade", "grade_factors", "registered_by", "graded_at"],
        records=[(b, now, f"Buyer {i}", "DE", f"R{i}", "company", "{}", 2, "[]", "bench", now)
                 for i, b in enumerate(ids)],
    )  # fmt: skip
    limits = [new_id("lim") for _ in ids]
    await conn.copy_records_to_table(
        "credit_limits", schema_name="underwriting",
        columns=["id", "created_at", "policy_id", "buyer_id", "payment_terms_days", "decided_on"],
        records=[(lim, now, policy_id, b, 120, dt.date(2027, 1, 1)) for lim, b in zip(limits, ids, strict=True)],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "limit_amounts", schema_name="underwriting",
        columns=["id", "created_at", "limit_id", "amount", "effective_from", "reason", "source",
                 "decided_by"],
        records=[(new_id("lam"), now, lim, Decimal(100000), dt.date(2027, 1, 1), "bench",
                  "external", "bench") for lim in limits],
    )  # fmt: skip
    receivables = []
    for i, b in enumerate(ids):
        for n in range(5):
            ship = dt.date(2027, 1, 1) + dt.timedelta(days=random.randrange(200))
            receivables.append((new_id("rcv"), now, policy_id, b, f"INV-{i}-{n}",
                                Decimal(random.randrange(1000, 20000)), ship,
                                ship + dt.timedelta(days=60), Decimal(0), None, now))  # fmt: skip
    await conn.copy_records_to_table(
        "receivables", schema_name="underwriting",
        columns=["id", "created_at", "policy_id", "buyer_id", "invoice_number", "amount",
                 "shipment_date", "due_date", "paid_amount", "paid_on", "updated_at"],
        records=receivables,
    )  # fmt: skip
    await conn.execute("ANALYZE")
    await conn.close()
    return policy_id, ids


def item(policy_id: str, buyer: str) -> dict[str, object]:
    ship = dt.date(2027, 1, 1) + dt.timedelta(days=random.randrange(300))
    return {"policy_id": policy_id, "buyer_id": buyer,
            "invoice_amount": {"amount": "15000.00", "currency": "EUR"},
            "shipment_date": ship.isoformat(),
            "due_date": (ship + dt.timedelta(days=90)).isoformat()}  # fmt: skip


async def measure(base: str, policy_id: str, ids: list[str], seconds: float, workers: int) -> None:
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="service", subject="bench")
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=30) as client:  # fmt: skip
        for _ in range(200):  # warm up
            await client.post("/v1/coverage-checks", json=item(policy_id, random.choice(ids)))
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
        print(f"single checks: {len(latencies) / elapsed:,.0f}/s over {elapsed:.1f}s, "
              f"{workers} concurrent, p50 {quantiles[49] * 1000:.1f} ms, "
              f"p99 {quantiles[98] * 1000:.1f} ms, errors {errors}")  # fmt: skip
        batch = {"items": [item(policy_id, b) for b in random.sample(ids, min(10_000, len(ids)))]}
        for attempt in range(3):
            started = time.perf_counter()
            response = await client.post("/v1/coverage-checks/batch", json=batch)
            took = time.perf_counter() - started
            assert response.status_code == 200, response.text[:500]
            print(f"batch of {len(batch['items']):,} (run {attempt + 1}): {took * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buyers", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=18001)
    args = parser.parse_args()
    admin = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = admin.rsplit("/", 1)[0] + "/tci_bench"

    async def recreate() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute("DROP DATABASE IF EXISTS tci_bench WITH (FORCE)")
        await conn.execute("CREATE DATABASE tci_bench")
        await conn.close()

    asyncio.run(recreate())
    upgrade("underwriting", dsn)
    started = time.perf_counter()
    policy_id, ids = asyncio.run(load(dsn, args.buyers))
    print(f"loaded {len(ids):,} buyers and limits, {len(ids) * 5:,} receivables "
          f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
    env = {**os.environ, "DATABASE_URL": dsn, "TCI_LOG_LEVEL": "WARNING"}
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
        asyncio.run(measure(base, policy_id, ids, args.seconds, args.concurrency))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
