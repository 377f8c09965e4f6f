"""The catalogue of problem types (`shared.problems`): every problem the code raises is one of its
entries, every entry is raised somewhere (by the services it names), and each service's OpenAPI
lists, per problem+json status of a route, the catalogue's types that status carries there."""

from __future__ import annotations

import ast
from collections import defaultdict
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from services.claims import rules as claims_rules
from services.collections import rules as collections_rules
from shared import problems
from shared.problems import CATALOGUE, PROBLEM_JSON, ProblemType

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = {name: v for name, v in vars(problems).items() if isinstance(v, ProblemType)}
RAISING = {"Problem": None, "conflict": 409, "unprocessable": 422}
SERVICES = ("underwriting", "claims", "collections")


def _owner(path: Path) -> str:
    """`shared` or the service a module belongs to."""
    parts = path.relative_to(ROOT).parts
    return parts[1] if parts[0] == "services" else "shared"


class _References(ast.NodeVisitor):
    """The catalogue entries a module names (`from shared.problems import X`, `problems.X` after
    `from shared import problems`, or the catalogue module's own names) and the first argument
    of each call that raises a problem."""

    def __init__(self, own_module: bool) -> None:
        self.entry_names: dict[str, str] = dict.fromkeys(ENTRIES, "") if own_module else {}
        self.module_aliases: set[str] = set()
        self.used: list[str] = []
        self.raised: list[tuple[str, ast.expr | None, int]] = []

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if node.module == "shared.problems" and alias.name in ENTRIES:
                self.entry_names[alias.asname or alias.name] = alias.name
            if node.module == "shared" and alias.name == "problems":
                self.module_aliases.add(alias.asname or alias.name)

    def entry(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name) and node.id in self.entry_names:
            return self.entry_names[node.id] or node.id
        if (isinstance(node, ast.Attribute) and node.attr in ENTRIES
                and isinstance(node.value, ast.Name) and node.value.id in self.module_aliases):  # fmt: skip
            return node.attr
        return None

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and (name := self.entry(node)):
            self.used.append(name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if name := self.entry(node):
            self.used.append(name)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called in RAISING:
            self.raised.append((called, node.args[0] if node.args else None, node.lineno))
        self.generic_visit(node)


def _scan() -> tuple[dict[str, set[str]], list[str]]:
    """Where each entry is named (owners), and every raise that does not name an entry."""
    named: dict[str, set[str]] = defaultdict(set)
    stray: list[str] = []
    for path in sorted([*ROOT.glob("shared/*.py"), *ROOT.glob("services/**/*.py")]):
        own = path == ROOT / "shared/problems.py"
        refs = _References(own_module=own)
        refs.visit(ast.parse(path.read_text()))
        for name in refs.used:
            named[name].add(_owner(path))
        for called, first, line in refs.raised:
            where = f"{path.relative_to(ROOT)}:{line} {called}(...)"
            entry = refs.entry(first) if first is not None else None
            if own and isinstance(first, ast.Name) and first.id == "kind":
                continue  # the catalogue's helpers pass on the entry they are given
            if entry is None:
                stray.append(f"{where} does not name a catalogue entry")
            elif RAISING[called] not in (None, ENTRIES[entry].status):
                stray.append(f"{where} raises {entry} ({ENTRIES[entry].status}) as {called}")
    return named, stray


def test_each_problem_type_is_catalogued_once_under_one_name() -> None:
    assert sorted(v.slug for v in ENTRIES.values()) == sorted(CATALOGUE)
    assert {v.slug: v for v in ENTRIES.values()} == CATALOGUE
    assert len(CATALOGUE) >= 40


def test_every_problem_raised_in_the_services_and_shared_names_a_catalogue_entry() -> None:
    named, stray = _scan()
    assert stray == []
    assert len(named) > 0


def test_every_catalogue_entry_is_raised_and_only_by_the_services_it_names() -> None:
    named, _ = _scan()
    assert set(named) == set(ENTRIES), f"unused: {sorted(set(ENTRIES) - set(named))}"
    wrong = {}
    for name, owners in named.items():
        services = ENTRIES[name].services
        # a type any service answers is raised by the shared plumbing (and maybe a service too);
        # a service's own type is raised in exactly the services it names
        if (not services and "shared" not in owners) or (services and owners != services):
            wrong[name] = (sorted(owners), sorted(services) or ["shared"])
    assert wrong == {}


def test_the_refusals_the_rules_name_are_catalogue_problem_types() -> None:
    refusals = {r.value for r in claims_rules.Refusal}
    refusals |= {collections_rules.CASE_CLOSED, collections_rules.NO_OPEN_DISPUTE}
    assert refusals <= CATALOGUE.keys()


def _openapi(service: str) -> dict[str, Any]:
    spec: dict[str, Any] = import_module(f"services.{service}.main").create_app().openapi()
    return spec


def _types(spec: dict[str, Any], path: str, method: str, status: int) -> list[str]:
    answer = spec["paths"][path][method]["responses"][str(status)]
    schema = answer["content"][PROBLEM_JSON]["schema"]
    named = "ValidationProblem" if status == 422 else "Problem"
    assert schema == {"$ref": f"#/components/schemas/{named}"}
    listed: list[str] = answer["x-problem-types"]
    for slug in listed:
        assert f"`{slug}`" in answer["description"]
    return listed


@pytest.mark.parametrize(
    ("service", "path", "method", "status", "expected"),
    [
        ("underwriting", "/v1/limit-requests/{request_id}/decision", "post", 409,
         {"already-decided", "idempotency-key-in-use"}),
        ("underwriting", "/v1/policies", "post", 422,
         {"validation", "currency-mismatch", "idempotency-key-reused"}),
        ("claims", "/v1/claims/{claim_id}/decision", "post", 409,
         {"already-decided", "claim-on-hold", "caps-exceeded", "assessment-outdated"}),
        ("claims", "/v1/claims/{claim_id}/payment", "post", 409, {"not-approved"}),
        ("claims", "/v1/claims/{claim_id}/payment", "post", 502, {"upstream-error"}),
        ("claims", "/v1/claims/{claim_id}/documents", "post", 415, {"unsupported-media-type"}),
        ("collections", "/v1/cases", "post", 422,
         {"not-overdue", "currency-mismatch", "validation"}),
        ("collections", "/v1/cases/{case_id}/payments", "post", 422,
         {"overpayment", "currency-mismatch", "no-open-dispute"}),
        ("collections", "/v1/cases/{case_id}/activities", "post", 409, {"case-closed"}),
        ("collections", "/v1/cases/{case_id}", "get", 404, {"not-found"}),
        ("collections", "/v1/cases/{case_id}", "get", 429, {"rate-limited"}),
        ("collections", "/v1/cases/{case_id}", "get", 503, {"service-unavailable"}),
    ],
)  # fmt: skip
def test_each_service_openapi_lists_the_catalogue_types_a_route_can_answer(
    service: str, path: str, method: str, status: int, expected: set[str]
) -> None:
    listed = _types(_openapi(service), path, method, status)
    assert expected <= set(listed)
    assert {CATALOGUE[s].status for s in listed} == {status}


def test_a_service_openapi_lists_no_problem_type_only_other_services_answer() -> None:
    for service in SERVICES:
        spec = _openapi(service)
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                for status, answer in operation["responses"].items():
                    if PROBLEM_JSON not in answer.get("content", {}):
                        continue
                    for slug in _types(spec, path, method, int(status)):
                        assert CATALOGUE[slug].answered_by(service), (service, path, slug)
