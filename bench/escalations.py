"""Escalation-run benchmark: loads open collection cases with two invoices each into a fresh
PostgreSQL database and times the daily run that moves them up their ladders (in process, through
the same use case the scheduler and `POST /v1/escalations/run` call).

    .venv/bin/python bench/escalations.py [--cases 50000]

Needs PostgreSQL at BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres,
where it creates `tci_bench_collections`). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import resource
import time
from decimal import Decimal

import asyncpg

from services.collections import service as uc
from services.collections.config import CollectionsSettings
from shared.auth import Caller
from shared.db import build_engine, build_sessionmaker, new_id
from shared.migrations import upgrade

AS_OF = dt.date(2027, 6, 1)


async def load(dsn: str, cases: int) -> None:
    conn = await asyncpg.connect(dsn)
    now = dt.datetime.now(dt.UTC)
    ids = [new_id("case") for _ in range(cases)]
    # Each case's oldest invoice 1 to 120 days past due as of the run, the case opened (as a
    # mandate is: on a debt past due) the day after it fell due, on the first rung.
    oldest = {case: AS_OF - dt.timedelta(days=random.randrange(1, 121)) for case in ids}
    await conn.copy_records_to_table(
        "cases", schema_name="collections",
        columns=["id", "created_at", "creditor_id", "buyer_id", "debtor_country", "currency",
                 "ladder", "stage", "status", "fee_pct", "opened_on", "created_by"],
        records=[(c, now, f"ph-{i % 500}", f"buy-{i}", "DE", "EUR",
                  random.choice(["reminder_15_30_45", "legal_30_60_90"]), "new", "open",
                  Decimal(10), oldest[c] + dt.timedelta(days=1), "bench")
                 for i, c in enumerate(ids)],
    )  # fmt: skip
    invoices = []
    for case in ids:
        for n in range(2):
            invoices.append((new_id("cinv"), case, f"N-{n}", Decimal(1000),
                             oldest[case] + dt.timedelta(days=10 * n), Decimal(0)))  # fmt: skip
    await conn.copy_records_to_table(
        "case_invoices",
        schema_name="collections",
        columns=["id", "case_id", "number", "amount", "due_date", "paid"],
        records=invoices,
    )
    await conn.execute("ANALYZE")
    await conn.close()


async def run(dsn: str) -> None:
    engine = build_engine(dsn)
    sessionmaker = build_sessionmaker(engine)
    settings = CollectionsSettings()
    caller = Caller(subject="bench", role="service", party_id=None)
    for attempt in range(2):
        async with sessionmaker() as session:
            ctx = uc.Context(session=session, caller=caller, today=AS_OF, settings=settings)
            started = time.perf_counter()
            result = await uc.run_escalations(ctx, AS_OF)
            took = time.perf_counter() - started
            await session.rollback()  # leave the books as loaded, so both runs do the same work
        print(f"escalation run {attempt + 1}: {len(result.moved):,} cases moved in "
              f"{took * 1000:,.0f} ms")  # fmt: skip
    await engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak memory of this process: {peak / 1024:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=50_000)
    args = parser.parse_args()
    admin = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = admin.rsplit("/", 1)[0] + "/tci_bench_collections"

    async def recreate() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute("DROP DATABASE IF EXISTS tci_bench_collections WITH (FORCE)")
        await conn.execute("CREATE DATABASE tci_bench_collections")
        await conn.close()

    asyncio.run(recreate())
    upgrade("collections", dsn)
    started = time.perf_counter()
    asyncio.run(load(dsn, args.cases))
    print(f"loaded {args.cases:,} open cases with two invoices each in "
          f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    asyncio.run(run(dsn))


if __name__ == "__main__":
    main()
