"""Declarations and portfolio-health benchmark (issue 12): on a PostgreSQL database of its own, starts
the underwriting service (one uvicorn worker) on loopback and times

- `POST /v1/policies/{id}/declarations` with `--invoices` (50,000) new invoices in one request, then
  the same invoices again (all updates), beside the same upsert run bare on asyncpg;
- `GET /v1/policies/{id}/portfolio-health` on a policy with `--receivables` (1,000,000) declared
  receivables, beside its SQL run bare on asyncpg.

    .venv/bin/python bench/book.py [--database tci_bench_book] [--receivables 1000000]
                                   [--invoices 50000] [--buyers 2000] [--runs 3]

`--database` is a name (on the server of BENCH_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) or a full URL, a socket one too
(`postgresql://postgres@/tci_bench_book?host=/var/run/postgresql`). The database is created when
absent and never dropped: the receivables are seeded once (INSERT … SELECT generate_series) and
reused by later runs; every run declares its invoices under a policy of its own. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from sqlalchemy.dialects import postgresql

from services.underwriting import repository as repo
from services.underwriting.config import UnderwritingSettings
from services.underwriting.schemas import DeclarationCreate
from shared.auth import mint_token
from shared.db import new_id
from shared.migrations import upgrade
from shared.settings import DEVELOPMENT_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2027, 7, 1)
HOLDER = "bench-book-holder"
SEEDED = "bench-book-seeded"  # the policyholder of the policy holding the seeded receivables


def database_url(database: str) -> tuple[str, str, str]:
    """The benchmark's URL, the server's maintenance URL and the database's name."""
    admin = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = database if "://" in database else urlunsplit(urlsplit(admin)._replace(path=database))
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    return url, urlunsplit(parts._replace(path="/postgres")), name


async def ensure_database(url: str, admin: str, name: str) -> bool:
    """Create the database when absent (never drop one); whether it was created now."""
    conn = await asyncpg.connect(admin)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


async def add_policy(conn: asyncpg.Connection, holder: str) -> str:
    policy_id = new_id("pol")
    now = dt.datetime.now(dt.UTC)
    policy = {
        "id": policy_id, "created_at": now, "policyholder_id": holder, "currency": "EUR",
        "start_date": dt.date(2025, 1, 1), "end_date": dt.date(2027, 12, 31),
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
    await conn.copy_records_to_table("policies", schema_name="underwriting", columns=list(policy),
                                      records=[tuple(policy.values())])  # fmt: skip
    return policy_id


# Buyers: one in eight with a current ratio below 1.2; receivables over two years before today,
# skewed towards the first buyers (a few owe most), on 30/60/90-day terms; an invoice whose payment
# date (due date − 15 … + 45 days) has come is paid, except one in twenty-five left unpaid.
SEED_BUYERS = """
INSERT INTO underwriting.buyers (id, created_at, name, country, registration_number,
    registration_key, legal_form, indicators, grade, grade_factors, registered_by, graded_at)
SELECT 'buy_book_' || lpad(g::text, 6, '0'), now(), 'Book buyer ' || g,
       (ARRAY['DE', 'FR', 'IT', 'CN', 'US'])[1 + g % 5], 'BOOK-' || g, 'BOOK-' || g, 'company',
       json_build_object('current_ratio', CASE WHEN g % 8 = 0 THEN '1.05' ELSE '1.80' END),
       3, '[]'::json, 'bench', now()
FROM generate_series(0, $1 - 1) AS g
"""
SEED_RECEIVABLES = """
INSERT INTO underwriting.receivables (id, created_at, policy_id, buyer_id, invoice_number, amount,
    shipment_date, due_date, paid_amount, paid_on, updated_at)
SELECT 'rcv_book_' || g, now(), $1, 'buy_book_' || lpad(buyer::text, 6, '0'), 'BK-' || g, amount,
       ship, ship + terms,
       CASE WHEN paid_on <= $3::date AND unpaid > 0.04 THEN amount ELSE 0 END,
       CASE WHEN paid_on <= $3::date AND unpaid > 0.04 THEN paid_on END, now()
FROM (SELECT g, amount, ship, terms, unpaid, buyer, ship + terms + (random() * 60)::int - 15 AS paid_on
      FROM (SELECT g, round((500 + random() * 49500)::numeric, 2) AS amount,
                   $3::date - (random() * 730)::int AS ship, 30 * (1 + (random() * 2.999)::int) AS terms,
                   random() AS unpaid, least($4 - 1, floor($4 * power(random(), 3)))::int AS buyer
            FROM generate_series(1, $2) AS g) AS drawn) AS settled
"""


async def seeded_policy(dsn: str, receivables: int, buyers: int) -> str:
    """The policy holding `receivables` seeded receivables (seeded now unless already there)."""
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetchrow(
            "SELECT p.id, (SELECT count(*) FROM underwriting.receivables r WHERE r.policy_id = p.id)"
            " AS n FROM underwriting.policies p WHERE p.policyholder_id = $1", SEEDED)  # fmt: skip
        if found is not None and found["n"] == receivables:
            print(f"reusing the {receivables:,} receivables of policy {found['id']}")
            return str(found["id"])
        if found is not None:
            raise SystemExit(f"policy {found['id']} holds {found['n']:,} receivables, not "
                             f"{receivables:,}: use another --database")  # fmt: skip
        started = time.perf_counter()
        if not await conn.fetchval(
            "SELECT count(*) FROM underwriting.buyers WHERE id LIKE 'buy_book_%'"
        ):
            await conn.execute(SEED_BUYERS, buyers)
        have = await conn.fetchval(
            "SELECT count(*) FROM underwriting.buyers WHERE id LIKE 'buy_book_%'"
        )
        policy_id = await add_policy(conn, SEEDED)
        await conn.execute(SEED_RECEIVABLES, policy_id, receivables, TODAY, have)
        await conn.execute("ANALYZE underwriting.receivables")
        await conn.execute("ANALYZE underwriting.buyers")
        print(f"seeded {receivables:,} receivables over {have:,} buyers in "
              f"{time.perf_counter() - started:.1f}s")  # fmt: skip
        return policy_id
    finally:
        await conn.close()


def invoices(count: int, buyers: int, tag: str) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        ship = TODAY - dt.timedelta(days=n % 300)
        paid = n % 3 == 0
        rows.append({
            "number": f"D-{tag}-{n:06d}", "buyer_id": f"buy_book_{n % buyers:06d}",
            "amount": {"amount": f"{1000 + n % 9000}.50", "currency": "EUR"},
            "shipment_date": ship.isoformat(), "due_date": (ship + dt.timedelta(days=60)).isoformat(),
            "paid_amount": {"amount": f"{1000 + n % 9000}.50" if paid else "0", "currency": "EUR"},
            # paid 50 days after shipment, or today if that is later (never after today)
            "paid_on": min(ship + dt.timedelta(days=50), TODAY).isoformat() if paid else None,
        })  # fmt: skip
    return rows


def compiled(statement: Any, values: dict[str, Any] | None = None) -> tuple[str, list[Any]]:
    """A SQLAlchemy statement as asyncpg runs it (with `values` for its parameters): its SQL and
    its positional parameters."""
    query = statement.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[attr-defined]
    params = query.construct_params(values)
    return str(query), [params[name] for name in query.positiontup]


async def bare_declaration(dsn: str, policy_id: str, body: list[dict[str, Any]]) -> float:
    """The declaration's upsert alone on asyncpg (rolled back): what the database takes."""
    now = dt.datetime.now(dt.UTC)
    rows = [{"id": new_id("rcv"), "policy_id": policy_id, "buyer_id": i["buyer_id"],
             "invoice_number": i["number"], "amount": Decimal(i["amount"]["amount"]),
             "shipment_date": dt.date.fromisoformat(i["shipment_date"]),
             "due_date": dt.date.fromisoformat(i["due_date"]),
             "paid_amount": Decimal(i["paid_amount"]["amount"]),
             "paid_on": dt.date.fromisoformat(i["paid_on"]) if i["paid_on"] else None,
             "created_at": now, "updated_at": now} for i in body]  # fmt: skip
    if not hasattr(repo, "declaration_upsert_statement"):  # the tree before the set-based upsert
        return float("nan")
    # The service's statement: one over arrays (`unnest`) where the tree has it, else in pages of
    # 1,000 rows, as SQLAlchemy's executemany ("insertmanyvalues") sent them.
    rows.sort(key=lambda row: str(row["invoice_number"]))
    if hasattr(repo, "declaration_upsert_params"):  # built once, its values as parameters
        pages = [
            compiled(repo.declaration_upsert_statement(), repo.declaration_upsert_params(rows))
        ]
    elif "_DECLARED_ARRAYS" in vars(repo):
        pages = [compiled(repo.declaration_upsert_statement(rows))]
    else:
        pages = [compiled(repo.declaration_upsert_statement(rows[start : start + 1000]))
                 for start in range(0, len(rows), 1000)]  # fmt: skip
    conn = await asyncpg.connect(dsn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        started = time.perf_counter()
        for sql, params in pages:
            await conn.fetch(sql, *params)
        took = time.perf_counter() - started
        await transaction.rollback()
        return took
    finally:
        await conn.close()


async def bare_health(dsn: str, policy_id: str) -> float:
    """The portfolio-health statements alone on asyncpg."""
    thresholds = UnderwritingSettings().health_thresholds()
    if hasattr(repo, "portfolio_health_statements"):
        statements = [
            compiled(s) for s in repo.portfolio_health_statements(policy_id, TODAY, thresholds)
        ]
    else:  # the tree before the SQL aggregates: every receivable of the policy
        statements = [("SELECT * FROM underwriting.receivables WHERE policy_id = $1", [policy_id])]
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for sql, params in statements:
            await conn.fetch(sql, *params)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def measure(
    base: str, dsn: str, health_policy: str, count: int, buyers: int, runs: int
) -> None:
    holder_token = mint_token(DEVELOPMENT_JWT_SECRET, role="policyholder", subject="bench",
                              party_id=HOLDER, ttl_seconds=3600)  # fmt: skip
    staff = mint_token(
        DEVELOPMENT_JWT_SECRET, role="underwriter", subject="bench", ttl_seconds=3600
    )
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        conn = await asyncpg.connect(dsn)
        policies = [await add_policy(conn, HOLDER) for _ in range(runs)]
        await conn.close()
        for run, policy_id in enumerate(policies, 1):
            body = invoices(count, buyers, policy_id[-8:])
            payload = json.dumps({"invoices": body}).encode()
            headers = {
                "Authorization": f"Bearer {holder_token}",
                "Content-Type": "application/json",
            }
            for label in ("new", "known"):
                started = time.perf_counter()
                response = await client.post(f"/v1/policies/{policy_id}/declarations",
                                             content=payload, headers=headers)  # fmt: skip
                took = time.perf_counter() - started
                assert response.status_code == 201, response.text[:500]
                bare = await bare_declaration(dsn, policy_id, body)
                print(f"declaration of {count:,} {label} invoices (run {run}, "
                      f"{len(payload) / 1e6:.1f} MB): {took * 1000:,.0f} ms → {response.json()}; "
                      f"its upsert bare: {bare * 1000:,.0f} ms")  # fmt: skip
        headers = {"Authorization": f"Bearer {staff}"}
        for run in range(1, runs + 1):
            started = time.perf_counter()
            response = await client.get(f"/v1/policies/{health_policy}/portfolio-health",
                                        headers=headers)  # fmt: skip
            took = time.perf_counter() - started
            assert response.status_code == 200, response.text[:500]
            bare = await bare_health(dsn, health_policy)
            answer = response.json()
            print(f"portfolio health (run {run}): {took * 1000:,.0f} ms; its SQL bare: "
                  f"{bare * 1000:,.0f} ms")  # fmt: skip
        print(
            "  "
            + json.dumps(
                {
                    k: answer[k]
                    for k in (
                        "outstanding",
                        "dso_days",
                        "dso_prior_year_days",
                        "dso_change",
                        "overdue_ratio",
                        "top_buyers_share",
                    )
                }
            )
        )
        print(f"  ageing {json.dumps(answer['ageing'])}")
        print(
            f"  warnings: {len(answer['warnings'])} ({', '.join(sorted({w['code'] for w in answer['warnings']}))})"
        )


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit("the service exited")
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the service did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="tci_bench_book")
    parser.add_argument("--receivables", type=int, default=1_000_000)
    parser.add_argument("--invoices", type=int, default=50_000)
    parser.add_argument("--buyers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=18011)
    args = parser.parse_args()
    dsn, admin, name = database_url(args.database)
    created = asyncio.run(ensure_database(dsn, admin, name))
    print(f"database {name}: {'created' if created else 'already there (kept)'}")
    upgrade("underwriting", dsn)
    health_policy = asyncio.run(seeded_policy(dsn, args.receivables, args.buyers))
    cap = DeclarationCreate.model_fields["invoices"].metadata
    print(f"declaration schema: {cap}")
    # The body of 50,000 invoices is about 12 MB: the cap is a setting, raised here if needed.
    body_bytes = max(
        int(os.environ.get("TCI_MAX_BODY_BYTES", 16 * 1024 * 1024)), args.invoices * 400
    )
    env = {**os.environ, "DATABASE_URL": dsn, "TCI_LOG_LEVEL": "WARNING",
           "TCI_FIXED_TODAY": TODAY.isoformat(), "TCI_MAX_BODY_BYTES": str(body_bytes)}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "services.underwriting.main:create_app",
         "--port", str(args.port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT)  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(base, server)
        asyncio.run(measure(base, dsn, health_policy, args.invoices, args.buyers, args.runs))
        status = Path(f"/proc/{server.pid}/status")
        if status.exists():
            memory = dict(line.split(":", 1) for line in status.read_text().splitlines())
            print(f"server memory: peak {memory['VmHWM'].strip()}, now {memory['VmRSS'].strip()}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
