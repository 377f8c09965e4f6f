"""Contract fuzzing: schemathesis against the OpenAPI of each of the three services, run as real
processes; exits non-zero on any failure. `make fuzz` runs it; CI runs `make fuzz` after `make test`.

    .venv/bin/python tests/fuzz/run.py [--st .venv-fuzz/bin/st] [--max-examples 25] [--seed 8]

- Database: `TEST_DATABASE_URL` when it is a `postgresql://` URL (a database `<name>_fuzz` is
  created beside it and dropped at the end), else SQLite files in a temporary directory.
- Services: the three apps as uvicorn processes on free loopback ports, migrated first, with every
  rate-limit tier off (`TCI_RATE_LIMIT*=""`) so that the fuzzer measures the contract, not the
  limiter; stopped at the end.
- Callers: each service is fuzzed with a `service` token (every route open to it), then once more,
  shorter, with a policyholder's token (the other side of the role checks).
- Checks: not_a_server_error, status_code_conformance, response_schema_conformance,
  content_type_conformance, response_headers_conformance, unsupported_method.
- Bounds: at most `--max-examples` cases per operation and phase (examples, coverage, fuzzing; the
  stateful phase is left out: its request chains grow with the run and it adds no new check here),
  one fixed seed (`--seed`, or `FUZZ_SEED`) so that CI is reproducible, `--workers 1`, and a hard
  timeout per run (`--timeout`). With the defaults the whole run takes about three minutes on two
  cores. Schemathesis' own output goes to `var/fuzz/<run>.log` and is printed only for a run that
  failed (with its curl reproduction); the reports (JUnit, NDJSON) are kept beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from shared.auth import mint_token
from shared.calendar import today as business_today
from shared.migrations import upgrade
from shared.settings import DEVELOPMENT_JWT_SECRET, async_database_url

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("underwriting", "claims", "collections")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "unsupported_method",
)
PHASES = "examples,coverage,fuzzing"
# Rate limiting off: every tier's setting empty (see shared/settings.py).
NO_RATE_LIMIT = {"TCI_RATE_LIMIT": "", "TCI_RATE_LIMIT_ANONYMOUS": "", "TCI_RATE_LIMIT_SERVICE": ""}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database() -> Iterator[dict[str, str]]:
    """One database URL per service, migrated to head; removed afterwards."""
    plain = os.environ.get("TEST_DATABASE_URL", "").replace(
        "postgresql+asyncpg://", "postgresql://"
    )
    if plain.startswith(("postgresql://", "postgres://")):
        import psycopg
        from sqlalchemy.engine import make_url

        base = make_url(plain)
        name = f"{base.database}_fuzz"
        admin = base.set(drivername="postgresql", database="postgres").render_as_string(False)

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        drop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = async_database_url(base.set(database=name).render_as_string(False))
        urls = dict.fromkeys(SERVICES, url)
        print(f"fuzz: PostgreSQL database {name}", flush=True)
        try:
            _migrate(urls)
            yield urls
        finally:
            drop()
    else:
        directory = tempfile.mkdtemp(prefix="tci-fuzz-")
        urls = {s: f"sqlite+aiosqlite:///{directory}/{s}.db" for s in SERVICES}
        print(f"fuzz: SQLite in {directory}", flush=True)
        try:
            _migrate(urls)
            yield urls
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _migrate(urls: dict[str, str]) -> None:
    for service, url in urls.items():
        upgrade(service, url)


@contextmanager
def services(databases: dict[str, str], log_dir: Path) -> Iterator[dict[str, str]]:
    """The three services as uvicorn processes on free loopback ports, ready; stopped afterwards."""
    urls = {s: f"http://127.0.0.1:{_free_port()}" for s in SERVICES}
    processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    try:
        for service in SERVICES:
            env = {
                **os.environ,
                "DATABASE_URL": databases[service],
                "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET,
                "TCI_UNDERWRITING_URL": urls["underwriting"],
                "TCI_CLAIMS_URL": urls["claims"],
                "TCI_COLLECTIONS_URL": urls["collections"],
                "TCI_LOG_LEVEL": "WARNING",
                **NO_RATE_LIMIT,
            }
            log = open(log_dir / f"{service}.log", "wb")  # noqa: SIM115
            port = urls[service].rsplit(":", 1)[1]
            command = [
                sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.main:create_app",
                "--host", "127.0.0.1", "--port", port, "--no-access-log",
            ]  # fmt: skip
            process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
            processes.append((process, log))
        deadline = time.monotonic() + 60
        for service in SERVICES:
            while True:
                if any(process.poll() is not None for process, _ in processes):
                    raise RuntimeError(f"a service exited at startup; see {log_dir}")
                try:
                    if httpx.get(f"{urls[service]}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service} did not become ready; see {log_dir}")
                time.sleep(0.2)
        yield urls
    finally:
        for process, _ in processes:
            process.terminate()
        for process, process_log in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            process_log.close()


def seed(urls: dict[str, str], holder: str) -> dict[str, str]:
    """Real resources to aim at, owned by `holder`, created over HTTP with the roles that may:
    a policy, a buyer with a limit and a limit request, an overdue notification, a claim with a
    document and a dispute, a collection case with an activity and a payment. Each path parameter
    named after one is then pinned to it (`path.<name>`) in the seeded runs, so that generated
    bodies and queries reach the rules instead of stopping at a 404. A step that fails is
    reported and skipped: the unseeded run still covers its routes."""
    today = business_today("Asia/Shanghai")

    def day(offset: int) -> str:
        return (today + dt.timedelta(days=offset)).isoformat()

    def auth(role: str, party: str | None = None) -> dict[str, str]:
        token = mint_token(
            DEVELOPMENT_JWT_SECRET, role=role, party_id=party, subject=f"seed-{role}"
        )
        return {"Authorization": f"Bearer {token}"}

    def money(amount: str) -> dict[str, str]:
        return {"amount": amount, "currency": "EUR"}

    ids: dict[str, str] = {}

    def step(name: str, response: httpx.Response, *keys: tuple[str, str]) -> dict[str, object]:
        if response.status_code >= 300:
            print(f"fuzz: seed {name}: {response.status_code} {response.text[:300]}", flush=True)
            return {}
        body: dict[str, object] = response.json()
        for param, attribute in keys:
            if body.get(attribute):
                ids[param] = str(body[attribute])
        return body

    uw, holder_auth = auth("underwriter"), auth("policyholder", holder)
    invoice = {"number": "FUZZ-1", "amount": money("80000"), "shipment_date": day(-100),
               "due_date": day(-40)}  # fmt: skip
    with httpx.Client(base_url=urls["underwriting"], timeout=30) as client:
        step("policy", client.post("/v1/policies", headers=uw, json={
            "policyholder_id": holder, "currency": "EUR", "start_date": day(-200),
            "end_date": day(165), "cover_type": "whole_turnover", "max_liability": money("1000000"),
            "premium_rate_pct": "0.5"}), ("policy_id", "id"))  # fmt: skip
        step("buyer", client.post("/v1/buyers", headers=uw, json={
            "name": "Fuzz GmbH", "country": "DE", "registration_number": "HRB-FUZZ-1"}),
            ("buyer_id", "id"))  # fmt: skip
        policy, buyer = ids.get("policy_id", "-"), ids.get("buyer_id", "-")
        step("limit", client.post(f"/v1/policies/{policy}/limits", headers=uw, json={
            "buyer_id": buyer, "amount": money("100000"), "effective_from": day(-200),
            "payment_terms_days": 90, "reason": "seed"}), ("limit_id", "id"))  # fmt: skip
        other = step("second buyer", client.post("/v1/buyers", headers=uw, json={
            "name": "Fuzz SARL", "country": "FR", "registration_number": "RCS-FUZZ-2"}))  # fmt: skip
        step("limit request", client.post(f"/v1/policies/{policy}/limit-requests",
             headers=holder_auth, json={"buyer_id": other.get("id", "-"),
             "amount": money("20000"), "payment_terms_days": 60}), ("request_id", "id"))  # fmt: skip
        step("sanction", client.post("/v1/sanctions", headers=uw, json={
            "country": "KP", "reason": "seed"}), ("sanction_id", "id"))  # fmt: skip
    with httpx.Client(base_url=urls["claims"], timeout=30) as client:
        step("overdue notification", client.post("/v1/overdue-notifications", headers=holder_auth,
             json={"policy_id": policy, "buyer_id": buyer, "kind": "overdue",
                   "invoices": [invoice]}), ("notification_id", "id"))  # fmt: skip
        claim = step("claim", client.post("/v1/claims", headers=holder_auth, json={
            "policy_id": policy, "buyer_id": buyer, "cause": "insolvency", "event_date": day(-5),
            "invoices": [invoice]}), ("claim_id", "id"))  # fmt: skip
        claim_id = ids.get("claim_id", "-")
        kinds = claim.get("missing_documents") or ["invoice"]
        step("document", client.post(f"/v1/claims/{claim_id}/documents", headers=holder_auth,
             data={"kind": str(kinds[0])},  # type: ignore[index]
             files={"file": ("scan.pdf", b"%PDF-1.4", "application/pdf")}),
             ("document_id", "id"))  # fmt: skip
        step("dispute", client.post(f"/v1/claims/{claim_id}/disputes", headers=holder_auth,
             json={"raised_on": day(-2), "description": "seed", "invoice_numbers": ["FUZZ-1"]}),
             ("dispute_id", "id"))  # fmt: skip
    with httpx.Client(base_url=urls["collections"], timeout=30) as client:
        step("case", client.post("/v1/cases", headers=auth("service"), json={
            "creditor_id": holder, "buyer_id": buyer, "debtor_country": "DE",
            "invoices": [{"number": "FUZZ-1", "amount": money("5000"), "due_date": day(-40)}]}),
            ("case_id", "id"))  # fmt: skip
        case = ids.get("case_id", "-")
        step("activity", client.post(f"/v1/cases/{case}/activities", headers=auth("collector"),
             json={"kind": "call", "occurred_on": day(0), "note": "seed"}), ("activity_id", "id"))  # fmt: skip
        step("payment", client.post(f"/v1/cases/{case}/payments", headers=auth("collector"),
             json={"amount": money("100"), "received_on": day(0)}), ("payment_id", "id"))  # fmt: skip
    print(f"fuzz: seeded {', '.join(f'{k}={v}' for k, v in sorted(ids.items()))}", flush=True)
    return ids


def run_schemathesis(
    st: str, service: str, url: str, run: Run, args: argparse.Namespace, report_dir: Path
) -> tuple[int, dict[str, int]]:
    """One schemathesis run; the number of cases it generated and its failures by check."""
    name = f"{service}-{run.name}"
    ndjson = report_dir / f"{name}.ndjson"
    config = report_dir / f"{name}.toml"
    log = report_dir / f"{name}.log"
    pinned = "".join(f'"path.{k}" = "{v}"\n' for k, v in sorted(run.pinned.items()))
    config.write_text(f"[parameters]\n{pinned}" if pinned else "")
    command = [
        st, "--config-file", str(config), "run", f"{url}/openapi.json",
        "--header", f"Authorization: Bearer {run.token}",
        "--checks", ",".join(CHECKS),
        "--phases", PHASES,
        "--max-examples", str(run.max_examples),
        "--seed", str(args.seed),
        "--workers", str(args.workers),
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--request-timeout", "30",
        "--no-color",
        "--report", "junit,ndjson",
        "--report-junit-path", str(report_dir / f"{name}.xml"),
        "--report-ndjson-path", str(ndjson),
    ]  # fmt: skip
    print(f"\nfuzz: {name}: st run {url}/openapi.json --max-examples {run.max_examples}"
          f"{' with ' + config.name if pinned else ''}", flush=True)  # fmt: skip
    started = time.monotonic()
    try:
        with log.open("wb") as out:
            result = subprocess.run(
                command, cwd=report_dir, timeout=args.timeout, check=False, stdout=out, stderr=out
            )
        code = result.returncode
    except subprocess.TimeoutExpired:
        print(f"fuzz: {name}: timed out after {args.timeout} s", flush=True)
        code = -1
    cases, failures = _summary(ndjson)
    if code != 0 and not failures:
        failures = {f"schemathesis exit status {code}": 1}
    took = time.monotonic() - started
    if failures:
        print(log.read_text(errors="replace"), flush=True)
    print(f"fuzz: {name}: {cases} cases, failures {failures or 0}, {took:.0f} s", flush=True)
    return cases, failures


def _summary(ndjson: Path) -> tuple[int, dict[str, int]]:
    """Cases generated and unique failures by check, read from schemathesis' NDJSON events."""
    cases = 0
    unique: set[tuple[str, str, str, str]] = set()
    if not ndjson.exists():
        return cases, {}
    for line in ndjson.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        payload = event.get("ScenarioFinished")
        if not isinstance(payload, dict):
            continue
        recorder = payload.get("recorder") or {}
        cases += len(recorder.get("cases") or {})
        for checks in (recorder.get("checks") or {}).values():
            for check in checks:
                if str(check.get("status")).lower() != "failure":
                    continue
                failure = (check.get("failure_info") or {}).get("failure") or {}
                unique.add((check["name"], str(failure.get("operation")),
                            str(failure.get("title")), str(failure.get("message"))))  # fmt: skip
    failures: dict[str, int] = {}
    for name, *_ in unique:
        failures[name] = failures.get(name, 0) + 1
    return cases, failures


@dataclass
class Run:
    name: str
    token: str
    max_examples: int
    pinned: dict[str, str] = field(default_factory=dict)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--st", default=str(ROOT / ".venv-fuzz" / "bin" / "st"))
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", 20)),
                        help="cases per operation and phase, service token, ids generated")  # fmt: skip
    parser.add_argument("--max-examples-seeded", type=int, default=10,
                        help="the same, with path ids pinned to seeded resources")  # fmt: skip
    parser.add_argument("--max-examples-policyholder", type=int, default=5,
                        help="the same, a policyholder's token, ids pinned to its resources")  # fmt: skip
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", 8)))
    # One worker: with two, hypothesis' lambda descriptions parse source in both threads at once
    # and CPython 3.11's parser can fail ("AST constructor recursion depth mismatch"), a harness
    # error that is not a finding.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per schemathesis run")
    parser.add_argument("--only", choices=SERVICES, action="append", help="fuzz only these")
    parser.add_argument("--runs", default="service,seeded,policyholder",
                        help="which runs, comma-separated")  # fmt: skip
    args = parser.parse_args()
    args.st = str(Path(args.st).resolve())  # schemathesis runs in the report directory

    report_dir = ROOT / "var" / "fuzz"
    shutil.rmtree(report_dir, ignore_errors=True)
    report_dir.mkdir(parents=True)
    holder = "ph-fuzz"
    service_token = mint_token(DEVELOPMENT_JWT_SECRET, role="service", subject="fuzz")
    holder_token = mint_token(
        DEVELOPMENT_JWT_SECRET, role="policyholder", party_id=holder, subject="fuzz-ph"
    )
    wanted = set(args.runs.split(","))
    totals: list[tuple[str, str, int, dict[str, int]]] = []
    started = time.monotonic()
    with database() as databases, services(databases, report_dir) as urls:
        pinned = seed(urls, holder) if wanted & {"seeded", "policyholder"} else {}
        runs = [
            Run("service", service_token, args.max_examples),
            Run("seeded", service_token, args.max_examples_seeded, pinned),
            Run("policyholder", holder_token, args.max_examples_policyholder, pinned),
        ]
        for run in runs:
            if run.name not in wanted:
                continue
            for service in args.only or SERVICES:
                cases, failures = run_schemathesis(
                    args.st, service, urls[service], run, args, report_dir
                )
                totals.append((service, run.name, cases, failures))
    print(f"\nfuzz: summary ({time.monotonic() - started:.0f} s, seed {args.seed})")
    failed = False
    for service, name, cases, failures in totals:
        failed = failed or bool(failures)
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(failures.items())) or "0"
        print(f"  {service:<12} {name:<13} {cases:>6} cases   failures {shown}")
    print(f"  {'total':<26} {sum(t[2] for t in totals):>6} cases")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
