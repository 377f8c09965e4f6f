"""What a client generated from each service's OpenAPI document relies on."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from services.claims.main import create_app as claims_app
from services.collections.main import create_app as collections_app
from services.underwriting.main import create_app as underwriting_app
from shared.idempotency import get_command
from shared.peers import get_peers

APPS: dict[str, Callable[[], Any]] = {
    "underwriting": underwriting_app, "claims": claims_app, "collections": collections_app,
}  # fmt: skip


def _depends_on(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _routes_depending_on(app: Any, call: Any) -> set[tuple[str, str]]:
    """The (method, path) of every route whose dependencies include `call`."""
    return {(method.lower(), context.path_format) for context in iter_route_contexts(app.routes)
            if isinstance(context.original_route, APIRoute)
            and _depends_on(context.original_route.dependant, call)
            for method in context.methods}  # fmt: skip


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
    app = APPS[service]()
    commands = _routes_depending_on(app, get_command)
    for path, method, operation in _operations(app.openapi()):
        command = (method, path) in commands
        sent = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in sent) == command, (method, path)
        # A command's twin still running is 409 `idempotency-key-in-use`, with Retry-After.
        if command:
            assert "idempotency-key-in-use" in operation["responses"]["409"]["x-problem-types"]
        for status, answer in operation["responses"].items():
            headers = answer.get("headers", {})
            assert "X-Request-ID" in headers, (method, path, status)
            waits = status in ("429", "503") or (command and status == "409")
            assert ("Retry-After" in headers) == waits, (method, path, status)
            replayed = command and status.startswith("2")
            assert ("Idempotent-Replayed" in headers) == replayed, (method, path, status)


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("service", APPS)
def test_one_schema_per_model_and_no_number_for_money_or_percentages(service: str) -> None:
    schema = APPS[service]().openapi()
    names = schema["components"]["schemas"]
    assert not [n for n in names if n.endswith(("-Input", "-Output"))]
    # no schema anywhere accepts a JSON number where a decimal string is meant
    for node in _walk(schema):
        assert node.get("type") != "number", node
        assert "ge" not in node and "le" not in node, node
    for name in ("MoneyModel", "PositiveMoney", "NonNegativeMoney"):
        if name in names:
            amount = names[name]["properties"]["amount"]
            assert amount["type"] == "string" and amount["format"] == "decimal", name
            assert re.fullmatch(amount["pattern"], "125000.00")
            assert not re.fullmatch(amount["pattern"], "1e5")
    assert names["MoneyModel"]["properties"]["currency"] == {
        "$ref": "#/components/schemas/CurrencyCode"
    }
    assert "EUR" in names["CurrencyCode"]["enum"] and "CN" not in names["CurrencyCode"]["enum"]


@pytest.mark.parametrize("service", APPS)
def test_every_error_answer_is_the_named_problem_listing_its_types(service: str) -> None:
    schema = APPS[service]().openapi()
    names = schema["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "FieldError"} <= names.keys()
    assert names["ValidationProblem"]["properties"]["errors"]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }
    for path, method, operation in _operations(schema):
        for status, answer in operation["responses"].items():
            problem = answer.get("content", {}).get("application/problem+json")
            if int(status) >= 400:
                assert problem is not None, (method, path, status)
                named = "ValidationProblem" if status == "422" else "Problem"
                assert problem["schema"] == {"$ref": f"#/components/schemas/{named}"}
                assert answer["x-problem-types"], (method, path, status)


def test_status_and_kind_fields_in_answers_are_named_enums() -> None:
    named = {
        "underwriting": {("PolicyRead", "cover_type"): "CoverType",
                         ("BuyerRead", "legal_form"): "LegalForm",
                         ("SignalRead", "kind"): "SignalKind",
                         ("LimitRequestRead", "status"): "LimitRequestStatus"},
        "claims": {("ClaimRead", "status"): "ClaimStatus", ("ClaimRead", "cause"): "ClaimCause",
                   ("DocumentRead", "kind"): "DocumentKind",
                   ("NotificationRead", "kind"): "NotificationKind"},
        "collections": {("CaseRead", "stage"): "CaseStage", ("CaseRead", "status"): "CaseStatus",
                        ("CaseRead", "ladder"): "LadderName"},
    }  # fmt: skip
    for service, fields in named.items():
        schemas = APPS[service]().openapi()["components"]["schemas"]
        for (model, field), enum in fields.items():
            assert schemas[model]["properties"][field] == {"$ref": f"#/components/schemas/{enum}"}
            assert schemas[enum]["enum"], enum


def test_no_enum_is_published_inline() -> None:
    """Every enum of a body, an answer, an event or a query parameter is a named component: a
    generated client has one class for it, not one per field it appears in."""

    def inline(node: Any, path: str, top: bool) -> Iterator[str]:
        if isinstance(node, dict):
            if "enum" in node and not top:
                yield path
            for key, value in node.items():
                yield from inline(value, f"{path}/{key}", False)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from inline(value, f"{path}[{index}]", False)

    for service, app in APPS.items():
        document = app().openapi()
        found = [place for name, schema in document["components"]["schemas"].items()
                 for place in inline(schema, f"{service}: {name}", True)]  # fmt: skip
        # A response header's single value (`Idempotent-Replayed: true`) is no type of its own.
        found += [place for place in inline(document["paths"], f"{service}: paths", False)
                  if "/headers/" not in place]  # fmt: skip
        assert found == [], found


def test_uploads_are_binary_and_the_batch_answer_is_typed() -> None:
    claims = claims_app().openapi()
    upload = claims["paths"]["/v1/claims/{claim_id}/documents"]["post"]["requestBody"]
    body = upload["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert claims["components"]["schemas"][body]["properties"]["file"]["format"] == "binary"
    underwriting = underwriting_app().openapi()
    batch = underwriting["paths"]["/v1/coverage-checks/batch"]["post"]["responses"]["200"]
    assert batch["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CoverageBatchRead"
    }
    results = underwriting["components"]["schemas"]["CoverageBatchRead"]["properties"]["results"]
    assert results["items"]["anyOf"] == [
        {"$ref": "#/components/schemas/CoverageRead"},
        {"$ref": "#/components/schemas/CoverageItemError"},
    ]
    # An item's error is a problem whose validation `errors` are typed, as the single check's.
    error = underwriting["components"]["schemas"]["CoverageItemError"]["properties"]["error"]
    assert error["$ref"] == "#/components/schemas/ValidationProblem"


def test_every_member_a_problem_is_raised_with_is_declared_in_the_problem_schema() -> None:
    import ast
    from pathlib import Path

    from shared.problems import problem_components

    declared = problem_components()["ValidationProblem"]["properties"].keys()
    root = Path(__file__).resolve().parents[2]
    sent: dict[str, str] = {}
    for path in [*root.glob("services/**/*.py"), *root.glob("shared/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and (node.func.id in ("Problem", "conflict", "unprocessable"))
            ):
                for keyword in node.keywords:
                    if keyword.arg not in (None, "status"):
                        sent[keyword.arg] = f"{path.relative_to(root)}:{node.lineno}"
    assert len(sent) >= 10
    assert {k: v for k, v in sent.items() if k not in declared} == {}


def test_one_component_name_is_one_schema() -> None:
    """Two enums once shared a name (`LimitSource`: a coverage answer's and a limit event's) and
    the document published one of them for both; a second meaning under a name is refused."""
    from shared.contracts import named_enum, refer_to_components

    def marked(values: tuple[str, ...]) -> dict[str, Any]:
        schema: dict[str, Any] = named_enum("Twice", values).json_schema
        return dict(schema)

    refer_to_components({"a": marked(("x",)), "b": {**marked(("x",)), "title": "B"}})
    with pytest.raises(ValueError, match="Twice"):
        refer_to_components({"a": marked(("x",)), "b": marked(("y",))})
    schema = APPS["underwriting"]().openapi()
    enums = schema["components"]["schemas"]
    assert enums["LimitSource"]["enum"] == ["credit_limit", "discretionary"]
    assert enums["LimitEntrySource"]["enum"] == ["request", "external", "change", "signal"]


@pytest.mark.parametrize("service", APPS)
def test_a_webhook_endpoints_event_types_are_the_services_own_enum(service: str) -> None:
    """A generated client offers the service's event types, not any string."""
    import importlib

    owned = importlib.import_module(f"services.{service}.events").EVENT_TYPES
    schema = APPS[service]().openapi()
    components = schema["components"]["schemas"]
    items = components["WebhookEndpointCreate"]["properties"]["event_types"]["items"]
    assert items == {"$ref": "#/components/schemas/EventType"}
    assert components["EventType"]["enum"] == list(owned)


@pytest.mark.parametrize("service", APPS)
def test_every_route_that_calls_a_peer_declares_502_and_no_other_does(service: str) -> None:
    """A peer's unexpected answer is 502 `upstream-error` on any route that calls a peer (it
    depends on the peers' clients), and only there."""
    app = APPS[service]()
    calling = _routes_depending_on(app, get_peers)
    for path, method, operation in _operations(app.openapi()):
        declared = operation["responses"].get("502")
        assert (declared is not None) == ((method, path) in calling), (method, path)
        if declared is not None:
            assert declared["x-problem-types"] == ["upstream-error"]
    if service == "collections":  # a case opened reads its buyer from underwriting
        assert ("post", "/v1/cases") in calling


def test_every_route_that_reads_a_peer_depends_on_the_peers() -> None:
    """The routes that call underwriting or collections, by their use cases."""
    claims = _routes_depending_on(claims_app(), get_peers)
    assert claims == {("post", "/v1/overdue-notifications"), ("post", "/v1/claims"),
                      ("post", "/v1/claims/{claim_id}/assessment"),
                      ("post", "/v1/claims/{claim_id}/decision"),
                      ("post", "/v1/claims/{claim_id}/payment")}  # fmt: skip
    assert _routes_depending_on(collections_app(), get_peers) == {("post", "/v1/cases")}
    assert _routes_depending_on(underwriting_app(), get_peers) == set()


@pytest.mark.parametrize("service", APPS)
def test_the_probes_and_metrics_declare_what_they_answer(service: str) -> None:
    schema = APPS[service]().openapi()
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert metrics == {"text/plain": {"schema": {"type": "string"}}}
    health = schema["paths"]["/healthz"]["get"]["responses"]["200"]["content"]
    ref = health["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert component["required"] == ["status"]
    assert component["properties"]["status"]["type"] == "string"


@pytest.mark.parametrize("service", APPS)
def test_each_event_type_is_a_webhook_with_its_event_schema_and_the_standard_headers(
    service: str,
) -> None:
    import importlib

    owned = importlib.import_module(f"services.{service}.events").EVENT_TYPES
    schema = APPS[service]().openapi()
    assert schema["openapi"].startswith("3.1")
    webhooks = schema["webhooks"]
    assert set(owned) <= set(webhooks)
    components = schema["components"]["schemas"]
    for event_type, hook in webhooks.items():
        operation = hook["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        event = components[ref.rsplit("/", 1)[1]]
        assert event["properties"]["type"]["const"] == event_type, event_type
        assert {"id", "type", "occurred_at", "data"} <= set(event["required"])
        headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
        assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert all(p["required"] for p in headers.values())
        assert {s for s in operation["responses"]} <= {"2XX", "default"}, event_type
