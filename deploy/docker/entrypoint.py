"""The image's entry point: one service (or the staff console) under uvicorn, the migration step,
the health probe, or any other command; secrets named by `<VARIABLE>_FILE` are read first.

Standard library only: the container's HEALTHCHECK runs this every few seconds, and importing the
project (pydantic) would cost ten times the probe itself.

    entrypoint.py [underwriting|claims|collections|console]
                                                       serve (or what TCI_SERVICE names)
    entrypoint.py migrate [SERVICE...]                 `tci migrate`, then exit
    entrypoint.py healthcheck [PATH]                   GET PATH (default /healthz) on the service
    entrypoint.py COMMAND [ARG...]                     anything else, e.g. `tci token --role ...`
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, MutableMapping, Sequence

# The documented ports, as in shared.settings.SERVICE_PORTS (tests/test_migrations_and_compose.py
# keeps the two equal).
SERVICE_PORTS = {"underwriting": 8001, "claims": 8002, "collections": 8003}
# The staff console (console/), served like a service; its port is TCI_CONSOLE_PORT's default
# (console/settings.py), and TCI_CONSOLE_PORT, when set, is the one it listens on.
CONSOLE = "console"
CONSOLE_PORT = 8000
# What each name serves: the application factory uvicorn runs.
APPLICATIONS = {
    **{service: f"services.{service}.main:create_app" for service in SERVICE_PORTS},
    CONSOLE: "console.main:create_app",
}
# Variables that may be given as a file instead (a Docker or Kubernetes secret): NAME_FILE=/path.
SECRET_VARIABLES = (
    "DATABASE_URL", "PGPASSWORD", "TCI_JWT_SECRET", "TCI_REDIS_URL",
    "TCI_CONSOLE_OIDC_CLIENT_SECRET",
)  # fmt: skip
# Settings of the process itself (uvicorn), read only here; the services' own are in
# shared/settings.py.
DEFAULT_WORKERS = 2
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1"
# Longer than the idle timeout of any proxy in front (Caddy here, ingress-nginx 60 s), so that the
# proxy, never uvicorn, closes an idle connection: no request is sent on a socket being closed.
DEFAULT_KEEP_ALIVE_SECONDS = 75
# Shorter than Kubernetes' terminationGracePeriodSeconds (30 s by default).
DEFAULT_GRACEFUL_SHUTDOWN_SECONDS = 20
HEALTHCHECK_TIMEOUT_SECONDS = 3.0


class UsageError(Exception):
    """A bad command line or setting: one line on stderr and exit code 2."""


def read_secret_files(env: MutableMapping[str, str]) -> None:
    """Set each secret variable from the file its `_FILE` twin names (trailing newline dropped)."""
    for name in SECRET_VARIABLES:
        path = env.get(f"{name}_FILE")
        if not path:
            continue
        try:
            with open(path, encoding="utf-8") as secret:
                env[name] = secret.read().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise UsageError(f"{name} must be at least 1, not {value}")
    return value


def service_named(name: str | None) -> str:
    if name in APPLICATIONS:
        return name
    if not name:
        raise UsageError(
            "no service given: set TCI_SERVICE (or give as the command) one of "
            + ", ".join(APPLICATIONS)
        )
    raise UsageError(
        f"unknown service {name!r}: set TCI_SERVICE (or give as the command) one of "
        + ", ".join(APPLICATIONS)
    )


def served_service(cmdline: str = "/proc/1/cmdline") -> str | None:
    """The service this container's first process serves, when it was named on the command
    line rather than by TCI_SERVICE (the health probe runs beside it with the image's env)."""
    try:
        with open(cmdline, "rb") as file:
            arguments = file.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    for argument in arguments:
        for service, application in APPLICATIONS.items():
            if argument in (service, application):
                return service
    return None


def port_of(service: str, env: Mapping[str, str]) -> int:
    if service == CONSOLE:
        return positive_int(env, "PORT", positive_int(env, "TCI_CONSOLE_PORT", CONSOLE_PORT))
    return positive_int(env, "PORT", SERVICE_PORTS[service])


def uvicorn_command(service: str, env: Mapping[str, str]) -> list[str]:
    """Several workers, the client address and scheme taken from the proxy's headers when the
    proxy's address is trusted (TCI_FORWARDED_ALLOW_IPS: addresses or networks, or `*`)."""
    workers = positive_int(env, "TCI_WORKERS", DEFAULT_WORKERS)
    keep_alive = positive_int(env, "TCI_KEEP_ALIVE_SECONDS", DEFAULT_KEEP_ALIVE_SECONDS)
    graceful = positive_int(env, "TCI_GRACEFUL_SHUTDOWN_SECONDS", DEFAULT_GRACEFUL_SHUTDOWN_SECONDS)
    allow = env.get("TCI_FORWARDED_ALLOW_IPS", "").strip() or DEFAULT_FORWARDED_ALLOW_IPS
    return [
        sys.executable, "-m", "uvicorn", "--factory", APPLICATIONS[service],
        "--host", env.get("TCI_HOST", "0.0.0.0"), "--port", str(port_of(service, env)),
        "--workers", str(workers), "--proxy-headers", "--forwarded-allow-ips", allow,
        "--timeout-keep-alive", str(keep_alive), "--timeout-graceful-shutdown", str(graceful),
        "--no-server-header", "--no-access-log",
    ]  # fmt: skip


def healthcheck(service: str, env: Mapping[str, str], path: str) -> int:
    """0 when the service answers 200 on PATH over loopback, 1 otherwise (Docker's convention)."""
    url = f"http://127.0.0.1:{port_of(service, env)}{path}"
    try:
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT_SECONDS) as answer:
            healthy = answer.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


def command_for(argv: Sequence[str], env: Mapping[str, str]) -> list[str] | int:
    """The command to exec in this process's place, or an exit code (the health probe)."""
    first, rest = (argv[0], list(argv[1:])) if argv else (None, [])
    if first == "healthcheck":
        service = service_named(env.get("TCI_SERVICE") or served_service())
        path = rest[0] if rest else "/healthz"
        return healthcheck(service, env, path if path.startswith("/") else f"/{path}")
    if first == "migrate":
        return [sys.executable, "-m", "shared.cli", "migrate", *rest]
    if first is None or first in APPLICATIONS:
        return uvicorn_command(service_named(first or env.get("TCI_SERVICE")), env)
    return [first, *rest]


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ
    try:
        read_secret_files(env)
        command = command_for(sys.argv[1:] if argv is None else argv, env)
    except UsageError as exc:
        print(f"entrypoint: {exc}", file=sys.stderr)
        return 2
    if isinstance(command, int):
        return command
    if "--workers" in command and int(command[command.index("--workers") + 1]) > 1:
        # Several workers: prometheus_client's multiprocess mode, so that a scrape sums them all.
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="tci-metrics-"))
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"entrypoint: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    raise SystemExit(main())
