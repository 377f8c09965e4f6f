"""A client generated per service, as a partner would: `openapi-python-client` on each running
service's `/openapi.json`, into a temporary directory (never committed), then imported.

Generation fails the tier on a non-zero exit or on any warning the generator prints (a warning
means part of the API was left out of the client: a response omitted, a schema skipped)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import SERVICES, Services, token


def package_name(service: str) -> str:
    return f"tci_{service}_client"


@dataclass(frozen=True)
class Generated:
    """What the generator made and said for one service."""

    service: str
    package: ModuleType
    output: str


@dataclass(frozen=True)
class Clients:
    """The three generated packages, and the running services they talk to."""

    services: Services
    generated: dict[str, Generated]

    @property
    def underwriting(self) -> Any:
        return self.generated["underwriting"].package

    @property
    def claims(self) -> Any:
        return self.generated["claims"].package

    @property
    def collections(self) -> Any:
        return self.generated["collections"].package

    def client(self, service: str, role: str, party: str | None = None,
               bearer: str | None = None) -> Any:  # fmt: skip
        """The generated package's own `AuthenticatedClient` for `service`, with a token of
        `role` (and `party`), or the raw `bearer` given."""
        package = self.generated[service].package
        return package.AuthenticatedClient(
            base_url=self.services.urls[service],
            token=bearer if bearer is not None else token(role, party),
            timeout=httpx.Timeout(30.0),
            raise_on_unexpected_status=True,
        )


def generate(service: str, url: str, workdir: Path) -> str:
    """Fetch `service`'s OpenAPI document over HTTP and generate its client package under
    `workdir`; answer what the generator printed, after failing on an error or a warning."""
    document = httpx.get(f"{url}/openapi.json", timeout=30)
    assert document.status_code == 200, document.text
    spec = workdir / f"{service}.json"
    spec.write_bytes(document.content)
    config = workdir / f"{service}-config.json"
    # No post hooks: the generated code is imported, not read, so it needs no formatter on PATH.
    config.write_text(json.dumps({"package_name_override": package_name(service),
                                  "post_hooks": []}))  # fmt: skip
    finished = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
         "--output-path", str(workdir / package_name(service)), "--meta", "none",
         "--config", str(config), "--fail-on-warning"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, f"{service}: the generator failed:\n{output}"
    assert "warning" not in output.lower(), f"{service}: the generator warned:\n{output}"
    return output


def import_everything(name: str) -> ModuleType:
    """Import the generated package and every module in it, so that `api.<tag>.<operation>`
    reads as an attribute path."""
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
        importlib.import_module(module.name)
    return package


@pytest.fixture(scope="session")
def clients(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    workdir = tmp_path_factory.mktemp("generated-clients")
    with ThreadPoolExecutor(len(SERVICES)) as pool:
        outputs = dict(zip(SERVICES, pool.map(
            lambda s: generate(s, services.urls[s], workdir), SERVICES), strict=True))  # fmt: skip
    sys.path.insert(0, str(workdir))
    try:
        generated = {
            s: Generated(s, import_everything(package_name(s)), outputs[s]) for s in SERVICES
        }
        yield Clients(services, generated)
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m.startswith(tuple(map(package_name, SERVICES)))]:
            del sys.modules[name]
