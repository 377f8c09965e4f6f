"""The settings reference (docs/settings.md) and .env.example say what the code reads: every
setting of every settings class, the image entry point's variables and the compose file's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.settings_reference import (
    COMPOSE_VARIABLES,
    ENTRYPOINT_VARIABLES,
    ENV_EXAMPLE,
    REFERENCE,
    UNDOCUMENTED,
    compose_variables_read,
    entrypoint_variables_read,
    reference_markdown,
    settings_classes,
    settings_entries,
    stale,
    write,
)
from tests.conftest import ROOT


def test_the_reference_and_env_example_are_current() -> None:
    assert stale() == [], "run `tci settings` (or `make settings`) and commit the result"


def test_every_setting_of_every_class_is_in_the_reference_with_its_default() -> None:
    reference = (ROOT / REFERENCE).read_text()
    example = (ROOT / ENV_EXAMPLE).read_text()
    for service, cls in settings_classes().items():
        for name, info in cls.model_fields.items():
            assert info.alias, f"{service}: {name} has no environment variable"
            row = next(
                line for line in reference.splitlines() if line.startswith(f"| `{info.alias}` |")
            )
            assert f"`{name}`" in row and service in row
            assert f"# {info.alias}=" in example


def test_every_setting_has_a_description() -> None:
    assert [e.variable for e in settings_entries() if e.description == UNDOCUMENTED] == []


def test_every_variable_the_entry_point_and_compose_file_read_is_described() -> None:
    assert entrypoint_variables_read() <= set(ENTRYPOINT_VARIABLES)
    assert compose_variables_read() <= set(COMPOSE_VARIABLES)
    reference = reference_markdown()
    for variable in [*ENTRYPOINT_VARIABLES, "DATABASE_URL_FILE", "TCI_JWT_SECRET_FILE"]:
        assert f"| `{variable}` |" in reference


def test_the_reference_names_the_entry_points_own_defaults() -> None:
    reference = reference_markdown()
    assert "| `TCI_WORKERS` | `2` |" in reference
    assert "| `TCI_KEEP_ALIVE_SECONDS` | `75` |" in reference


def test_a_changed_default_makes_the_check_fail(tmp_path: Path) -> None:
    write(tmp_path)
    assert stale(tmp_path) == []
    reference = tmp_path / REFERENCE
    reference.write_text(reference.read_text().replace("`Asia/Shanghai`", "`Europe/Paris`"))
    assert stale(tmp_path) == [REFERENCE]


def test_tci_settings_check_passes_on_the_repository() -> None:
    answer = subprocess.run([sys.executable, "-m", "shared.cli", "settings", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert answer.returncode == 0, answer.stdout + answer.stderr
