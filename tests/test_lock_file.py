"""The lock files are current with pyproject.toml (offline: no registry is asked): each carries the
digest of the requirements it was made from, pins every direct requirement inside its range, names
no direct requirement pyproject dropped, and pins everything with hashes, as the image installs it
(`pip install --require-hashes`). After changing pyproject's dependencies: `make lock`."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

PROJECT = "tci"
# How uv names the project among a package's reasons for being locked.
FROM_PYPROJECT = f"{PROJECT} (pyproject.toml)"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


def lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_lock", ROOT / "deploy" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCK = lock_module()


@dataclass
class Pin:
    version: Version
    hashes: int = 0
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """uv's format: `name==version ; marker \\`, its `--hash=` lines, then `# via` reasons."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if match := PIN.match(line):
            current = Pin(Version(match["version"]))
            pins[canonicalize_name(match["name"])] = current
        elif current and stripped.startswith("--hash=sha256:"):
            current.hashes += 1
        elif current and stripped.startswith("# via "):
            current.via.append(stripped.removeprefix("# via ").strip())
        elif current and stripped.startswith("#   "):
            current.via.append(stripped.removeprefix("#   ").strip())
        elif stripped and not stripped.startswith(("#", "--")):
            pytest.fail(f"{path.name}: not a pinned requirement: {line!r}")
    return pins


def direct_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject's dependencies and those of the given extras, following `tci[test]`."""
    project = LOCK.project_table()
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    wanted, seen = list(extras), set()
    found = [Requirement(r) for r in project["dependencies"]]
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in optional.get(extra, []):
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT:
                wanted.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def applies(requirement: Requirement) -> bool:
    """Whether a marker lets the requirement in on the image's platform and Python."""
    if requirement.marker is None:
        return True
    environment = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux",
                   "python_version": LOCK.PYTHON_VERSION}  # fmt: skip
    return requirement.marker.evaluate(environment)


LOCKS = sorted(LOCK.LOCKS.items())


@pytest.mark.parametrize(("name", "extras"), LOCKS)
def test_each_lock_was_made_from_the_current_pyproject(name: str, extras: tuple[str, ...]) -> None:
    path = ROOT / name
    assert path.exists(), f"{name} is missing: run `make lock`"
    assert LOCK.stamp_of(path) == LOCK.digest(extras), (
        f"{name} was made from other requirements than pyproject.toml's: run `make lock`"
    )


@pytest.mark.parametrize(("name", "extras"), LOCKS)
def test_every_direct_requirement_is_pinned_inside_its_range(
    name: str, extras: tuple[str, ...]
) -> None:
    pins = read_lock(ROOT / name)
    for requirement in filter(applies, direct_requirements(extras)):
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin, f"{name} does not pin {requirement.name}: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{name} pins {requirement.name}=={pin.version}, outside {requirement}"
        )
        assert FROM_PYPROJECT in pin.via, f"{name}: {requirement.name} is not marked as direct"


@pytest.mark.parametrize(("name", "extras"), LOCKS)
def test_the_lock_names_no_direct_requirement_pyproject_dropped(
    name: str, extras: tuple[str, ...]
) -> None:
    declared = {canonicalize_name(r.name) for r in direct_requirements(extras)}
    direct = {
        package for package, pin in read_lock(ROOT / name).items() if FROM_PYPROJECT in pin.via
    }
    assert direct <= declared, f"{name} still locks {sorted(direct - declared)}: run `make lock`"


@pytest.mark.parametrize(("name", "extras"), LOCKS)
def test_every_pin_carries_hashes(name: str, extras: tuple[str, ...]) -> None:
    pins = read_lock(ROOT / name)
    assert len(pins) >= len(direct_requirements(extras))
    assert [package for package, pin in pins.items() if pin.hashes == 0] == []
    assert PROJECT not in pins, "the project itself is installed from its source, not the lock"


@pytest.mark.parametrize(("name", "extras"), LOCKS)
def test_every_pin_is_there_for_pyproject_or_another_pin(
    name: str, extras: tuple[str, ...]
) -> None:
    pins = read_lock(ROOT / name)
    constraint = LOCK.CONSTRAINTS.get(name)
    known = {FROM_PYPROJECT, *([f"-c {constraint}"] if constraint else [])}
    for package, pin in pins.items():
        assert pin.via, f"{name}: {package} is pinned for no reason given"
        reasons = {r if r in known else canonicalize_name(r) for r in pin.via}
        assert reasons <= {*known, *pins}, f"{name}: {package} needed by {reasons}"


def test_the_runtime_lock_holds_no_test_tool() -> None:
    runtime = read_lock(ROOT / "requirements.lock")
    development = read_lock(ROOT / "requirements-dev.lock")
    assert {"pytest", "mypy", "ruff"} <= development.keys()
    assert {"pytest", "mypy", "ruff"}.isdisjoint(runtime.keys())
    # The image and the tests run the same versions of what they share.
    assert {p: runtime[p].version for p in runtime} == {p: development[p].version for p in runtime}


def test_a_changed_requirement_changes_the_digest(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    original = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pyproject.write_text(original, encoding="utf-8")
    before = LOCK.digest((), pyproject)
    added = original.replace("dependencies = [", 'dependencies = [\n    "six>=1.16",', 1)
    assert added != original
    pyproject.write_text(added, encoding="utf-8")
    assert LOCK.digest((), pyproject) != before
    # A comment or the order of lines changes nothing a resolver sees.
    pyproject.write_text(original + "\n# a comment\n", encoding="utf-8")
    assert LOCK.digest((), pyproject) == before
