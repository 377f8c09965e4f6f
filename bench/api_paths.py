"""Ordinary API paths against `/healthz`, side by side in one run: starts the three services as
real uvicorn processes on PostgreSQL, seeds what the paths need through the API, drives each path
with `wrk` (16 connections, one thread) and prints each rate and its ratio to `/healthz` of the
same service, against the targets of issue 12 (reads ≥ 40 %, writes ≥ 20 %, cross-service writes
≥ 10 %). It also drives a floor measured the same way in the same run: a plain FastAPI app reading
the same policy through the SQLAlchemy ORM (`bench/floor_app.py`, no service around it), and
prints the service's policy read as a share of it.

    cd /tmp/w12 && PYTHONPATH=. .venv/bin/python bench/api_paths.py [--database tci_api_paths]
        [--seconds 5] [--connections 16] [--tree /path/to/other/checkout ...] [--paths a,b]

`--tree` (repeatable) runs the services of each checkout given (default: this one), interleaved
path by path, so a before/after comparison is measured in one run on the same loaded machine.
The database server is `BENCH_DATABASE_URL` (default postgresql://postgres@127.0.0.1:5432/postgres;
a socket URL such as postgresql://postgres@/postgres?host=/var/run/postgresql works too); the
benchmark's database is `--database` (one per tree: `<name>_1`, `<name>_2` when there are
several), created when absent, dropped at the end only when this run created it (`--keep` keeps
it). Needs `wrk` (`apt-get install wrk`). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from shared.auth import mint_token
from shared.settings import DEVELOPMENT_JWT_SECRET, async_database_url

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("underwriting", "claims", "collections")
FLOOR = "floor"  # bench/floor_app.py, started beside the services of each tree
TODAY = "2027-07-01"  # pinned, so every date below is in its window
TARGETS = {"read": 0.40, "write": 0.20, "cross-service write": 0.10}
HOLDER = "ph-bench"
EUR = '{{"amount":"{amount}","currency":"EUR"}}'
BOUNDARY = "bench-boundary"
# A document upload: one PDF of a kind the claim keeps asking for (its file stays open).
DOCUMENT = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ninvoice\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="invoice.pdf"'
    f"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4 bench {{n}}\r\n--{BOUNDARY}--\r\n"
)
CLAIMS = 50  # claims seeded for the document path, so uploads do not queue on one claim's lock


def bearer(role: str, party: str | None = None) -> str:
    token = mint_token(DEVELOPMENT_JWT_SECRET, role=role, party_id=party, subject=f"bench-{role}",
                       ttl_seconds=24 * 3600)  # fmt: skip
    return f"Bearer {token}"


@dataclass
class Path_:
    """One path to drive: `{n}` in the path or body becomes a number unique to the request,
    `{buyer}` one of the seeded buyers in turn, `{claim}` one of the seeded claims in turn."""

    name: str
    kind: str  # read, write, cross-service write
    service: str
    method: str
    path: str
    body: str = ""
    role: tuple[str, str | None] = ("underwriter", None)
    keyed: bool = False  # sends an Idempotency-Key (a state-changing POST)
    content_type: str = "application/json"


@dataclass
class Tree:
    """One checkout's services, their URLs and what was seeded there."""

    root: Path
    pythonpath: str  # the root, then any further folders given with it
    database: str
    urls: dict[str, str]
    seeds: dict[str, Any] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    created: bool = False


def paths(seeds: dict[str, Any]) -> list[Path_]:
    policy, buyer = seeds["policy"], seeds["buyer"]
    holder = ("policyholder", HOLDER)
    invoice = ('{"number":"PREFIX-{n}","amount":' + EUR.format(amount="1000.00")
               + ',"shipment_date":"2027-03-01","due_date":"2027-05-20"}')  # fmt: skip
    return [
        Path_("/healthz", "probe", "underwriting", "GET", "/healthz"),
        Path_("floor: FastAPI ORM read", FLOOR, FLOOR, "GET", f"/policies/{policy}"),
        Path_("GET /v1/policies/{id}", "read", "underwriting", "GET", f"/v1/policies/{policy}"),
        Path_("limit request", "write", "underwriting", "POST",
              f"/v1/policies/{policy}/limit-requests",
              '{"buyer_id":"{buyer}","amount":' + EUR.format(amount="20000.00")
              + ',"payment_terms_days":60}', holder, keyed=True),
        Path_("declaration of one invoice", "write", "underwriting", "POST",
              f"/v1/policies/{policy}/declarations",
              '{"invoices":[{"number":"DCL-{n}","buyer_id":"' + buyer + '","amount":'
              + EUR.format(amount="500.00")
              + ',"shipment_date":"2027-06-01","due_date":"2027-08-30"}]}', holder, keyed=True),
        Path_("buyer registration", "write", "underwriting", "POST", "/v1/buyers",
              '{"name":"Bench {n} GmbH","country":"DE","registration_number":"HRB-{n}",'
              '"indicators":{"current_ratio":"2.5","dso_days":"40","dso_prior_year_days":"40",'
              '"overdue_ratio":"0.01","litigation_count":0,"management_changes_12m":0,'
              '"equity":' + EUR.format(amount="50000000") + "}}", keyed=True),
        Path_("overdue notification", "cross-service write", "claims", "POST",
              "/v1/overdue-notifications",
              f'{{"policy_id":"{policy}","buyer_id":"{{buyer}}","kind":"overdue","invoices":['
              + invoice.replace("PREFIX", "OVD") + "]}", holder, keyed=True),
        Path_("claim filing", "cross-service write", "claims", "POST", "/v1/claims",
              f'{{"policy_id":"{policy}","buyer_id":"{{buyer}}","cause":"insolvency",'
              '"event_date":"2027-06-26","invoices":[' + invoice.replace("PREFIX", "CLM") + "]}",
              holder, keyed=True),
        Path_("claim document", "write", "claims", "POST", "/v1/claims/{claim}/documents",
              DOCUMENT, holder, keyed=True,
              content_type=f"multipart/form-data; boundary={BOUNDARY}"),
        Path_("page of ten cases", "read", "collections", "GET", "/v1/cases?limit=10", "",
              ("collector", None)),
        Path_("coverage check", "read", "underwriting", "POST", "/v1/coverage-checks",
              f'{{"policy_id":"{policy}","buyer_id":"{{buyer}}","invoice_amount":'
              + EUR.format(amount="15000.00")
              + ',"shipment_date":"2027-07-10","due_date":"2027-09-30"}', holder),
    ]  # fmt: skip


LUA = """
local counter = 0
local buyers = %(buyers)s
local claims = %(claims)s
local path, body, method = %(path)s, %(body)s, %(method)s
local headers = {["Content-Type"] = %(content_type)s, ["Authorization"] = %(auth)s}
function request()
  counter = counter + 1
  local n = %(prefix)s .. counter
  local buyer = buyers[counter %% #buyers + 1]
  local claim = #claims > 0 and claims[counter %% #claims + 1] or ""
  local h = headers
  if %(keyed)s then h["Idempotency-Key"] = "k-" .. n end
  local b = nil
  if body ~= "" then b = body:gsub("{n}", n):gsub("{buyer}", buyer):gsub("{claim}", claim) end
  return wrk.format(method, path:gsub("{n}", n):gsub("{buyer}", buyer):gsub("{claim}", claim), h, b)
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a valid Lua string literal


def wrk(url: str, p: Path_, seeds: dict[str, Any], seconds: float, connections: int
        ) -> dict[str, Any]:  # fmt: skip
    """Run wrk on one path; its rate, latencies and non-2xx count."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "path.lua")

        def write_script() -> None:
            """The script, with numbers of its own: the warm-up's requests (some still running
            when it stops) are never sent again with their Idempotency-Key, so the run measures
            new requests, not replays or 409 `idempotency-key-in-use`."""
            script.write_text(LUA % {
                "buyers": "{" + ",".join(lua_string(b) for b in seeds["buyers"]) + "}",
                "claims": "{" + ",".join(lua_string(c) for c in seeds.get("claims", [])) + "}",
                "content_type": lua_string(p.content_type), "path": lua_string(p.path),
                "body": lua_string(p.body), "method": lua_string(p.method),
                "auth": lua_string(bearer(*p.role)), "prefix": lua_string(uuid.uuid4().hex[:8]),
                "keyed": "true" if p.keyed else "false",
            })  # fmt: skip

        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency",
                   "-s", str(script), url]  # fmt: skip
        write_script()
        subprocess.run([*command[:3], "-d1s", *command[4:]], check=True, capture_output=True)
        write_script()
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "p50": re.search(r"^\s+50%\s+(\S+)", out, re.M)[1],  # type: ignore[index]
        "p99": re.search(r"^\s+99%\s+(\S+)", out, re.M)[1],  # type: ignore[index]
        "bad": int(bad[1]) if bad else 0,
    }


# ---------------------------------------------------------------- database and processes


def admin_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    return make_url(admin_url()).set(database=name).render_as_string(False)


async def ensure_database(name: str) -> bool:
    """Create the database when absent; whether this call created it."""
    conn = await asyncpg.connect(database_url("postgres"))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(database_url("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tree: Tree) -> None:
    """Migrate the tree's database with its own migrations and start its three services."""
    env = {**os.environ, "PYTHONPATH": tree.pythonpath}
    url = database_url(tree.database)
    for service in SERVICES:
        subprocess.run([sys.executable, "-c", "import sys; from shared.migrations import upgrade; "
                        "upgrade(sys.argv[1], sys.argv[2])", service, async_database_url(url)],
                       env=env, cwd=tree.root, check=True, capture_output=True)  # fmt: skip
    env.update({
        "DATABASE_URL": url, "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET, "TCI_FIXED_TODAY": TODAY,
        "TCI_UNDERWRITING_URL": tree.urls["underwriting"], "TCI_CLAIMS_URL": tree.urls["claims"],
        "TCI_COLLECTIONS_URL": tree.urls["collections"], "TCI_LOG_LEVEL": "WARNING",
        "TCI_RATE_LIMIT": "", "TCI_RATE_LIMIT_ANONYMOUS": "", "TCI_RATE_LIMIT_SERVICE": "",
        # Three services of each tree on a server others share (100 connections at most).
        "TCI_DB_POOL_SIZE": os.environ.get("TCI_DB_POOL_SIZE", "8"),
    })  # fmt: skip
    for service in (*SERVICES, FLOOR):
        port = tree.urls[service].rsplit(":", 1)[1]
        app = "bench.floor_app" if service == FLOOR else f"services.{service}.main"
        tree.processes.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", f"{app}:create_app",
             "--host", "127.0.0.1", "--port", port, "--no-access-log", "--no-server-header",
             "--log-level", "warning"], env=env, cwd=tree.root))  # fmt: skip
    deadline = time.monotonic() + 60
    for service in (*SERVICES, FLOOR):
        probe = "/healthz" if service == FLOOR else "/readyz"
        while True:
            try:
                if httpx.get(f"{tree.urls[service]}{probe}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} of {tree.root} did not become ready")
            time.sleep(0.2)


def stop(tree: Tree) -> None:
    for process in tree.processes:
        process.terminate()
    for process in tree.processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# ---------------------------------------------------------------- seeding through the API


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), f"{response.request.url}: {response.text[:500]}"
    return response.json()  # type: ignore[no-any-return]


def seed(tree: Tree, buyers: int, claims: int = 0) -> None:
    """A policy, buyers with a limit each, ten collection cases, and `claims` claims (for the
    document path)."""
    uw = {"Authorization": bearer("underwriter")}
    with httpx.Client(base_url=tree.urls["underwriting"], headers=uw, timeout=30) as client:
        policy = created(client.post("/v1/policies", json={
            "policyholder_id": HOLDER, "currency": "EUR", "start_date": "2027-01-01",
            "end_date": "2027-12-31", "cover_type": "whole_turnover",
            "max_liability": {"amount": "1000000000", "currency": "EUR"},
            "premium_rate_pct": "0.35"}))["id"]  # fmt: skip
        ids = []
        for n in range(buyers):
            buyer = created(client.post("/v1/buyers", json={
                "name": f"Seed {n} GmbH", "country": "DE",
                "registration_number": f"SEED-{uuid.uuid4().hex[:12]}"}))["id"]  # fmt: skip
            created(client.post(f"/v1/policies/{policy}/limits", json={
                "buyer_id": buyer, "amount": {"amount": "10000000", "currency": "EUR"},
                "effective_from": "2027-01-01", "payment_terms_days": 120,
                "reason": "bench"}))  # fmt: skip
            ids.append(buyer)
    collector = {"Authorization": bearer("service")}
    with httpx.Client(base_url=tree.urls["collections"], headers=collector) as client:
        for n in range(12):
            created(client.post("/v1/cases", json={
                "creditor_id": HOLDER, "buyer_id": ids[n % len(ids)], "debtor_country": "DE",
                "invoices": [{"number": f"CASE-{n}", "amount": {"amount": "1000", "currency": "EUR"},
                              "due_date": "2027-03-01"}]}))  # fmt: skip
    tree.seeds = {"policy": policy, "buyer": ids[0], "buyers": ids}
    holder = {"Authorization": bearer("policyholder", HOLDER)}
    with httpx.Client(base_url=tree.urls["claims"], headers=holder, timeout=30) as client:
        tree.seeds["claims"] = [created(client.post("/v1/claims", json={
            "policy_id": policy, "buyer_id": ids[n % len(ids)], "cause": "insolvency",
            "event_date": "2027-06-26", "invoices": [{
                "number": f"SEED-{n}", "amount": {"amount": "1000.00", "currency": "EUR"},
                "shipment_date": "2027-03-01", "due_date": "2027-05-20"}]}))["id"]
            for n in range(claims)]  # fmt: skip


def check_once(tree: Tree, p: Path_) -> None:
    """One request of the path, which must succeed: a benchmark of refusals would mean nothing."""
    n = uuid.uuid4().hex[:8]
    buyer = tree.seeds["buyers"][0]
    claim = (tree.seeds.get("claims") or [""])[0]
    headers = {"Authorization": bearer(*p.role), "Content-Type": p.content_type}
    if p.keyed:
        headers["Idempotency-Key"] = f"check-{n}"
    response = httpx.request(
        p.method,
        tree.urls[p.service]
        + p.path.replace("{n}", n).replace("{buyer}", buyer).replace("{claim}", claim),
        content=p.body.replace("{n}", n).replace("{buyer}", buyer).replace("{claim}", claim)
        or None,
        headers=headers,
        timeout=30,
    )
    assert response.status_code < 300, f"{p.name}: {response.status_code} {response.text[:500]}"


# ---------------------------------------------------------------- the run


def report(name: str, kind: str, rates: list[dict[str, Any]], health: list[float]) -> str:
    cells = []
    for figures, probe in zip(rates, health, strict=True):
        ratio = figures["rate"] / probe
        target = TARGETS.get(kind)
        mark = "" if target is None else (" ok" if ratio >= target else " LOW")
        bad = f" ({figures['bad']} non-2xx)" if figures["bad"] else ""
        cells.append(f"{figures['rate']:8.0f}/s {ratio:6.1%}{mark:4} p50 {figures['p50']:>8}{bad}")
    return f"{name:28} {kind:20} " + " | ".join(cells)


def profile(tree: Tree, p: Path_, args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each service of the tree while wrk drives the path (its one-second warm-up
    included; a cross-service path spends in two processes): collapsed stacks in
    `<profile>/<tree>-<path>-<service>.txt`."""
    spies = []
    for service, process in zip((*SERVICES, FLOOR), tree.processes, strict=False):
        if service == FLOOR:
            continue
        name = re.sub(r"[^a-z0-9]+", "-", f"{tree.database}-{p.name}-{service}".lower()).strip("-")
        out = Path(args.profile, f"{name}.txt")
        spies.append(subprocess.Popen(
            [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record",
             "--pid", str(process.pid), "--duration", f"{args.seconds + 1:.0f}", "--format",
             "raw", "--rate", "200", "--nonblocking", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
    return spies


def run(trees: list[Tree], args: argparse.Namespace) -> None:
    table = {tree.pythonpath: paths(tree.seeds) for tree in trees}
    wanted = set(args.paths.split(",")) if args.paths else None
    header = " | ".join(f"{t.pythonpath[-50:]:>52}" for t in trees)
    print(f"{'path':28} {'kind':20} {header}")
    health: list[float] = []
    floor: list[float] = []
    for index in range(len(table[trees[0].pythonpath])):
        results = []
        for tree in trees:
            p = table[tree.pythonpath][index]
            if wanted and p.name not in wanted and p.kind not in ("probe", FLOOR):
                break
            check_once(tree, p)
            spies = profile(tree, p, args) if args.profile else []
            url = tree.urls[p.service]
            results.append(wrk(url, p, tree.seeds, args.seconds, args.connections))
            for spy in spies:
                spy.wait()
        if len(results) != len(trees):
            continue
        if not health:
            health = [r["rate"] for r in results]
        first = table[trees[0].pythonpath][index]
        print(report(first.name, first.kind,
                     results, health), flush=True)  # fmt: skip
        if first.kind == FLOOR:
            floor = [r["rate"] for r in results]
        elif first.path.startswith("/v1/policies/") and first.method == "GET" and floor:
            shares = " | ".join(f"{r['rate'] / f:.0%}" for r, f in zip(results, floor, strict=True))
            print(f"{'  … of the floor read':49} {shares}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="tci_api_paths")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--buyers", type=int, default=50, help="buyers with a limit to seed")
    parser.add_argument(
        "--tree",
        action="append",
        help="a checkout to run (`root:extra:...` puts more folders on its path)",
    )
    parser.add_argument("--paths", help="comma-separated names of the paths to run")
    parser.add_argument("--profile", type=Path, help="a folder for py-spy profiles of each path")
    parser.add_argument("--keep", action="store_true", help="keep a database this run created")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    pythonpaths = args.tree or [str(ROOT)]
    names = [args.database] if len(pythonpaths) == 1 else [f"{args.database}_{i + 1}"
                                                      for i in range(len(pythonpaths))]  # fmt: skip
    trees = [Tree(Path(path.split(":")[0]).resolve(), path, name,
                  {s: f"http://127.0.0.1:{free_port()}" for s in SERVICES})
             for path, name in zip(pythonpaths, names, strict=True)]  # fmt: skip
    for tree in trees:
        tree.urls[FLOOR] = f"http://127.0.0.1:{free_port()}"
    wanted = set(args.paths.split(",")) if args.paths else None
    try:
        for tree in trees:
            tree.created = asyncio.run(ensure_database(tree.database))
            start(tree)
            seed(tree, args.buyers, CLAIMS if wanted is None or "claim document" in wanted else 0)
        print(f"{len(trees)} tree(s), {args.connections} connections, {args.seconds:.0f} s a path, "
              f"ratios to /healthz of underwriting in the same tree")  # fmt: skip
        run(trees, args)
    finally:
        for tree in trees:
            stop(tree)
            if tree.created and not args.keep:
                asyncio.run(drop_database(tree.database))


if __name__ == "__main__":
    main()
