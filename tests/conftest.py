"""The test database and the three test tiers.

- in-process API and repository tests: one transaction per test, rolled back at the end (the app's
  commits become savepoints), on a database migrated once per session;
- end-to-end tests: the three services as real processes on free loopback ports against a
  committed database created once per session, unique ids per test;
- migration tests: a scratch database each.

The database is `TEST_DATABASE_URL` if set, else a testcontainers PostgreSQL when a Docker engine
answers, else SQLite (and the header says so).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.auth import mint_token
from shared.db import (
    Reader,
    TransactionReader,
    UnitsOfWork,
    build_engine,
    get_reader,
    get_session,
    get_units_of_work,
)
from shared.http import ServiceClient
from shared.migrations import upgrade
from shared.peers import get_peers
from shared.settings import DEVELOPMENT_JWT_SECRET, async_database_url

SERVICES = ("underwriting", "claims", "collections")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Backend:
    kind: str  # "postgresql" or "sqlite"
    how: str
    base_url: str  # a plain URL for PostgreSQL, a directory for SQLite
    container: Any = None

    def url_for(self, database: str, service: str) -> str:
        """The async URL of `database` for `service` (PostgreSQL: one database, a schema per
        service; SQLite: a file per service)."""
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.base_url}/{database}_{service}.db"
        url = make_url(self.base_url)
        return async_database_url(url.set(database=database).render_as_string(False))

    @property
    def main_database(self) -> str:
        return "main" if self.kind == "sqlite" else str(make_url(self.base_url).database)

    def create_database(self, name: str, template: str | None = None) -> None:
        """`name` afresh (dropped first if it exists): empty, or a copy of `template`."""
        if self.kind == "sqlite":
            return
        import psycopg

        admin = make_url(self.base_url).set(drivername="postgresql", database="postgres")
        with psycopg.connect(admin.render_as_string(False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{copy}')

    def drop_database(self, name: str) -> None:
        if self.kind == "sqlite":
            return
        import psycopg

        admin = make_url(self.base_url).set(drivername="postgresql", database="postgres")
        with psycopg.connect(admin.render_as_string(False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_BACKEND: Backend | None = None


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def _choose_backend() -> Backend:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        plain = url.replace("postgresql+asyncpg://", "postgresql://")
        if plain.startswith("sqlite"):
            return Backend("sqlite", "TEST_DATABASE_URL (SQLite)", tempfile.mkdtemp(prefix="tci-"))
        return Backend("postgresql", "TEST_DATABASE_URL", plain)
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16", driver=None).start()
        return Backend("postgresql", "testcontainers", container.get_connection_url(), container)
    return Backend("sqlite", "no TEST_DATABASE_URL and no Docker engine: SQLite fallback; "
                   "PostgreSQL-only tests are skipped", tempfile.mkdtemp(prefix="tci-"))  # fmt: skip


def backend() -> Backend:
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = _choose_backend()
    return _BACKEND


def pytest_report_header(config: pytest.Config) -> str:
    b = backend()
    where = make_url(b.base_url).render_as_string(True) if b.kind == "postgresql" else b.base_url
    return f"database: {b.kind} ({b.how}) {where}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if backend().kind == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (locks, concurrency); running on SQLite")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _BACKEND is not None and _TEMPLATE is not None:
        _BACKEND.drop_database(_TEMPLATE)
    if _BACKEND is not None and _BACKEND.container is not None:
        _BACKEND.container.stop()


def migrate_all(b: Backend, database: str) -> None:
    """Run every service's migrations (in a thread: Alembic's env runs its own event loop)."""
    with ThreadPoolExecutor(1) as pool:
        for service in SERVICES:
            pool.submit(upgrade, service, b.url_for(database, service)).result()


_TEMPLATE: str | None = None


def create_migrated_database(b: Backend, name: str) -> None:
    """`name`, created afresh with every service's schema at head. On PostgreSQL a copy of a
    database this session migrated once (`CREATE DATABASE … TEMPLATE`: a copy of its files, a
    fraction of the migrations' time), dropped when the session ends; on SQLite created and
    migrated. The migrations themselves are tested on scratch databases
    (`tests/test_migrations_and_compose.py`, `tests/test_cli_and_migrate.py`)."""
    global _TEMPLATE
    if b.kind != "postgresql":
        b.create_database(name)
        migrate_all(b, name)
        return
    if _TEMPLATE is None:
        template = f"{b.main_database}_template_{os.getpid()}"
        b.create_database(template)
        migrate_all(b, template)  # its connections are closed after: a template must have none
        _TEMPLATE = template
    b.create_database(name, template=_TEMPLATE)


# ---------------------------------------------------------------- tokens


def token(role: str, party: str | None = None, **kw: Any) -> str:
    return mint_token(DEVELOPMENT_JWT_SECRET, role=role, party_id=party, **kw)


def auth(role: str, party: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, party)}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- in-process tier


@pytest.fixture(scope="session")
def migrated_database() -> str:
    b = backend()
    migrate_all(b, b.main_database)
    return b.main_database


@pytest.fixture(scope="session")
async def engines(migrated_database: str) -> AsyncIterator[dict[str, AsyncEngine]]:
    b = backend()
    built = {s: build_engine(b.url_for(migrated_database, s)) for s in SERVICES}
    yield built
    for engine in built.values():
        await engine.dispose()


def run_in_session(app: Any, session: AsyncSession) -> None:
    """Every unit of work of `app` in `session`, one test's transaction: the request's session
    (as in production: a failed request keeps nothing it changed), its reader, and a use case's
    own transactions (in turn; their commits are savepoints)."""

    async def override() -> AsyncIterator[AsyncSession]:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise

    async def reader_override() -> Reader:
        return TransactionReader(await session.connection())

    @contextlib.asynccontextmanager
    async def the_same_session() -> AsyncIterator[AsyncSession]:
        yield session

    async def units_override() -> UnitsOfWork:
        return UnitsOfWork(the_same_session, parallel=1, engine=None)

    app.dependency_overrides[get_session] = override
    app.dependency_overrides[get_reader] = reader_override
    app.dependency_overrides[get_units_of_work] = units_override


AppFactory = Callable[[str], Any]


# How long an in-process peer call may take (see `api`): longer than any test.
IN_PROCESS_PEER_SECONDS = 600.0


@pytest.fixture
async def api(engines: dict[str, AsyncEngine]) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """`api("underwriting")`: an in-process client whose requests all run in one transaction
    that is rolled back when the test ends."""
    from services.claims.main import create_app as claims_app
    from services.collections.main import create_app as collections_app
    from services.underwriting.main import create_app as underwriting_app

    factories = {"underwriting": underwriting_app, "claims": claims_app,
                 "collections": collections_app}  # fmt: skip
    opened: list[Any] = []
    opened_peers: list[ServiceClient] = []
    apps: dict[str, Any] = {}
    clients: dict[str, httpx.AsyncClient] = {}

    async def open_client(service: str) -> httpx.AsyncClient:
        connection = await engines[service].connect()
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint",
                               expire_on_commit=False, autoflush=False)  # fmt: skip
        app = factories[service]()
        # In process, a peer runs inside its caller's task: a time limit cancelling the call would
        # cut the peer's work (in the test's one transaction) short. Real processes keep them.
        app.state.settings.outbox_answer_wait_seconds = IN_PROCESS_PEER_SECONDS

        run_in_session(app, session)
        apps[service] = app
        if service != "underwriting":
            # The other services, in-process too, each in its own rolled-back transaction.
            peers: dict[str, ServiceClient] = {}
            for peer in ("underwriting", "collections"):
                if peer != service:
                    await open_service(peer)
                    peers[peer] = ServiceClient(
                        f"http://{peer}", jwt_secret=DEVELOPMENT_JWT_SECRET, caller_name=service,
                        transport=httpx.ASGITransport(app=apps[peer]),
                        timeout_seconds=IN_PROCESS_PEER_SECONDS)  # fmt: skip

            async def peers_override() -> dict[str, ServiceClient]:
                return peers

            app.dependency_overrides[get_peers] = peers_override
            opened_peers.extend(peers.values())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url=f"http://{service}")  # fmt: skip
        opened.append((client, session, transaction, connection))
        return client

    def get(service: str) -> httpx.AsyncClient:
        if service not in clients:
            raise RuntimeError("call `await api.open(service)` first")
        return clients[service]

    async def open_service(service: str) -> httpx.AsyncClient:
        if service not in clients:
            clients[service] = await open_client(service)
        return clients[service]

    get.open = open_service  # type: ignore[attr-defined]
    yield get
    for peer_client in opened_peers:
        await peer_client.aclose()
    for client, session, transaction, connection in opened:
        await client.aclose()
        await session.close()
        await transaction.rollback()
        await connection.close()


@pytest.fixture
async def uw(api: Any) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


# ---------------------------------------------------------------- end-to-end tier


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Services:
    urls: dict[str, str]
    # The database they write, on the test backend: for a test that sets up a state no route
    # makes (what a migration left behind).
    database: str | None = None


@dataclass
class Running:
    """Service processes started by a test or a fixture, stopped by `stop`."""

    processes: list[tuple[str, Any, subprocess.Popen[bytes]]]
    log_dir: Path

    def stop(self, service: str | None = None) -> None:
        for name, log, process in self.processes:
            if service is None or name == service:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                log.close()
        self.processes = [p for p in self.processes if service is not None and p[0] != service]


def start_services(
    database: str, urls: dict[str, str], only: Sequence[str] = SERVICES,
    env: dict[str, str] | None = None, running: Running | None = None,
    database_urls: dict[str, str] | None = None, ready: bool = True,
) -> Running:  # fmt: skip
    """Start services as uvicorn processes on the ports of `urls`, each knowing the others by
    those URLs, and wait until each answers `/readyz` (unless not `ready`: then the caller goes
    on while they start). Each service's database is `database` on the test backend, or the URL
    `database_urls` gives it."""
    b = backend()
    running = running or Running([], Path(tempfile.mkdtemp(prefix="tci-e2e-")))
    for service in only:
        port = urls[service].rsplit(":", 1)[1]
        process_env = {
            **os.environ,
            "DATABASE_URL": (database_urls or {}).get(service) or b.url_for(database, service),
            "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET,
            "TCI_UNDERWRITING_URL": urls["underwriting"],
            "TCI_CLAIMS_URL": urls["claims"],
            "TCI_COLLECTIONS_URL": urls["collections"],
            "TCI_LOG_LEVEL": "WARNING",
            # These tests fire dozens of requests at once to prove the rules; the rate limits
            # have tests of their own (tests/shared/test_rate_limits.py).
            "TCI_RATE_LIMIT": "",
            "TCI_RATE_LIMIT_ANONYMOUS": "",
            **(env or {}),
        }
        log = open(running.log_dir / f"{service}.log", "ab")  # noqa: SIM115
        running.processes.append((service, log, subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.main:create_app",
             "--host", "127.0.0.1", "--port", port, "--no-access-log",
             "--no-server-header"],
            env=process_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))  # fmt: skip
    if ready:
        wait_ready(running, urls, only)
    return running


def wait_ready(running: Running, urls: dict[str, str], only: Sequence[str] = SERVICES) -> None:
    """Wait until each service of `only` answers `/readyz` at its URL (60 s at most)."""
    deadline = time.monotonic() + 60
    for service in only:
        while True:
            try:
                if httpx.get(f"{urls[service]}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                logs = (running.log_dir / f"{service}.log").read_text(errors="replace")
                running.stop()
                raise RuntimeError(f"{service} did not become ready:\n{logs[-3000:]}")
            time.sleep(0.2)


def free_urls() -> dict[str, str]:
    return {s: f"http://127.0.0.1:{_free_port()}" for s in SERVICES}


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """The three services as real processes on free loopback ports, started once per session."""
    b = backend()
    database = f"{b.main_database}_e2e" if b.kind == "postgresql" else "e2e"
    create_migrated_database(b, database)
    urls = free_urls()
    # Small chunks, so a batch runs as several statements in flight on pooled connections, and a
    # country's re-grade as several slices, two at once on PostgreSQL.
    running = start_services(
        database, urls, env={"TCI_UW_COVERAGE_BATCH_CHUNK": "3", "TCI_UW_REGRADE_SLICE_BUYERS": "3"}
    )
    try:
        yield Services(urls, database)
    finally:
        running.stop()
        b.drop_database(database)


# ---------------------------------------------------------------- migration tier

_scratch = itertools.count()


@pytest.fixture
def scratch_database() -> Iterator[Callable[[str], str]]:
    """A fresh, empty database; the fixture gives the URL for each service."""
    b = backend()
    name = (
        f"{b.main_database}_scratch_{next(_scratch)}_{os.getpid()}"
        if b.kind == "postgresql"
        else f"scratch{next(_scratch)}_{uuid.uuid4().hex[:6]}"
    )
    b.create_database(name)
    yield lambda service: b.url_for(name, service)
    b.drop_database(name)
