"""Migrations: one head per service, upgrade from empty, models and migrations agree, downgrade
to base; docker-compose.yml parses and runs the three services against PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from typing import Any

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from shared.db import build_engine
from shared.migrations import alembic_config, context_options, downgrade, upgrade
from tests.conftest import ROOT, SERVICES

pytestmark = pytest.mark.parametrize("service", SERVICES)


def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def test_each_service_has_exactly_one_head(service: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(service, "sqlite://"))
    assert len(script.get_heads()) == 1


async def test_models_and_migrations_agree(service: str, scratch_database: Any) -> None:
    url = scratch_database(service)
    in_thread(upgrade, service, url)
    metadata = import_module(f"services.{service}.models").metadata
    schema = metadata.schema

    def diff(connection: Connection) -> list[Any]:
        options = context_options(connection, schema, metadata)
        target = options.pop("target_metadata")
        options.pop("render_as_batch")
        context = MigrationContext.configure(connection, opts=options)
        return list(compare_metadata(context, target))

    engine = build_engine(url)
    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    await engine.dispose()


async def test_downgrade_to_base_removes_every_table(service: str, scratch_database: Any) -> None:
    url = scratch_database(service)
    in_thread(upgrade, service, url)
    in_thread(downgrade, service, url)
    schema = import_module(f"services.{service}.models").metadata.schema
    engine = build_engine(url)
    async with engine.connect() as connection:
        tables = await connection.run_sync(
            lambda c: inspect(c).get_table_names(
                schema=None if c.dialect.name == "sqlite" else schema
            )
        )
    await engine.dispose()
    assert set(tables) <= {"alembic_version"}
    in_thread(upgrade, service, url)


def test_compose_runs_postgres_and_the_service(service: str) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "postgres" in compose["services"]
    entry = compose["services"][service]
    assert entry["environment"]["SERVICE"] == service
    assert entry["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert "alembic --name ${SERVICE} upgrade head" in (ROOT / "Dockerfile").read_text()
