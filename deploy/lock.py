"""`make lock`: pin pyproject.toml's dependencies with uv, hashes included, and stamp each lock
with a digest of the requirements it was made from (tests/test_lock_file.py compares).

    python deploy/lock.py             keep the pins that still fit, resolve what changed
    python deploy/lock.py --upgrade   every package to its newest allowed version

requirements.lock      the runtime: what the image installs
requirements-dev.lock  the runtime, the tests and the linters (the `dev` extra)
Both are universal (any platform) for the oldest Python the project supports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PYTHON_VERSION = "3.11"
# lock file -> the extras it adds to the runtime dependencies
LOCKS: dict[str, tuple[str, ...]] = {"requirements.lock": (), "requirements-dev.lock": ("dev",)}
# The dev lock keeps the runtime lock's versions: the tests run what the image runs.
CONSTRAINTS = {"requirements-dev.lock": "requirements.lock"}
STAMP = "# requirements digest (deploy/lock.py): "


def project_table(pyproject: Path = PYPROJECT) -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return table


def locked_requirements(extras: Sequence[str], pyproject: Path = PYPROJECT) -> dict[str, Any]:
    """What a lock is made from: the Python range, the dependencies and, for a lock with extras,
    every optional group (an extra may pull another in: `dev` needs `tci[test]`)."""
    project = project_table(pyproject)
    made_from: dict[str, Any] = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(project.get("dependencies", [])),
    }
    if extras:
        optional: dict[str, list[str]] = project.get("optional-dependencies", {})
        made_from["extras"] = list(extras)
        made_from["optional-dependencies"] = {k: sorted(v) for k, v in sorted(optional.items())}
    return made_from


def digest(extras: Sequence[str], pyproject: Path = PYPROJECT) -> str:
    canonical = json.dumps(locked_requirements(extras, pyproject), sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def stamp_of(lock: Path) -> str | None:
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(STAMP):
            return line.removeprefix(STAMP).strip()
    return None


def uv_executable() -> str:
    beside_python = Path(sys.executable).with_name("uv")
    found = str(beside_python) if beside_python.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("deploy/lock.py: uv is not installed (pip install uv, or `make install`)")
    return found


def compile_lock(name: str, extras: Sequence[str], *, upgrade: bool) -> None:
    lock = ROOT / name
    command = [
        uv_executable(), "pip", "compile", "pyproject.toml", "--quiet", "--universal",
        "--python-version", PYTHON_VERSION, "--generate-hashes",
        "--custom-compile-command", "make lock", "--output-file", name,
        *(f"--extra={extra}" for extra in extras), *(["--upgrade"] if upgrade else []),
        *(["--constraint", CONSTRAINTS[name]] if name in CONSTRAINTS else []),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True)
    header, _, body = lock.read_text(encoding="utf-8").partition("\n#    make lock\n")
    lines = [line for line in body.splitlines() if not line.startswith(STAMP)]
    stamped = [f"{header}\n#    make lock", f"{STAMP}{digest(extras)}", *lines]
    lock.write_text("\n".join(stamped) + "\n", encoding="utf-8")
    print(f"{name}: {sum('==' in line and not line.startswith('#') for line in lines)} pins")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/lock.py", description=__doc__.split("\n")[0])
    parser.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    args = parser.parse_args(argv)
    for name, extras in LOCKS.items():
        compile_lock(name, extras, upgrade=args.upgrade)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
