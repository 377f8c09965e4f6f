"""`tci`: mint development tokens, migrate, run the three services in the foreground, and publish
their OpenAPI documents."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from shared.settings import SERVICE_PORTS, Settings, default_database_url


def _token(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from shared.auth import mint_token

    try:
        settings = Settings()
    except ValidationError as exc:
        reasons = "; ".join(
            str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors()
        )
        print(f"tci token: the settings are not valid: {reasons}", file=sys.stderr)
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


def _database_url(service: str) -> str:
    specific = os.environ.get(f"TCI_{service.upper()}_DATABASE_URL")
    return specific or os.environ.get("DATABASE_URL") or default_database_url(service)


def _migrate(args: argparse.Namespace) -> int:
    from shared.migrations import upgrade

    for service in args.services or list(SERVICE_PORTS):
        upgrade(service, _database_url(service))
        print(f"{service}: migrated to head")
    return 0


def _up(args: argparse.Namespace) -> int:
    """Migrate and start the three services; Ctrl-C (or SIGTERM) stops all three."""
    from shared.migrations import upgrade

    os.makedirs("var", exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    for service, port in SERVICE_PORTS.items():
        url = _database_url(service)
        upgrade(service, url)
        env = {**os.environ, "DATABASE_URL": url}
        command = [
            sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.main:create_app",
            "--host", args.host, "--port", str(port), "--no-access-log", "--no-server-header",
        ]  # fmt: skip
        children.append(subprocess.Popen(command, env=env))
        print(f"{service}: http://{args.host}:{port}  (database {url})", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    failed = [c.returncode for c in children if c.returncode not in (0, -2, -15, None)]
    return 1 if failed and not stopping else 0


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tci", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="mint a development token")
    token.add_argument("--role", required=True)
    token.add_argument("--party", default=None, help="party_id (policyholder or bank)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument("--sub", default=None, help="subject (default: generated)")
    token.set_defaults(run=_token)
    migrate = sub.add_parser("migrate", help="migrate the services' databases to head")
    migrate.add_argument("services", nargs="*", help="underwriting, claims, collections")
    migrate.set_defaults(run=_migrate)
    up = sub.add_parser("up", help="migrate and run the three services in the foreground")
    up.add_argument("--host", default="127.0.0.1")
    up.set_defaults(run=_up)
    spec = sub.add_parser("openapi", help="write each service's OpenAPI document to a file")
    spec.add_argument("--directory", default="openapi", help="where (default: openapi/)")
    spec.add_argument("--check", action="store_true", help="fail if a file is out of date")
    spec.set_defaults(run=_openapi)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
