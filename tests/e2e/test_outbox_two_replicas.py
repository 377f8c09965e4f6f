"""The outbox under two replicas: two claims service processes on one database deliver the same
pending messages to a receiver that counts what it gets per Idempotency-Key."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from services.claims.models import outbox
from shared.migrations import upgrade
from tests.conftest import backend, free_urls, start_services

MESSAGES = 60
pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


class Receiver:
    """A tiny HTTP server on loopback: answers every POST 201 after a short pause (so that a
    batch takes a while) and counts the deliveries of each Idempotency-Key."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.counts[self.headers.get("Idempotency-Key", "")] += 1
                time.sleep(0.01)
                body = json.dumps({"id": uuid.uuid4().hex}).encode()
                self.send_response(201)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def claims_database() -> Iterator[str]:
    """A fresh database with the claims schema migrated: its name."""
    b = backend()
    name = f"{b.main_database}_outbox_{os.getpid()}"
    b.create_database(name)
    upgrade("claims", b.url_for(name, "claims"))
    try:
        yield name
    finally:
        b.drop_database(name)


def test_two_replicas_deliver_each_of_60_pending_messages_exactly_once(
    claims_database: str,
) -> None:
    b = backend()
    url = make_url(b.url_for(claims_database, "claims")).set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    with Receiver() as receiver:
        env = {"TCI_OUTBOX_INTERVAL_SECONDS": "0.1"}
        first, second = free_urls(), free_urls()
        for urls in (first, second):
            urls["underwriting"] = receiver.url
        with ThreadPoolExecutor(2) as pool:  # the two replicas start side by side
            replicas = list(pool.map(
                lambda urls: start_services(claims_database, urls, only=["claims"], env=env),
                (first, second)))  # fmt: skip
        try:
            batch = uuid.uuid4().hex
            now = dt.datetime.now(dt.UTC)
            keys = [f"test:{batch}:{n}" for n in range(MESSAGES)]
            with engine.begin() as connection:  # all pending at once, for both replicas' loops
                connection.execute(outbox.insert(), [
                    {"id": f"msg_{batch}_{n}", "created_at": now + dt.timedelta(microseconds=n),
                     "aggregate_id": f"agg-{n}", "target": "underwriting", "method": "POST",
                     "path": "/v1/anything", "body": {"n": n}, "idempotency_key": key,
                     "attempts": 0}
                    for n, key in enumerate(keys)
                ])  # fmt: skip
            pending = select(func.count()).where(outbox.c.delivered_at.is_(None))
            deadline = time.monotonic() + 60
            with engine.connect() as connection:
                while connection.execute(pending).scalar() and time.monotonic() < deadline:
                    connection.rollback()
                    time.sleep(0.1)
            time.sleep(1.0)  # a late duplicate from the other replica would arrive by now
        finally:
            for replica in replicas:
                replica.stop()
            engine.dispose()
        counts = dict(receiver.counts)
    assert sum(counts.values()) == MESSAGES, f"{sum(counts.values())} deliveries"
    assert sorted(counts) == sorted(keys)
    assert set(counts.values()) == {1}
