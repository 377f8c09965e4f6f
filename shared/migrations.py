"""Alembic, one environment per service: each migrates only its own schema, with its own version
table in it (SQLite: one file per service, schemas mapped away). Any number of migration runs may
start at once: they take turns (a PostgreSQL advisory lock; on SQLite a lock file beside the
database). A service starts only on a database at its head revision."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, Table, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from shared.db import is_sqlite, is_unavailable
from shared.settings import (
    IN_MEMORY,
    SERVICE_PORTS,
    async_database_url,
    default_database_url,
    sqlite_file,
)

log = logging.getLogger("tci.migrations")
LOCK_TIMEOUT = "5s"
# The key of the session-level advisory lock every migration run holds, whatever the service: one
# run at a time per PostgreSQL database ("tci-mig" in ASCII, so it is recognisable in pg_locks).
MIGRATION_LOCK_KEY = 0x7463692D6D6967


class NotMigrated(Exception):
    """The service's database is not at the head revision of its migrations."""


def migrations_dir() -> Path:
    beside_package = Path(__file__).resolve().parents[1] / "migrations"
    return beside_package if beside_package.is_dir() else Path.cwd() / "migrations"


def alembic_config(service: str, url: str) -> Config:
    """The Alembic configuration of one service, as `alembic --name <service>` would read it."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir() / service))
    config.attributes["url"] = async_database_url(url)
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    """Migrate to `revision`; NotMigrated, saying why, on a SQLite database another service's
    migrations have written (one file for two services)."""
    path = sqlite_file(url)
    if path not in (None, IN_MEMORY) and os.path.exists(path):
        refuse_foreign(service, asyncio.run(current_revision(service, url)))
    command.upgrade(alembic_config(service, url), revision)


def refuse_foreign(service: str, revision: str | None) -> None:
    """NotMigrated when `revision` is one of another service's migrations: on SQLite, where the
    services' schemas are mapped away, the database is another service's file (their version
    tables and tables of the same name would collide)."""
    if revision is None or _owns(service, revision):
        return
    owner = next((s for s in SERVICE_PORTS if s != service and _owns(s, revision)), None)
    if owner is not None:
        raise NotMigrated(
            f"{service}: the database holds {owner}'s tables (at {owner}'s revision {revision}): "
            "on SQLite each service needs a file of its own; leave DATABASE_URL unset "
            f"(./var/<service>.db) or give {service} its own file or a PostgreSQL database"
        )


def _owns(service: str, revision: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config(service, "sqlite://"))
    return any(r.revision == revision for r in script.walk_revisions())


def downgrade(service: str, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(service, url), revision)


def schemaless(metadata: MetaData) -> MetaData:
    """A copy of a service's metadata without its schema, as the tables look on SQLite."""
    copy = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(copy, schema=None)  # type: ignore[arg-type]  # None: no schema
    return copy


def context_options(connection: Connection, schema: str, metadata: MetaData) -> dict[str, Any]:
    """How Alembic sees one service: only its schema, its own version table, exact types."""
    sqlite = connection.dialect.name == "sqlite"

    def include_name(name: str | None, type_: str, _parents: dict[str, Any]) -> bool:
        if type_ == "schema":
            return sqlite or name == schema
        return True

    return {
        "target_metadata": schemaless(metadata) if sqlite else metadata,
        "version_table_schema": None if sqlite else schema,
        "include_schemas": not sqlite,
        "include_name": include_name,
        "compare_type": True,
        "render_as_batch": sqlite,
    }


def run_environment(schema: str, metadata: MetaData) -> None:
    """The body of `migrations/<service>/env.py`."""
    from alembic import context

    config = context.config
    url = (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("DATABASE_URL")
        or default_database_url(schema)
    )
    url = async_database_url(url)
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=metadata,
            version_table_schema=None if is_sqlite(url) else schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Before anything else: two runs creating the same schema or version table at once
            # collide in the catalogue (a unique violation on pg_namespace or pg_type). Released
            # when the connection closes, whatever happens.
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
            connection.commit()
        else:
            connection = connection.execution_options(schema_translate_map={schema: None})
        context.configure(connection=connection, **context_options(connection, schema, metadata))
        with context.begin_transaction():
            context.run_migrations()

    async def online() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    with _sqlite_writer(url):
        asyncio.run(online())


@contextlib.contextmanager
def _sqlite_writer(url: str) -> Iterator[None]:
    """On a SQLite file, one migration run at a time: an exclusive lock on a file beside the
    database (SQLite creates tables outside a transaction, so two runs would both create them)."""
    if not is_sqlite(url) or "///" not in url or url.endswith(("///", ":memory:")):
        yield
        return
    import fcntl

    database = Path(url.split("///", 1)[1].split("?", 1)[0])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.migration-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


async def current_revision(service: str, url: str) -> str | None:
    """The revision the service's database is at (None: no migration has run)."""
    engine = create_async_engine(async_database_url(url), poolclass=NullPool)
    try:
        return await _revision_in(engine, service)
    finally:
        await engine.dispose()


async def _revision_in(engine: AsyncEngine, schema: str) -> str | None:
    def read(connection: Connection) -> str | None:
        version = Table("alembic_version", MetaData(), Column("version_num", String),
                        schema=None if connection.dialect.name == "sqlite" else schema)  # fmt: skip
        if not inspect(connection).has_table(version.name, schema=version.schema):
            return None
        return connection.execute(select(version.c.version_num)).scalar()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def refuse_unmigrated(service: str, url: str) -> None:
    """Raise NotMigrated when the service's database is empty or behind its head. A revision this
    code does not know is newer (a rolling upgrade migrated first): the service starts. A
    database that cannot be reached is left to the readiness probe (`/readyz` answers 503). On
    SQLite, a database another service's migrations wrote, and an in-memory database (nothing
    migrated there outlives the migration), are refused too."""
    if sqlite_file(url) == IN_MEMORY:
        raise NotMigrated(
            f"{service}: the database URL names an in-memory SQLite database, which cannot be "
            "migrated before the service opens it: give the service a SQLite file (DATABASE_URL "
            "unset: ./var/<service>.db) or a PostgreSQL database"
        )
    script = ScriptDirectory.from_config(alembic_config(service, url))
    head = script.get_current_head()
    try:
        current = await current_revision(service, url)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("%s: cannot read the database's revision at start (%s); starting, not ready",
                    service, type(exc).__name__)  # fmt: skip
        return
    if current == head:
        return
    if sqlite_file(url) is not None:
        refuse_foreign(service, current)
    known = current is None or any(r.revision == current for r in script.walk_revisions())
    if known:
        raise NotMigrated(
            f"{service}: the database is not migrated (at {current or 'base'}, head is {head}): "
            "run `tci migrate`"
        )


def refusal_in_one_line(app: Starlette) -> None:
    """A start-up refused for want of migrations is reported as its one line: Starlette hands the
    server the traceback of whatever failed the lifespan, which here says nothing more."""
    lifespan = app.router.lifespan

    async def one_line(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_message(message: Message) -> None:
            failure = sys.exc_info()[1]  # sent from Starlette's `except` around the lifespan
            if message["type"] == "lifespan.startup.failed" and isinstance(failure, NotMigrated):
                message = {**message, "message": str(failure)}
            await send(message)

        await lifespan(scope, receive, send_message)

    app.router.lifespan = one_line  # type: ignore[method-assign]
