"""Alembic, one environment per service: each migrates only its own schema, with its own version
table in it (SQLite: one file per service, schemas mapped away)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.db import is_sqlite
from shared.settings import async_database_url, default_database_url

LOCK_TIMEOUT = "5s"


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
    command.upgrade(alembic_config(service, url), revision)


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
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
            connection.commit()
        else:
            connection = connection.execution_options(schema_translate_map={schema: None})
        context.configure(connection=connection, **context_options(connection, schema, metadata))
        with context.begin_transaction():
            context.run_migrations()

    async def online() -> None:
        if is_sqlite(url):
            Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(online())
