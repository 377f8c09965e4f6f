"""Whole-book re-evaluation benchmark (issue 12): seeds `--buyers` (1,000,000) buyers of one
country, each with a limit on one of `--policies` policies, as the service keeps them (each buyer
graded at registration with its grade history entry, each limit granted on an approved request
with its history entry and its `limit.changed` event), starts the underwriting service (one
uvicorn worker) on loopback, downgrades the country over HTTP (`PUT /v1/country-risks/{country}`
to level 4: nine buyers in ten reach grade 8–9 and have their limits halved) and prints the time
end to end, the answer's counts, the rows written and the service's peak memory.

    .venv/bin/python bench/reevaluate.py [--buyers 1000000] [--policies 2000]
                                         [--database tci_bench_reevaluate]

`--database` is a name (on the server of BENCH_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) or a full URL, a socket one too
(`postgresql://postgres@/tci_bench_reevaluate?host=/var/run/postgresql`). The database is created
as a copy of `<database>_seed`, seeded first when absent or of another size or schema head; both are marked as
the benchmark's (a comment), and a later run drops and recreates only a database bearing that mark,
refusing any other. Target: 1,000,000 limits under 30 s, the
service's memory bounded (it must not hold the book). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from alembic.script import ScriptDirectory

from services.underwriting import rules, views
from services.underwriting.schemas import IndicatorsIn
from services.underwriting.service import buyer_indicators
from shared.auth import mint_token
from shared.migrations import alembic_config, upgrade
from shared.settings import DEVELOPMENT_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2027, 6, 10)
MARK = "tci bench reevaluate: may be dropped by bench/reevaluate.py"
LEVEL_BEFORE, LEVEL_AFTER = 2, 4
EQUITY = {"amount": "1000000", "currency": "EUR"}
# Three kinds of buyers (by g % 10): strong ones (0: grade 2, then 4), weak ones (1–5: 6 points,
# grade 7, then 9) and weaker ones (6–9: 5 points, grade 6, then 8): nine in ten are halved.
PROFILES: dict[str, dict[str, Any]] = {
    "strong": {"current_ratio": "2.5", "dso_days": "40", "dso_prior_year_days": "40",
               "overdue_ratio": "0.01", "litigation_count": 0, "management_changes_12m": 0,
               "equity": EQUITY},
    "weak": {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
             "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
             "equity": EQUITY},
    "weaker": {"current_ratio": "1.0", "dso_days": "40", "dso_prior_year_days": "40",
               "overdue_ratio": "0.2", "litigation_count": 1, "management_changes_12m": 0,
               "equity": EQUITY},
}  # fmt: skip
TABLES = ("buyers", "buyer_grades", "credit_limits", "limit_amounts", "limit_requests", "events",
          "event_parties")  # fmt: skip


def database_url(database: str) -> tuple[str, str, str]:
    """The benchmark's URL, the server's maintenance URL and the database's name."""
    admin = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = database if "://" in database else urlunsplit(urlsplit(admin)._replace(path=database))
    parts = urlsplit(url)
    return url, urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


async def fresh_database(admin: str, name: str, seeded: str, template: str) -> bool:
    """Create the database as a copy of the seeded template `template` (seeded at once when
    absent or seeded otherwise: `seeded` says how); whether the template must be seeded. Any of
    the two of an earlier run (bearing the mark) is dropped first; any other is refused."""
    conn = await asyncpg.connect(admin)
    try:
        marks = {row["datname"]: row["mark"] or "" for row in await conn.fetch(
            "SELECT datname, shobj_description(oid, 'pg_database') AS mark FROM pg_database"
            " WHERE datname = ANY($1::text[])", [name, template])}  # fmt: skip
        for db, mark in marks.items():
            if not mark.startswith(MARK):
                raise SystemExit(f"{db} exists and is not this benchmark's: use another --database")
        if name in marks:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if marks.get(template) == f"{MARK} {seeded}":
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{MARK}'")
            return False
        if template in marks:
            await conn.execute(f'DROP DATABASE "{template}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{template}"')
        await conn.execute(f"COMMENT ON DATABASE \"{template}\" IS '{MARK}'")
        return True
    finally:
        await conn.close()


async def copy_template(admin: str, name: str, seeded: str, template: str) -> None:
    """The seeded template marked as such, and the database a copy of it."""
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f"COMMENT ON DATABASE \"{template}\" IS '{MARK} {seeded}'")
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{MARK}'")
    finally:
        await conn.close()


def profile_columns() -> dict[str, tuple[str, int, str]]:
    """Per kind of buyer: its stored indicators, its grade and factors at `LEVEL_BEFORE` (the
    service's own rule, as registration wrote them)."""
    found = {}
    for kind, raw in PROFILES.items():
        stored = IndicatorsIn.model_validate(raw).model_dump(mode="json", exclude_none=True)
        grade = rules.grade_buyer(buyer_indicators(stored), country_risk_level=LEVEL_BEFORE)
        found[kind] = (json.dumps(stored), grade.grade, json.dumps(views.factors_json(grade)))
    return found


SEED = [
    # Policies: EUR, one in ten USD, one in ten JPY; notice periods of 30, 60 or 90 days.
    """INSERT INTO underwriting.policies (id, created_at, policyholder_id, currency, start_date,
        end_date, cover_type, max_liability, premium_rate_pct, indemnity_pct, political_risk_cover,
        political_indemnity_pct, covered_countries, max_credit_period_days, deductible,
        claim_threshold, discretionary_limit, single_buyer_cap, claim_filing_days,
        documents_grace_days, overdue_notification_days, max_extension_days,
        protracted_default_wait_days, reduction_notice_days, claims_calendar_country,
        collection_ladder, created_by)
    SELECT 'pol_rv_' || lpad(p::text, 6, '0'), now(), 'holder-rv-' || p,
           CASE p % 10 WHEN 1 THEN 'USD' WHEN 2 THEN 'JPY' ELSE 'EUR' END,
           DATE '2027-01-01', DATE '2027-12-31', 'whole_turnover', 500000000, 0.35, 90, false, 90,
           NULL, 180, 0, 0, 0, NULL, 30, 30, 60, 60, 180, 30 * (1 + p % 3), 'CN',
           'reminder_15_30_45', 'bench'
    FROM generate_series(0, $2 - 1) AS p""",
    # A bank is loss payee of one policy in four.
    """INSERT INTO underwriting.policy_assignments (id, created_at, policy_id, bank_id, created_by)
    SELECT 'asg_rv_' || p, now(), 'pol_rv_' || lpad(p::text, 6, '0'), 'bank-rv-' || p % 7, 'bench'
    FROM generate_series(0, $2 - 1, 4) AS p""",
    """INSERT INTO underwriting.buyers (id, created_at, name, country, registration_number,
        registration_key, legal_form, indicators, grade, grade_factors, registered_by, graded_at)
    SELECT 'buy_rv_' || lpad(g::text, 7, '0'), now(), 'Buyer ' || g, $3, 'RV-' || g, 'RV-' || g,
           'company',
           (CASE k WHEN 0 THEN $4 WHEN 1 THEN $7 ELSE $10 END)::json,
           CASE k WHEN 0 THEN $5::int WHEN 1 THEN $8::int ELSE $11::int END,
           (CASE k WHEN 0 THEN $6 WHEN 1 THEN $9 ELSE $12 END)::json, 'bench', now()
    FROM (SELECT g, CASE WHEN g % 10 = 0 THEN 0 WHEN g % 10 <= 5 THEN 1 ELSE 2 END AS k
          FROM generate_series(0, $1 - 1) AS g) AS b""",
    """INSERT INTO underwriting.buyer_grades (id, created_at, buyer_id, graded_on, grade, factors,
        indicators, country_risk_level, cause, created_by)
    SELECT 'grd_rv_' || substr(id, 8), now(), id, DATE '2026-12-01', grade, grade_factors::json,
           indicators, $13::int, 'registration', 'bench'
    FROM underwriting.buyers""",
    """INSERT INTO underwriting.credit_limits (id, created_at, policy_id, buyer_id, decided_on)
    SELECT 'lim_rv_' || substr(id, 8), now(),
           'pol_rv_' || lpad((substr(id, 8)::int % $2)::text, 6, '0'), id, DATE '2027-01-01'
    FROM underwriting.buyers""",
    """INSERT INTO underwriting.limit_requests (id, created_at, policy_id, buyer_id,
        requested_amount, decided_amount, payment_terms_days, related_to_policyholder, status,
        reasons, grade, limit_id, requested_by, decided_by, decided_at, decision_reason)
    SELECT 'lrq_rv_' || substr(l.id, 8), now(), l.policy_id, l.buyer_id, a.amount, a.amount, 90,
           false, 'approved', '[]'::json, b.grade, l.id, 'bench', 'engine', now(), NULL
    FROM underwriting.credit_limits l
    JOIN underwriting.buyers b ON b.id = l.buyer_id
    JOIN underwriting.policies p ON p.id = l.policy_id
    -- 10,000 … 521,500 (and a cent, but in yen): some halvings round half-up.
    CROSS JOIN LATERAL (SELECT (10000 + (hashtext(l.id) & 1023) * 500)::numeric
                               + CASE p.currency WHEN 'JPY' THEN 0 ELSE 0.01 END AS amount) AS a""",
    """INSERT INTO underwriting.limit_amounts (id, created_at, limit_id, amount, payment_terms_days,
        effective_from, effective_to, reason, source, decided_by, superseded_at)
    SELECT 'lam_rv_' || substr(r.id, 8), now(), r.limit_id, r.decided_amount, 90,
           DATE '2027-01-01', NULL, 'approved by the decision table', 'request', 'bench', NULL
    FROM underwriting.limit_requests r""",
    """INSERT INTO underwriting.events (id, type, occurred_at, subject_id, data)
    SELECT 'evt_rv_' || substr(l.id, 8), 'limit.changed', now(), l.id,
           json_build_object('limit_id', l.id, 'policy_id', l.policy_id, 'buyer_id', l.buyer_id,
                             'change', 'grant', 'new_amount', a.amount)
    FROM underwriting.credit_limits l JOIN underwriting.limit_amounts a ON a.limit_id = l.id
    ORDER BY l.id""",
    """INSERT INTO underwriting.event_parties (party_id, event_seq)
    SELECT 'policyholder:' || p.policyholder_id, e.seq FROM underwriting.events e
    JOIN underwriting.credit_limits l ON l.id = e.subject_id
    JOIN underwriting.policies p ON p.id = l.policy_id
    UNION ALL
    SELECT 'bank:' || s.bank_id, e.seq FROM underwriting.events e
    JOIN underwriting.credit_limits l ON l.id = e.subject_id
    JOIN underwriting.policy_assignments s ON s.policy_id = l.policy_id""",
    "INSERT INTO underwriting.country_risks (country, level, updated_at, updated_by)"
    " VALUES ($3, $13::int, now(), 'bench')",
]


async def seed(url: str, buyers: int, policies: int, country: str) -> None:
    kinds = profile_columns()
    args: list[Any] = [buyers, policies, country]
    for kind in ("strong", "weak", "weaker"):
        args.extend(kinds[kind])
    args.append(LEVEL_BEFORE)
    conn = await asyncpg.connect(url)
    try:
        for statement in SEED:
            used = sorted({int(n) for n in _placeholders(statement)})
            started = time.perf_counter()
            await conn.execute(_renumbered(statement, used), *[args[n - 1] for n in used])
            table = statement.split("INTO ", 1)[1].split(" ", 1)[0]
            print(f"  {table}: {time.perf_counter() - started:.1f}s")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def _placeholders(statement: str) -> list[str]:
    return re.findall(r"\$(\d+)", statement)


def _renumbered(statement: str, used: list[int]) -> str:
    """A statement's `$n` renumbered 1… over the parameters it uses (asyncpg wants them all)."""
    return re.sub(r"\$(\d+)", lambda m: f"${used.index(int(m[1])) + 1}", statement)


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            t: int(await conn.fetchval(f"SELECT count(*) FROM underwriting.{t}")) for t in TABLES
        }
    finally:
        await conn.close()


def memory(pid: int) -> dict[str, str]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in status)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process (0 when it is gone or not local)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backends(url: str, name: str) -> dict[int, float]:
    """The database's server processes (the service's pool) and their CPU time so far (a local
    server only: elsewhere, nothing)."""
    conn = await asyncpg.connect(url)
    try:
        pids = [r["pid"] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name)]  # fmt: skip
    finally:
        await conn.close()
    return {pid: cpu_seconds(pid) for pid in pids}


def start_service(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "TCI_LOG_LEVEL": "WARNING",
           "TCI_FIXED_TODAY": TODAY.isoformat()}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "services.underwriting.main:create_app",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT)  # fmt: skip
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise SystemExit("the service did not start")


def downgrade(port: int, country: str, url: str, name: str) -> tuple[float, dict[str, Any], float]:
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="underwriter", subject="bench-uw")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=900) as http:
        # Warm up: one read of the same country (connections, caches) before the clock starts.
        assert http.get(f"/v1/country-risks/{country}").status_code == 200
        pool = asyncio.run(backends(url, name))
        started = time.perf_counter()
        response = http.put(f"/v1/country-risks/{country}", json={"level": LEVEL_AFTER})
        took = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{response.status_code}: {response.text[:1000]}")
    after = asyncio.run(backends(url, name))
    return took, response.json(), sum(cpu - pool.get(pid, 0.0) for pid, cpu in after.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buyers", type=int, default=1_000_000)
    parser.add_argument("--policies", type=int, default=0, help="default: one per 500 buyers")
    parser.add_argument("--country", default="BR")
    parser.add_argument("--port", type=int, default=18021)
    parser.add_argument("--database", default="tci_bench_reevaluate",
                        help="a name or a URL; created, or recreated if this benchmark's")  # fmt: skip
    args = parser.parse_args()
    policies = args.policies or max(1, args.buyers // 500)
    url, admin, name = database_url(args.database)
    template = f"{name}_seed"  # the seeded book, kept: later runs of the same size copy it
    template_url = urlunsplit(urlsplit(url)._replace(path=f"/{template}"))
    # The schema's head too: a book is seeded again under a tree whose tables are laid out
    # otherwise (a page's fill factor, say), rather than copied and brought up.
    head = ScriptDirectory.from_config(alembic_config("underwriting", url)).get_current_head()
    seeded = f"{args.buyers} {policies} {args.country} {head}"
    if asyncio.run(fresh_database(admin, name, seeded, template)):
        upgrade("underwriting", template_url)
        started = time.perf_counter()
        asyncio.run(seed(template_url, args.buyers, policies, args.country))
        print(f"seeded {args.buyers:,} buyers of {args.country} with a limit each on "
              f"{policies:,} policies in {time.perf_counter() - started:.1f}s")  # fmt: skip
        asyncio.run(copy_template(admin, name, seeded, template))
    else:
        print(f"copied {template} ({args.buyers:,} buyers, {policies:,} policies)")
    before = asyncio.run(counts(url))
    server = start_service(url, args.port)
    try:
        rss_before = memory(server.pid)["VmRSS"]
        load_before, cpu_before = os.getloadavg()[0], cpu_seconds(server.pid)
        took, answer, database_cpu = downgrade(args.port, args.country, url, name)
        service_cpu = cpu_seconds(server.pid) - cpu_before
        after_memory = memory(server.pid)
    finally:
        server.terminate()
        server.wait()
    after = asyncio.run(counts(url))
    print(f"PUT /v1/country-risks/{args.country} level {LEVEL_BEFORE} -> {LEVEL_AFTER}: "
          f"{took:.1f}s end to end (target: under 30 s for 1,000,000 limits)")  # fmt: skip
    print(f"answer: {answer['buyers_regraded']:,} buyers re-graded, "
          f"{answer['limits_changed']:,} limits changed")  # fmt: skip
    written = {t: after[t] - before[t] for t in TABLES if t not in ("buyers", "credit_limits")}
    print("rows written: " + ", ".join(f"{t} {n:,}" for t, n in written.items()))
    print(f"CPU during the request: database server {database_cpu:.1f}s, service "
          f"{service_cpu:.1f}s (load average before: {load_before:.1f} on {os.cpu_count()} "
          "cores)")  # fmt: skip
    print(f"service memory: RSS before {rss_before}, peak (VmHWM) {after_memory['VmHWM']}, "
          f"RSS after {after_memory['VmRSS']}")  # fmt: skip


if __name__ == "__main__":
    main()
