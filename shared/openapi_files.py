"""The services' OpenAPI documents published as files (`openapi/<service>.json`), so that partners
can diff one version against the next; `tci openapi` writes them, `tci openapi --check` (and a
test) fails when a file differs from what the app serves."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from typing import Any

from shared.settings import SERVICE_PORTS

DEFAULT_DIRECTORY = Path("openapi")


def document(service: str) -> dict[str, Any]:
    """The OpenAPI document the service serves at `/openapi.json` with its default settings."""
    module = import_module(f"services.{service}.main")
    spec: dict[str, Any] = module.create_app().openapi()
    return spec


def rendered(spec: dict[str, Any]) -> str:
    """The file's text: stable key order as generated, two-space indent, UTF-8 kept readable."""
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def stale(directory: Path = DEFAULT_DIRECTORY) -> list[str]:
    """The services whose published file is missing or differs from what the app serves."""
    return [
        service
        for service in SERVICE_PORTS
        if not (directory / f"{service}.json").is_file()
        or (directory / f"{service}.json").read_text(encoding="utf-8")
        != rendered(document(service))
    ]


def write(directory: Path = DEFAULT_DIRECTORY) -> list[Path]:
    """Write every service's document; answer the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service in SERVICE_PORTS:
        path = directory / f"{service}.json"
        path.write_text(rendered(document(service)), encoding="utf-8")
        written.append(path)
    return written
