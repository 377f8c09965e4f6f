"""Boundaries: no service imports another; the rules and the pure shared modules import no
framework."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE_ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "decimal", "functools",
                "typing", "zoneinfo", "holidays", "pycountry", "shared", "services", "math", "fractions",
                "enum"}  # fmt: skip


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
    pure = [*ROOT.glob("services/*/rules.py"), ROOT / "shared/money.py",
            ROOT / "shared/calendar.py", ROOT / "shared/countries.py"]  # fmt: skip
    assert len(pure) >= 5
    for path in pure:
        for name in imports_of(path):
            assert name.split(".")[0] in PURE_ALLOWED, f"{path} imports {name}"
            if name.startswith("shared."):
                assert name in {"shared.money", "shared.calendar", "shared.countries"}, name
