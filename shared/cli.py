"""`tci`: mint development tokens, migrate, run the three services in the foreground, publish
their OpenAPI documents, and write the settings reference. Bad input is answered with one line on
stderr and exit code 2."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from shared.settings import (
    SERVICE_PORTS,
    Settings,
    database_url_refusal,
    default_database_url,
    masked_url,
    settings_refusal,
    shared_database_refusal,
)

# `tci up --port-base N` serves each service on N + (its documented port - DOCUMENTED_BASE).
DOCUMENTED_BASE = 8000
# How long `tci up` waits for the services to finish their shutdown before killing them.
UP_STOP_SECONDS = 15.0
# How long `tci up` waits for each server it started to answer its probe before giving up.
UP_READY_SECONDS = 60.0


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`tci migrate: unknown service 'x'`), exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _service_names(value: str) -> str:
    if value not in SERVICE_PORTS:
        raise argparse.ArgumentTypeError(
            f"unknown service {value!r}; one of {', '.join(SERVICE_PORTS)}"
        )
    return value


def port_base(value: str) -> int:
    """A `--port-base`: BASE+1..BASE+3 (and the console on BASE) all within 1-65535."""
    try:
        base = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    highest = base + max(SERVICE_PORTS.values()) - DOCUMENTED_BASE
    if base < 0 or highest > 65535:
        raise argparse.ArgumentTypeError(f"{base} puts a port outside 1-65535")
    return base


def _token(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from shared.auth import mint_token

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"tci token: the settings are not valid: {settings_refusal(exc)}", file=sys.stderr)
        return 2
    if args.ttl > settings.max_token_ttl_seconds:
        print(f"tci token: --ttl may be at most {settings.max_token_ttl_seconds} seconds "
              "(TCI_MAX_TOKEN_TTL_SECONDS); the services refuse longer-lived tokens",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.ttl < 1:
        print("tci token: --ttl must be at least 1 second", file=sys.stderr)
        return 2
    try:
        print(mint_token(settings.jwt_secret, role=args.role, party_id=args.party,
                         ttl_seconds=args.ttl, subject=args.sub))  # fmt: skip
    except ValueError as exc:
        print(f"tci token: {exc}", file=sys.stderr)
        return 2
    return 0


def _database_url(service: str) -> tuple[str, str]:
    """The database URL of `service` and the variable it was read from."""
    for variable in (f"TCI_{service.upper()}_DATABASE_URL", "DATABASE_URL"):
        if os.environ.get(variable):
            return os.environ[variable], variable
    return default_database_url(service), "the default"


def _database_urls(command: str, services: Sequence[str]) -> dict[str, str] | None:
    """The database URL of each service, or None (and why, on stderr) when they cannot serve
    them: not a URL, a database other than PostgreSQL or SQLite, one SQLite file for two
    services, or an in-memory SQLite database."""
    urls = {}
    for service in services:
        url, variable = _database_url(service)
        refusal = database_url_refusal(url)
        if refusal is not None:
            print(f"tci {command}: {service}: {variable} {refusal}", file=sys.stderr)
            return None
        urls[service] = url
    refusal = shared_database_refusal(urls)
    if refusal is not None:
        print(f"tci {command}: {refusal}", file=sys.stderr)
        return None
    return urls


def _cannot_migrate(service: str, exc: BaseException) -> str:
    """`<service>: cannot migrate: <the first line of why>`."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{service}: cannot migrate: {reason.removeprefix(f'{service}: ')}"


def _migrate(args: argparse.Namespace) -> int:
    """Each service in turn; any number of runs may start at once (they take turns on a lock)."""
    from shared.migrations import upgrade

    urls = _database_urls("migrate", args.services or list(SERVICE_PORTS))
    if urls is None:
        return 2
    for service, url in urls.items():
        try:
            upgrade(service, url)
        except Exception as exc:
            print(f"tci migrate: {_cannot_migrate(service, exc)}", file=sys.stderr)
            return 1
        print(f"{service}: migrated to head", flush=True)
    return 0


def _up(args: argparse.Namespace) -> int:
    """Migrate and start the three services and the console (on the base port), wait until each
    answers its probe; Ctrl-C (or SIGTERM) stops them. Each runs in its own session, so that a
    Ctrl-C reaches only this process, which asks each once to stop (SIGTERM): each finishes its
    shutdown instead of being interrupted twice. Whatever fails on the way (a migration, a server
    that exits or does not become ready) stops the servers already started, and `tci up` says
    what failed in one line (exit code 1)."""
    from shared.migrations import upgrade

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    urls = _database_urls("up", list(SERVICE_PORTS))
    if urls is None:
        return 2
    ports = {s: args.port_base + p - DOCUMENTED_BASE for s, p in SERVICE_PORTS.items()}
    console_port = args.port_base
    peer_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    peers = {f"TCI_{s.upper()}_URL": f"http://{peer_host}:{p}" for s, p in ports.items()}
    # Whatever would make a server fail at its start is answered here, before any starts.
    refusal = _settings_refusal(urls, peers, console_port) or _unservable(
        args.host, [*ports.values(), console_port]
    )
    if refusal is not None:
        print(f"tci up: {refusal}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    os.makedirs("var", exist_ok=True)
    children: dict[str, subprocess.Popen[bytes]] = {}
    probes: dict[str, str] = {}
    failure: str | None = None
    for service, port in ports.items():
        try:
            upgrade(service, urls[service])
        except Exception as exc:
            failure = _cannot_migrate(service, exc)
            break
        if stopping:
            break
        env = {**os.environ, **peers, "DATABASE_URL": urls[service]}
        command = [
            sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.main:create_app",
            "--host", args.host, "--port", str(port), "--no-access-log", "--no-server-header",
        ]  # fmt: skip
        children[service] = subprocess.Popen(command, env=env, start_new_session=True)
        probes[service] = f"http://{peer_host}:{port}/readyz"
        database = masked_url(urls[service])
        print(f"{service}: http://{args.host}:{port}  (database {database})", flush=True)
    if failure is None and not stopping:  # the staff console, calling the services over HTTP
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "console.main:create_app",
            "--host", args.host, "--port", str(console_port), "--no-access-log",
            "--no-server-header",
        ]  # fmt: skip
        env = {**os.environ, **peers, "TCI_CONSOLE_PORT": str(console_port)}
        children["console"] = subprocess.Popen(command, env=env, start_new_session=True)
        probes["console"] = f"http://{peer_host}:{console_port}/healthz"
        demo = ("make demo" if args.port_base == DOCUMENTED_BASE
                else f"python -m console.demo --port-base {args.port_base}")  # fmt: skip
        print(f"console: http://{args.host}:{console_port}  ({demo} loads a book)", flush=True)
        failure = _wait_ready(children, probes, lambda: stopping)
    while failure is None and not stopping:
        failure = next((f"{name} exited (exit code {child.returncode})"
                        for name, child in children.items() if child.poll() is not None), None)  # fmt: skip
        time.sleep(0.2)
    _stop_children(list(children.values()))
    if failure is not None:
        stopped = "; stopped the servers it had started" if children else ""
        print(f"tci up: {failure}{stopped}", file=sys.stderr, flush=True)
        return 1
    failed = [c.returncode for c in children.values() if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


def _settings_refusal(
    urls: Mapping[str, str], peers: Mapping[str, str], console_port: int
) -> str | None:
    """Why a server `tci up` would start refuses its settings (None: none does): each service's
    settings and the console's, read from the environment each server will have."""
    from pydantic import ValidationError

    servers: dict[str, tuple[str, dict[str, Any]]] = {
        service: (f"services.{service}.config:{service.capitalize()}Settings",
                  {**peers, "DATABASE_URL": url})
        for service, url in urls.items()
    }  # fmt: skip
    servers["console"] = (
        "console.settings:ConsoleSettings",
        {**peers, "TCI_CONSOLE_PORT": str(console_port)},
    )
    for name, (where, environment) in servers.items():
        module, _, attribute = where.partition(":")
        settings_class: type[Settings] = getattr(importlib.import_module(module), attribute)
        try:
            settings_class(**environment)
        except ValidationError as exc:
            return f"{name}: the settings are not valid: {settings_refusal(exc)}"
    return None


def _unservable(host: str, ports: Sequence[int]) -> str | None:
    """Why a server could not listen on `host` at one of `ports` (None: each could): the host
    is not an address of this machine, or a port is in use. Bound as uvicorn binds (IPv6 for
    an address with a colon, SO_REUSEADDR), and let go at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ports:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except (socket.gaierror, UnicodeError):
                return f"--host {host}: not an address or a name this machine resolves"
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return (f"port {port} is in use (on {host}); stop what listens there or "
                            "choose another --port-base")  # fmt: skip
                if exc.errno == errno.EADDRNOTAVAIL:
                    return f"--host {host}: not an address of this machine"
                return f"cannot listen on {host} port {port}: {exc.strerror}"
    return None


def _wait_ready(
    children: dict[str, subprocess.Popen[bytes]], probes: dict[str, str],
    stopping: Callable[[], bool],
) -> str | None:  # fmt: skip
    """Wait until each server answers its probe with a 200: None, or what went wrong (a server
    exited, or is not ready after UP_READY_SECONDS). A stop asked meanwhile ends the wait."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + UP_READY_SECONDS
    waiting = dict(probes)
    while waiting and not stopping():
        for name, probe in list(waiting.items()):
            if children[name].poll() is not None:
                return f"{name} exited before it was ready (exit code {children[name].returncode})"
            try:
                with urllib.request.urlopen(probe, timeout=1) as answer:
                    if answer.status == 200:
                        del waiting[name]
            except (OSError, urllib.error.URLError):
                pass
        if waiting and time.monotonic() > deadline:
            return (f"{', '.join(waiting)} not ready after {UP_READY_SECONDS:.0f} seconds "
                    f"({', '.join(waiting.values())})")  # fmt: skip
        time.sleep(0.2)
    return None


def _stop_children(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """One SIGTERM each (uvicorn's graceful stop), then a kill for whoever is still running."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + UP_STOP_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _openapi(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shared.openapi_files import stale, write

    directory = Path(args.directory)
    if args.check:
        outdated = stale(directory)
        for service in outdated:
            print(
                f"{directory}/{service}.json differs from what {service} serves: run `tci openapi`"
            )
        return 1 if outdated else 0
    for path in write(directory):
        print(f"wrote {path}")
    return 0


def _settings(args: argparse.Namespace) -> int:
    from shared.settings_reference import stale, write

    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"{path} differs from what the settings classes say: run `tci settings`")
        return 1 if outdated else 0
    for path in write():
        print(f"wrote {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    tci = Parser(prog="tci", description=__doc__)
    sub = tci.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    token = sub.add_parser("token", help="mint a development token")
    token.add_argument("--role", required=True)
    token.add_argument("--party", default=None, help="party_id (policyholder or bank)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument("--sub", default=None, help="subject (default: generated)")
    token.set_defaults(run=_token)
    migrate = sub.add_parser(
        "migrate", help="migrate the services' databases to head (safe to run several at once)"
    )
    migrate.add_argument("services", nargs="*", type=_service_names,
                         help="underwriting, claims, collections (default: all three)")  # fmt: skip
    migrate.set_defaults(run=_migrate)
    up = sub.add_parser("up", help="migrate and run the three services in the foreground")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port-base", type=port_base, default=DOCUMENTED_BASE,
                    help=f"serve on BASE+1..BASE+3 (default {DOCUMENTED_BASE}: 8001-8003)")  # fmt: skip
    up.set_defaults(run=_up)
    spec = sub.add_parser("openapi", help="write each service's OpenAPI document to a file")
    spec.add_argument("--directory", default="openapi", help="where (default: openapi/)")
    spec.add_argument("--check", action="store_true", help="fail if a file is out of date")
    spec.set_defaults(run=_openapi)
    reference = sub.add_parser(
        "settings", help="write docs/settings.md and .env.example from the settings classes"
    )
    reference.add_argument("--check", action="store_true", help="fail if a file is out of date")
    reference.set_defaults(run=_settings)
    return tci


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"tci {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
