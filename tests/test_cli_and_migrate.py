"""`tci` as an operator runs it: concurrent `tci migrate` runs are safe (an advisory lock), a
service refuses to start on a database that is not migrated, `tci up` stops cleanly on Ctrl-C,
and bad input is answered with one line and exit code 2."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from shared.migrations import alembic_config, current_revision, upgrade
from shared.settings import SERVICE_PORTS
from tests.conftest import ROOT, SERVICES

TCI = [sys.executable, "-m", "shared.cli"]


def environment(**overrides: str) -> dict[str, str]:
    """The caller's environment without any database or secret setting, plus `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not (key.startswith("TCI_") or key in ("DATABASE_URL", "PORT"))
    }
    return {**env, "TCI_LOG_LEVEL": "INFO", **overrides}


def tci(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TCI, *args], env=env or environment(), cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def head(service: str) -> str:
    revision = ScriptDirectory.from_config(alembic_config(service, "sqlite://")).get_current_head()
    assert revision is not None
    return revision


def revisions(url_of: Callable[[str], str]) -> dict[str, str | None]:
    return {s: asyncio.run(current_revision(s, url_of(s))) for s in SERVICES}


# ---------------------------------------------------------------- one migration step


@pytest.mark.postgres
def test_six_concurrent_migrate_runs_on_a_fresh_database_all_succeed_and_reach_head(
    scratch_database: Callable[[str], str],
) -> None:
    env = environment(DATABASE_URL=scratch_database("claims"))
    runs = [subprocess.Popen([*TCI, "migrate"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(6)]  # fmt: skip
    outputs = [run.communicate(timeout=180)[0] for run in runs]

    assert [run.returncode for run in runs] == [0] * 6, "\n".join(outputs)
    assert not any("Traceback" in output for output in outputs)
    assert revisions(scratch_database) == {s: head(s) for s in SERVICES}


def test_migrate_twice_at_once_on_sqlite_both_succeed(tmp_path: Path) -> None:
    env = environment(DATABASE_URL=f"sqlite:///{tmp_path}/claims.db")
    runs = [subprocess.Popen([*TCI, "migrate", "claims"], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=120)[0] for run in runs]

    assert [run.returncode for run in runs] == [0, 0], "\n".join(outputs)
    url = f"sqlite+aiosqlite:///{tmp_path}/claims.db"
    assert asyncio.run(current_revision("claims", url)) == head("claims")


def test_migrate_names_an_unknown_service_in_one_line_and_exits_2() -> None:
    answer = tci("migrate", "claims", "billing")

    assert answer.returncode == 2
    assert answer.stdout == ""
    lines = answer.stderr.splitlines()
    assert len(lines) == 1, answer.stderr
    assert "billing" in lines[0] and "underwriting, claims, collections" in lines[0]


def test_migrate_that_cannot_reach_its_database_says_so_in_one_line() -> None:
    env = environment(DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    answer = tci("migrate", "claims", env=env)

    assert answer.returncode == 1
    lines = answer.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tci migrate: claims: "), answer.stderr


# ---------------------------------------------------------------- services start migrated only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(service: str, url: str, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.main:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    return subprocess.Popen(command, env=environment(DATABASE_URL=url), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def refusal_of(service: str, url: str) -> tuple[int, list[str]]:
    process = serve(service, url, free_port())
    output, _ = process.communicate(timeout=60)
    return process.returncode, output.splitlines()


def assert_refused(code: int, lines: Sequence[str], expected: str) -> None:
    assert code != 0
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    assert sum(expected in line for line in lines) == 1, "\n".join(lines)


def test_a_service_refuses_to_start_on_an_empty_database(tmp_path: Path) -> None:
    code, lines = refusal_of("claims", f"sqlite:///{tmp_path}/claims.db")

    assert_refused(code, lines, "claims: the database is not migrated "
                   f"(at base, head is {head('claims')}): run `tci migrate`")  # fmt: skip


def test_a_service_refuses_to_start_on_a_database_behind_its_head(
    scratch_database: Callable[[str], str],
) -> None:
    url = scratch_database("underwriting")
    script = ScriptDirectory.from_config(alembic_config("underwriting", url))
    previous = script.get_revision(head("underwriting")).down_revision
    assert isinstance(previous, str)
    upgrade("underwriting", url, previous)

    code, lines = refusal_of("underwriting", url)

    assert_refused(code, lines, "underwriting: the database is not migrated "
                   f"(at {previous}, head is {head('underwriting')}): run `tci migrate`")  # fmt: skip


def test_a_service_starts_on_a_migrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/collections.db"
    upgrade("collections", url)
    port = free_port()
    process = serve("collections", url, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    # uvicorn stops gracefully on SIGTERM, then re-raises it (exit status -15).
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application startup complete." in output
    assert "Application shutdown complete." in output
    assert "not migrated" not in output and "Traceback" not in output


# ---------------------------------------------------------------- `tci up` and Ctrl-C


def test_up_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    base = free_port_base()
    up = subprocess.Popen([*TCI, "up", "--port-base", str(base)], env=environment(),
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True)  # fmt: skip
    try:
        for port in SERVICE_PORTS.values():
            wait_ready(f"http://127.0.0.1:{base + port - 8000}", up)
        started = time.monotonic()
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        output, _ = up.communicate(timeout=20)
        stopped_in = time.monotonic() - started
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    assert up.returncode == 0, output
    assert stopped_in < 10
    assert "Traceback" not in output and "ERROR" not in output, output
    # the three services and the console
    assert output.count("Application shutdown complete.") == 4, output
    assert (tmp_path / "var" / "claims.db").exists()


def free_port_base() -> int:
    """A base whose three ports (base+1 … base+3) are free now."""
    for _ in range(50):
        base = free_port() - 1
        try:
            for offset in (1, 2, 3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no three free consecutive ports")


def wait_ready(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{base_url} did not become ready:\n{process.communicate()[0]}")
        time.sleep(0.2)


# ---------------------------------------------------------------- one database per service


def servers_on(ports: Sequence[int]) -> dict[int, str]:
    """The ids and command lines of the uvicorn processes serving on any of `ports`, whoever started
    them (`tci up` starts each in its own session, so its exit does not take them along)."""
    wanted = {str(port) for port in ports}
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended meanwhile
            continue
        served = {args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--port"}
        if "uvicorn" in args and served & wanted:
            found[int(cmdline.parent.name)] = " ".join(args)
    return found


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


ONE_FILE = "would share one SQLite file"
IN_MEMORY = "in-memory SQLite database"


@pytest.mark.parametrize(("database", "expected"), [("one.db", ONE_FILE), ("", IN_MEMORY)])
def test_up_refuses_one_sqlite_database_for_the_three_services_and_starts_nothing(
    tmp_path: Path, database: str, expected: str
) -> None:
    base = free_port_base()
    url = f"sqlite+aiosqlite:///{tmp_path}/{database}" if database else "sqlite://"
    answer = tci("up", "--port-base", str(base), env=environment(DATABASE_URL=url), cwd=tmp_path)

    assert answer.returncode == 2, answer
    lines = answer.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tci up: ") and expected in lines[0], lines
    assert "DATABASE_URL unset" in lines[0] and "PostgreSQL" in lines[0]
    ports = [base + offset for offset in range(4)]
    assert servers_on(ports) == {} and not any(listening(port) for port in ports)
    assert not (tmp_path / "one.db").exists()


@pytest.mark.parametrize(("url", "expected"), [("sqlite:///{tmp}/one.db", ONE_FILE),
                                               ("sqlite:///:memory:", IN_MEMORY)])  # fmt: skip
def test_migrate_refuses_one_sqlite_database_for_several_services(
    tmp_path: Path, url: str, expected: str
) -> None:
    answer = tci("migrate", env=environment(DATABASE_URL=url.format(tmp=tmp_path)))

    assert answer.returncode == 2 and answer.stdout == "", answer
    lines = answer.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tci migrate: ") and expected in lines[0]
    assert not (tmp_path / "one.db").exists()


def test_a_file_per_service_named_for_each_is_migrated(tmp_path: Path) -> None:
    env = environment(DATABASE_URL=f"sqlite:///{tmp_path}/one.db",
                      **{f"TCI_{s.upper()}_DATABASE_URL": f"sqlite:///{tmp_path}/{s}.db"
                         for s in SERVICES})  # fmt: skip
    answer = tci("migrate", env=env)

    assert answer.returncode == 0, answer
    assert revisions(lambda s: f"sqlite:///{tmp_path}/{s}.db") == {s: head(s) for s in SERVICES}


def test_a_service_refuses_another_services_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    upgrade("underwriting", url)

    code, lines = refusal_of("claims", url)
    assert_refused(code, lines, "claims: the database holds underwriting's tables "
                   f"(at underwriting's revision {head('underwriting')})")  # fmt: skip
    migrate = tci("migrate", "claims", env=environment(DATABASE_URL=url))
    assert migrate.returncode == 1
    assert migrate.stderr.startswith("tci migrate: claims: cannot migrate: the database holds "
                                     "underwriting's tables"), migrate.stderr  # fmt: skip


def test_a_service_refuses_an_in_memory_sqlite_database() -> None:
    code, lines = refusal_of("collections", "sqlite://")

    assert_refused(code, lines, "collections: the database URL names an in-memory SQLite database")


def test_up_stops_the_servers_it_started_when_a_later_migration_fails(tmp_path: Path) -> None:
    base = free_port_base()
    (tmp_path / "not-a-directory").write_text("")  # claims' database cannot be opened
    env = environment(TCI_CLAIMS_DATABASE_URL=f"sqlite:///{tmp_path}/not-a-directory/claims.db")
    answer = tci("up", "--port-base", str(base), env=env, cwd=tmp_path)

    ports = [base + offset for offset in range(4)]
    leftovers = servers_on(ports)
    for pid in leftovers:  # not this test's to leave behind
        os.kill(pid, signal.SIGKILL)
    assert answer.returncode == 1, answer
    assert f"underwriting: http://127.0.0.1:{base + 1}" in answer.stdout  # it was started
    failure = [line for line in answer.stderr.splitlines() if line.startswith("tci up: ")]
    assert failure == ["tci up: claims: cannot migrate: [Errno 17] File exists: "
                       f"'{tmp_path}/not-a-directory'; stopped the servers it had started"], \
        answer.stderr  # fmt: skip
    assert "Traceback" not in answer.stderr, answer.stderr
    assert leftovers == {} and not any(listening(port) for port in ports)


# ---------------------------------------------------------------- bad input: one line, exit 2


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["migrate", "foo"], {}, "unknown service 'foo'"),
        (["token", "--role", "underwriter"], {"TCI_ENV": "production"},
         "TCI_JWT_SECRET must be set outside development"),
        (["token", "--role", "underwriter", "--ttl", "soon"], {}, "--ttl"),
        (["token", "--role", "underwriter", "--ttl", "0"], {}, "--ttl must be at least 1"),
        (["token", "--role", "underwriter", "--ttl", "999999999"], {}, "--ttl may be at most"),
        (["token", "--role", "nobody"], {}, "nobody"),
        (["token"], {}, "--role"),
        (["deploy"], {}, "invalid choice: 'deploy'"),
        ([], {}, "required: COMMAND"),
        (["up", "--port-base", "70000"], {}, "--port-base"),
        (["migrate"], {"DATABASE_URL": "::::"}, "DATABASE_URL is not a database URL"),
        (["up"], {"DATABASE_URL": "::::"}, "DATABASE_URL is not a database URL"),
        (["up"], {"TCI_CLAIMS_DATABASE_URL": "mysql://u:secret@db/tci"},
         "claims: TCI_CLAIMS_DATABASE_URL is a mysql:// URL; the services run on PostgreSQL or "
         "SQLite only (postgresql://"),
        (["up"], {"TCI_RATE_LIMIT": "abc"}, "the settings are not valid: TCI_RATE_LIMIT: 'abc'"),
        (["up"], {"TCI_MAX_TOKEN_TTL_SECONDS": "-1"},
         "the settings are not valid: TCI_MAX_TOKEN_TTL_SECONDS: Input should be greater"),
        (["up"], {"TCI_ENV": "production", "TCI_JWT_SECRET": "short"},
         "TCI_JWT_SECRET must be at least 32 bytes"),
        (["up"], {"TCI_CONSOLE_SESSION_TTL_SECONDS": "1"},
         "console: the settings are not valid: TCI_CONSOLE_SESSION_TTL_SECONDS"),
        (["up", "--host", "999.1.1.1"], {}, "--host 999.1.1.1: not an address or a name"),
        (["up", "--host", "192.0.2.1"], {}, "--host 192.0.2.1: not an address of this machine"),
    ],
)  # fmt: skip
def test_bad_input_is_answered_in_one_line_with_exit_code_2(
    args: list[str], env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    if args[:1] == ["up"] and "--port-base" not in args:
        args = [*args, "--port-base", str(free_port_base())]
    answer = tci(*args, env=environment(**env), cwd=tmp_path)

    assert answer.returncode == 2, answer
    assert answer.stdout == ""
    lines = answer.stderr.splitlines()
    assert len(lines) == 1, answer.stderr
    assert lines[0].startswith("tci") and expected in lines[0], lines[0]
    assert "secret" not in lines[0]  # a password in a URL is never quoted
    assert not (tmp_path / "var").exists()  # nothing was started or migrated


@pytest.mark.parametrize("taken", [1, 2, 3, 0])  # a service's port, or the console's
def test_up_names_a_port_in_use_before_starting_anything(tmp_path: Path, taken: int) -> None:
    base = free_port_base()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + taken))
        holder.listen()
        answer = tci("up", "--port-base", str(base), cwd=tmp_path)

    assert answer.returncode == 2, answer
    assert answer.stdout == ""
    assert answer.stderr.splitlines() == [
        f"tci up: port {base + taken} is in use (on 127.0.0.1); stop what listens there or "
        "choose another --port-base"
    ]  # fmt: skip
    ports = [base + offset for offset in range(4)]
    assert servers_on(ports) == {} and not (tmp_path / "var").exists()


@pytest.mark.postgres
def test_up_prints_each_database_url_with_its_password_masked(
    tmp_path: Path, scratch_database: Callable[[str], str]
) -> None:
    from sqlalchemy.engine import make_url

    # The test server trusts local connections: any password is accepted, and must not show.
    url = make_url(scratch_database("claims")).set(password="DbPassw0rd")
    env = environment(DATABASE_URL=url.render_as_string(hide_password=False))
    base = free_port_base()
    up = subprocess.Popen([*TCI, "up", "--port-base", str(base)], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)  # fmt: skip
    try:
        for port in SERVICE_PORTS.values():
            wait_ready(f"http://127.0.0.1:{base + port - 8000}", up)
        os.killpg(up.pid, signal.SIGINT)
        output, _ = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    assert up.returncode == 0, output
    assert "DbPassw0rd" not in output, output
    masked = url.render_as_string(hide_password=True)
    assert ":***@" in masked
    for service, port in SERVICE_PORTS.items():
        line = f"{service}: http://127.0.0.1:{base + port - 8000}  (database {masked})"
        assert line in output.splitlines(), output
