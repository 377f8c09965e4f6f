"""Migrations: one head per service, upgrade from empty, models and migrations agree, downgrade
to base; docker-compose.yml runs two replicas of each service behind the proxy, after the
migration step (its schema, the image and the entry point: tests/test_deploy_files.py)."""

from __future__ import annotations

import re
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
from shared.settings import SERVICE_PORTS
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


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_two_replicas_of_the_service_without_host_ports(service: str) -> None:
    compose = compose_file()["services"]
    entry = compose[service]
    assert entry["environment"]["TCI_SERVICE"] == service
    assert entry["deploy"]["replicas"] == 2
    assert "ports" not in entry, "a fixed host port blocks a second replica and --scale"
    assert entry["restart"] == "unless-stopped"
    assert entry["healthcheck"]["test"][-2:] == ["healthcheck", "/readyz"]
    # One image for the services and the migration step, built once.
    assert (entry["image"], entry["build"]) == (
        compose["migrate"]["image"],
        compose["migrate"]["build"],
    )
    assert entry["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert entry["environment"]["TCI_REDIS_URL"].startswith("redis://redis:")


def test_compose_starts_the_service_after_the_migration_step_succeeded(service: str) -> None:
    compose = compose_file()["services"]
    assert compose[service]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    migrate = compose["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no", "a finished migration must not start again"
    assert "deploy" not in migrate, "one migration run, not one per replica"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_the_proxy_publishes_the_documented_port_and_balances_the_replicas(service: str) -> None:
    port = SERVICE_PORTS[service]
    proxy = compose_file()["services"]["proxy"]
    assert proxy["image"].startswith("caddy:")  # the official image
    assert f"{port}:{port}" in proxy["ports"]
    assert proxy["depends_on"][service] == {"condition": "service_healthy"}
    mount = next(v for v in proxy["volumes"] if v.endswith(":/etc/caddy/Caddyfile:ro"))
    caddyfile = (ROOT / mount.split(":")[0]).read_text()
    site = re.search(rf"^:{port} {{(.*?)^}}", caddyfile, re.MULTILINE | re.DOTALL)
    assert site, f"the Caddyfile serves no :{port}"
    # Every replica: the service's name resolved to all its containers' addresses.
    assert re.search(rf"dynamic a {service} {port}\b", site.group(1))
    assert "import balanced" in site.group(1)
    assert (
        f"http://proxy:{port}"
        == compose_file()["services"][service]["environment"][f"TCI_{service.upper()}_URL"]
    )


def test_the_console_calls_the_service_through_the_proxy(service: str) -> None:
    """The staff console reaches every replica of the service the way the services reach each
    other: through the proxy, balanced and past a stopped replica."""
    console = compose_file()["services"]["console"]["environment"]
    assert console[f"TCI_{service.upper()}_URL"] == f"http://proxy:{SERVICE_PORTS[service]}"
