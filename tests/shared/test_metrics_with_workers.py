"""`/metrics` with several uvicorn workers (the image runs `TCI_WORKERS`, default 2): with
`PROMETHEUS_MULTIPROC_DIR` set (the entry point sets it), both workers start although only one can
bind `TCI_METRICS_PORT`, and a scrape sums every worker's figures."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import ROOT, backend, create_migrated_database

REQUESTS = 60


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz_count(text: str) -> float:
    return sum(float(m[1]) for m in re.finditer(
        r'^http_requests_total\{[^}]*route="/healthz"[^}]*\} (\S+)$', text, re.MULTILINE))  # fmt: skip


@pytest.mark.e2e
def test_two_workers_start_and_a_scrape_sums_both() -> None:
    b = backend()
    database = f"{b.main_database}_metrics_workers"
    create_migrated_database(b, database)
    directory = Path(tempfile.mkdtemp(prefix="tci-metrics-test-"))
    port, metrics_port = _port(), _port()
    env = {**os.environ, "DATABASE_URL": b.url_for(database, "collections"),
           "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET, "TCI_LOG_LEVEL": "INFO",
           "TCI_RATE_LIMIT": "", "TCI_RATE_LIMIT_ANONYMOUS": "",
           "TCI_METRICS_PORT": str(metrics_port), "PROMETHEUS_MULTIPROC_DIR": str(directory)}  # fmt: skip
    log = directory.parent / f"{directory.name}.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "services.collections.main:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--no-access-log"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("Application startup complete") < 2:
            assert server.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        for _ in range(REQUESTS):  # a new connection each: the workers share them out
            assert httpx.get(f"{base}/healthz", headers={"Connection": "close"}).status_code == 200
        workers = {p.name for p in directory.glob("counter_*.db")}
        assert len(workers) == 2, workers  # both workers answered and wrote their figures
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200
        assert _healthz_count(scraped.text) == REQUESTS
    finally:
        server.terminate()
        server.wait(timeout=30)
        b.drop_database(database)
    assert "Traceback" not in log.read_text(errors="replace")
