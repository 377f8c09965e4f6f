"""The OpenAPI documents published in `openapi/` are the ones the services serve: partners diff
one version against the next from these files."""

from __future__ import annotations

import json
from pathlib import Path

from shared.openapi_files import document, rendered, stale
from shared.settings import SERVICE_PORTS

PUBLISHED = Path(__file__).resolve().parents[2] / "openapi"


def test_each_published_document_is_what_its_service_serves() -> None:
    assert stale(PUBLISHED) == [], "run `make openapi` (or `tci openapi`) and commit openapi/"


def test_a_changed_document_is_reported_stale(tmp_path: Path) -> None:
    for service in SERVICE_PORTS:
        (tmp_path / f"{service}.json").write_text(rendered(document(service)), encoding="utf-8")
    assert stale(tmp_path) == []
    spec = json.loads((tmp_path / "claims.json").read_text(encoding="utf-8"))
    spec["info"]["version"] = "0.0.0"
    (tmp_path / "claims.json").write_text(rendered(spec), encoding="utf-8")
    (tmp_path / "collections.json").unlink()
    assert stale(tmp_path) == ["claims", "collections"]
