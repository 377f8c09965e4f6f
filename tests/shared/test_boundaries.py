"""Boundaries: no service imports another; the rules and the pure shared modules import no
framework."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE_ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "decimal", "functools",
                "typing", "zoneinfo", "holidays", "pycountry", "shared", "services", "math", "fractions",
                "enum", "re", "unicodedata"}  # fmt: skip


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_service_imports_another() -> None:
    for service_dir in (ROOT / "services").iterdir():
        if not service_dir.is_dir() or service_dir.name.startswith("__"):
            continue
        for path in service_dir.rglob("*.py"):
            for name in imports_of(path):
                if name.startswith("services."):
                    assert name.split(".")[1] == service_dir.name, f"{path} imports {name}"


def test_rules_and_pure_shared_modules_import_no_framework() -> None:
    pure = [*ROOT.glob("services/*/rules.py"), *ROOT.glob("services/*/rules/*.py"),
            ROOT / "shared/money.py",
            ROOT / "shared/calendar.py", ROOT / "shared/countries.py", ROOT / "shared/text.py"]  # fmt: skip
    assert len(pure) >= 5
    for path in pure:
        for name in imports_of(path):
            assert name.split(".")[0] in PURE_ALLOWED, f"{path} imports {name}"
            if name.startswith("shared."):
                assert name in {
                    "shared.money",
                    "shared.calendar",
                    "shared.countries",
                    "shared.text",
                }, name


def _persistence_imports(path: Path, service: str) -> set[str]:
    """What a routes module imports of persistence or rules: SQLAlchemy, or its service's
    `models`, `repository` or `rules` (`import x`, `from x import y` and `from pkg import x`)."""
    forbidden = {f"services.{service}.{name}" for name in ("models", "repository", "rules")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for module in modules:
            if module.split(".")[0] == "sqlalchemy" or module in forbidden:
                found.add(module)
    return found


def test_routes_parse_authorise_call_one_use_case_and_import_no_persistence() -> None:
    routes = sorted([*ROOT.glob("services/*/api.py"), *ROOT.glob("services/*/calendar_api.py")])
    assert len(routes) >= 4
    reaching = {str(path.relative_to(ROOT)): sorted(found) for path in routes
                if (found := _persistence_imports(path, path.parent.name))}  # fmt: skip
    assert reaching == {}
