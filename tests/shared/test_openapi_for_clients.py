"""What a client generated from each service's OpenAPI document relies on."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from services.claims.main import create_app as claims_app
from services.collections.main import create_app as collections_app
from services.underwriting.main import create_app as underwriting_app

APPS: dict[str, Callable[[], Any]] = {
    "underwriting": underwriting_app, "claims": claims_app, "collections": collections_app,
}  # fmt: skip


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, operation) for path, operations in schema["paths"].items()
            for method, operation in operations.items() if isinstance(operation, dict)]  # fmt: skip


@pytest.mark.parametrize("service", APPS)
def test_every_operation_has_a_short_stable_id_unique_in_its_service(service: str) -> None:
    ids = [op["operationId"] for _, _, op in _operations(APPS[service]().openapi())]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{2,40}", i) for i in ids), ids


@pytest.mark.parametrize("service", APPS)
def test_every_v1_operation_declares_the_bearer_token_and_the_probes_do_not(service: str) -> None:
    schema = APPS[service]().openapi()
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, method, operation in _operations(schema):
        needs_token = path.startswith("/v1/") or path == "/metrics"
        assert (operation.get("security") == [{"bearerAuth": []}]) == needs_token, (method, path)


@pytest.mark.parametrize("service", APPS)
def test_every_answer_declares_its_request_id_and_a_command_its_idempotency_headers(
    service: str,
) -> None:
    for path, method, operation in _operations(APPS[service]().openapi()):
        command = method == "post" and not path.startswith("/v1/coverage-checks")
        sent = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in sent) == command, (method, path)
        for status, answer in operation["responses"].items():
            headers = answer.get("headers", {})
            assert "X-Request-ID" in headers, (method, path, status)
            assert ("Retry-After" in headers) == (status in ("429", "503")), (method, path, status)
            replayed = command and status.startswith("2")
            assert ("Idempotent-Replayed" in headers) == replayed, (method, path, status)
