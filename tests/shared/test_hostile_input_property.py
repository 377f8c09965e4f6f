"""Property: no input makes any route of the three services answer 5xx, and every 4xx is
problem+json. Routes, parameters and request bodies are read from each app's OpenAPI, so a new
route is covered without touching this test; values are hostile strings (NUL, lone surrogates,
huge, right-to-left, SQL), numbers (huge, negative, NaN and Infinity as strings, many decimals),
dates (0001-01-01, 9999-12-31, impossible ones), deep nesting and values of the wrong type, sent
with a `service` token through the in-process apps (one rolled-back transaction per route)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import auth

SERVICES = ("underwriting", "claims", "collections")
EXAMPLES_PER_ROUTE = 12
SERVICE_TOKEN = auth("service")
EXAMPLES_RUN: dict[str, int] = {}


def _openapi(service: str) -> dict[str, Any]:
    from importlib import import_module

    app = import_module(f"services.{service}.main").create_app()
    spec: dict[str, Any] = app.openapi()
    return spec


def _operations() -> Iterator[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    for service in SERVICES:
        spec = _openapi(service)
        for path, item in sorted(spec["paths"].items()):
            for method, operation in sorted(item.items()):
                if method in {"get", "post", "put", "delete", "patch"}:
                    yield service, method, path, operation, spec


OPERATIONS = {(s, m, p): (op, spec) for s, m, p, op, spec in _operations()}

# ---------------------------------------------------------------- hostile values

HOSTILE_TEXT = st.sampled_from([
    "\x00", "a\x00b", "\ud800", "x\udfff", "x" * 20_000, "\u202eRTL\u202d", "\u200f\u061c",
    "'; DROP TABLE policies; --", "' OR '1'='1", "%00", "../../etc/passwd", "", " ", "null",
    "1e30", "9999-12-31", "\U0001f600", "<script>alert(1)</script>", "\ufeff", "\n\r\t",
])  # fmt: skip
QUERY_TEXT = st.sampled_from([
    "\x00", "a\x00b", "x" * 2_000, "\u202eRTL", "' OR 1=1 --", "", "9999-12-31", "0001-01-01",
    "-1", "1e30", str(2**64), "NaN",
]) | st.text(st.characters(codec="utf-8"), max_size=40)  # fmt: skip
HOSTILE_NUMBER_TEXT = st.sampled_from([
    "1e30", str(2**64), str(-(2**64)), "-1", "-0", "NaN", "Infinity", "-Infinity", "sNaN",
    "0.0000000000000000001", "1." + "1" * 60, "1e-999999999", "1e999999999",
    "99999999999999.99", "100000000000000", "0", " 5 ", "0x10", "1_000", "",
]) | st.decimals(allow_nan=False, allow_infinity=False).map(str)  # fmt: skip
HOSTILE_INTEGER = (
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**31, -1, 0, 10**100]) | st.integers()
)
HOSTILE_DATE = st.sampled_from([
    "0001-01-01", "9999-12-31", "2027-02-30", "2027-13-01", "1899-12-31", "3000-01-01",
    "2999-12-31", "1900-01-01", "0000-00-00", "2027-06-10", "20270610", "2027-06-10T00:00:00",
]) | st.dates().map(lambda d: d.isoformat())  # fmt: skip
WRONG_TYPE = st.recursive(
    st.none() | st.booleans() | st.floats() | HOSTILE_INTEGER | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def value_for(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Any:
    """A strategy of values for `schema`, mostly of its type with hostile contents, sometimes of
    the wrong type altogether."""
    schema = _resolve(schema, spec)
    if depth > 6:
        return WRONG_TYPE
    variants = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if variants:
        return st.one_of([value_for(v, spec, depth + 1) for v in variants])
    kind = schema.get("type")
    fmt = schema.get("format")
    if "enum" in schema:
        typed: Any = st.sampled_from(schema["enum"]) | HOSTILE_TEXT
    elif kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        typed = st.fixed_dictionaries(
            {k: value_for(v, spec, depth + 1) for k, v in properties.items() if k in required},
            optional={
                k: value_for(v, spec, depth + 1) for k, v in properties.items() if k not in required
            },
        )
    elif kind == "array":
        item = value_for(schema.get("items", {}), spec, depth + 1)
        typed = st.lists(item, max_size=3)
    elif kind == "string" and fmt == "date":
        typed = HOSTILE_DATE
    elif kind == "string" and fmt == "decimal":
        typed = HOSTILE_NUMBER_TEXT
    elif kind == "string":
        typed = HOSTILE_TEXT | HOSTILE_NUMBER_TEXT | HOSTILE_DATE
    elif kind in ("integer", "number"):
        typed = HOSTILE_INTEGER | HOSTILE_NUMBER_TEXT
    elif kind == "boolean":
        typed = st.booleans()
    elif kind == "null":
        typed = st.none()
    else:
        typed = WRONG_TYPE
    return st.one_of(typed, WRONG_TYPE)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def request_for(
    method: str, path: str, operation: dict[str, Any], spec: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """A strategy of whole requests: path, query, body, as httpx keyword arguments."""
    path_values: dict[str, Any] = {}
    query_values: dict[str, Any] = {}
    for parameter in operation.get("parameters", ()):
        schema = _resolve(parameter.get("schema", {}), spec)
        where = parameter["in"]
        text = (
            HOSTILE_DATE
            if schema.get("format") == "date"
            else (QUERY_TEXT | HOSTILE_DATE | HOSTILE_INTEGER.map(str))
        )
        if where == "path":
            path_values[parameter["name"]] = st.sampled_from(["x", "pol-1", "CN"]) | text
        elif where == "query":
            query_values[parameter["name"]] = text
    content = operation.get("requestBody", {}).get("content", {})

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        url = path
        for name, strategy in path_values.items():
            url = url.replace("{" + name + "}", quote(str(draw(strategy)), safe=""))
        params = draw(st.fixed_dictionaries({}, optional=query_values))
        headers = dict(SERVICE_TOKEN)
        if draw(st.booleans()):
            headers["Idempotency-Key"] = draw(st.sampled_from(["k1", "k\x7f", "x" * 300, "k2"]))
        kwargs: dict[str, Any] = {"url": url, "params": params, "headers": headers}
        if "multipart/form-data" in content:
            schema = _resolve(content["multipart/form-data"]["schema"], spec)
            data, files = {}, {}
            for name, prop in schema.get("properties", {}).items():
                if _resolve(prop, spec).get("format") == "binary" or "contentMediaType" in prop:
                    filename = draw(st.text(st.characters(codec="utf-8"), max_size=300))
                    files[name] = (filename, draw(st.binary(max_size=64)), "application/pdf")
                else:
                    data[name] = draw(st.text(st.characters(codec="utf-8"), max_size=50))
            kwargs.update(data=data, files=files)
        elif "application/json" in content or method in {"post", "put"}:
            schema = content.get("application/json", {}).get("schema", {})
            choice = draw(st.integers(0, 9))
            if choice == 0:
                raw = nested(draw(st.sampled_from([5, 500, 5_000, 200_000])))
            else:
                raw = json.dumps(draw(value_for(schema, spec)))
            kwargs["content"] = raw
            headers["content-type"] = "application/json"
        return kwargs

    return build()


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    line = (f"hostile-input property test: {sum(EXAMPLES_RUN.values())} requests over "
            f"{len(EXAMPLES_RUN)} routes, no 5xx")  # fmt: skip
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\n{line}")


@pytest.mark.parametrize(
    ("service", "method", "path"),
    list(OPERATIONS),
    ids=[f"{s}:{m.upper()} {p}" for s, m, p in OPERATIONS],
)
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(data=st.data())
async def test_no_hostile_request_gets_a_server_error_and_every_4xx_is_a_problem(
    api: Any, service: str, method: str, path: str, data: st.DataObject
) -> None:  # fmt: skip
    operation, spec = OPERATIONS[service, method, path]
    await api.open("claims")
    client: httpx.AsyncClient = await api.open(service)
    key = f"{service} {method.upper()} {path}"
    EXAMPLES_RUN[key] = EXAMPLES_RUN.get(key, 0) + 1
    kwargs = data.draw(request_for(method, path, operation, spec))
    answer = await client.request(method.upper(), **kwargs)
    assert answer.status_code < 500, (kwargs, answer.status_code, answer.text[:500])
    if answer.status_code >= 400:
        assert answer.headers["content-type"].startswith("application/problem+json"), (
            kwargs, answer.status_code, answer.text[:300])  # fmt: skip
        body = answer.json()
        assert body["status"] == answer.status_code and body["type"]
