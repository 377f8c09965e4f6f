"""The settings reference (`docs/settings.md`) and `.env.example`, generated from the settings
classes, the image's entry point and the compose file by `tci settings`; a test keeps both files
equal to what the code says."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import import_module
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from shared.settings import SERVICE_PORTS, Settings

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path("docs/settings.md")
ENV_EXAMPLE = Path(".env.example")
ENTRYPOINT = Path("deploy/docker/entrypoint.py")
COMPOSE = Path("docker-compose.yml")
UNDOCUMENTED = "(undocumented)"

# What the image's entry point reads (deploy/docker/entrypoint.py), beside the services' own
# settings; their defaults are read from the entry point itself.
ENTRYPOINT_VARIABLES = {
    "TCI_SERVICE": "the service the container serves (`underwriting`, `claims`, `collections`, "
    "`console`), unless the command names it",
    "TCI_WORKERS": "uvicorn worker processes per container",
    "TCI_FORWARDED_ALLOW_IPS": "addresses or networks (or `*`) of the proxies whose "
    "`X-Forwarded-For`/`-Proto` headers are trusted",
    "TCI_KEEP_ALIVE_SECONDS": "how long an idle keep-alive connection stays open; longer than "
    "the idle timeout of the proxy in front",
    "TCI_GRACEFUL_SHUTDOWN_SECONDS": "how long requests in flight may finish after SIGTERM; "
    "shorter than Kubernetes' terminationGracePeriodSeconds",
    "TCI_HOST": "the address uvicorn listens on",
    "PORT": "the port the service listens on (and the health probe asks)",
    "TCI_CONSOLE_PORT": "the console's port when PORT is not set (the console's own setting)",
}
SECRET_FILE_NOTE = "a file holding {name} (a Docker or Kubernetes secret); read before start"
# What `tci migrate` and `tci up` read besides DATABASE_URL (shared/cli.py).
CLI_VARIABLES = {
    f"TCI_{service.upper()}_DATABASE_URL": f"the {service} database for `tci migrate` and "
    "`tci up`, instead of DATABASE_URL"
    for service in SERVICE_PORTS
}
# Variables docker-compose.yml substitutes from the environment or a `.env` file beside it.
COMPOSE_VARIABLES = {
    "POSTGRES_PASSWORD": "the PostgreSQL password (required; a compose secret, written nowhere "
    "else)",
    "TCI_JWT_SECRET": "the token signing secret, at least 32 bytes (required; a compose secret)",
    "TCI_IMAGE": "the image the compose file runs (and builds)",
    "TCI_WORKERS": "uvicorn worker processes per container",
    "TCI_CONSOLE_OIDC_ISSUER": "passed to the console: its identity provider (the console's "
    "setting; empty: no OpenID Connect sign-in)",
    "TCI_CONSOLE_OIDC_CLIENT_ID": "passed to the console: its client id at the provider",
    "TCI_CONSOLE_OIDC_CLIENT_SECRET": "the console's client secret at the provider (a compose "
    "secret; export it, empty when unused)",
    "TCI_CONSOLE_OIDC_REDIRECT_URL": "passed to the console: the callback URL registered at the "
    "provider (empty: from the request)",
}


@dataclass
class Entry:
    """One environment variable: what it sets, its default, who reads it, what it means."""

    variable: str
    name: str
    default: str
    description: str
    services: list[str] = field(default_factory=list)


def settings_classes() -> dict[str, type[Settings]]:
    classes: dict[str, type[Settings]] = {}
    for service in SERVICE_PORTS:
        module = import_module(f"services.{service}.config")
        classes[service] = getattr(module, f"{service.capitalize()}Settings")
    from console.settings import ConsoleSettings

    classes["console"] = ConsoleSettings
    return classes


def comments_above_fields(cls: type) -> dict[str, str]:
    """The `#` comment lines right above each field of a class body, joined into one text."""
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"\s{4}(\w+)\s*:", line)
        if match and pending:
            found[match.group(1)] = " ".join(pending)
        if stripped:
            pending = []
    return found


def shown(value: Any) -> str:
    """A default as it would be written in the environment."""
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset | set | list | tuple):
        return json.dumps(sorted(value) if isinstance(value, frozenset | set) else list(value))
    if isinstance(value, Decimal | int | float | str | dt.date):
        return str(value)
    return repr(value)


def description_of(cls: type[Settings], name: str, info: FieldInfo) -> str:
    if info.description:
        return info.description
    for owner in cls.__mro__:
        if name in getattr(owner, "__annotations__", {}):
            return comments_above_fields(owner).get(name, UNDOCUMENTED)
    return UNDOCUMENTED


def settings_entries() -> list[Entry]:
    """Every field of every settings class, by environment variable, with the services that
    read it (the shared ones: all three)."""
    entries: dict[str, Entry] = {}
    for service, cls in settings_classes().items():
        for name, info in cls.model_fields.items():
            variable = info.alias or name.upper()
            entry = entries.get(variable)
            if entry is None:
                entry = Entry(variable, name, shown(info.get_default(call_default_factory=True)),
                              description_of(cls, name, info))  # fmt: skip
                entries[variable] = entry
            entry.services.append(service)
    return list(entries.values())


def entrypoint_entries() -> list[Entry]:
    """The entry point's own variables, with its defaults, and the `_FILE` twins of secrets."""
    module = _entrypoint_module()
    defaults = {
        "TCI_SERVICE": "",
        "TCI_WORKERS": str(module.DEFAULT_WORKERS),
        "TCI_FORWARDED_ALLOW_IPS": module.DEFAULT_FORWARDED_ALLOW_IPS,
        "TCI_KEEP_ALIVE_SECONDS": str(module.DEFAULT_KEEP_ALIVE_SECONDS),
        "TCI_GRACEFUL_SHUTDOWN_SECONDS": str(module.DEFAULT_GRACEFUL_SHUTDOWN_SECONDS),
        "TCI_HOST": _literal_default(module, "TCI_HOST"),
        "PORT": ", ".join(f"{s}: {p}" for s, p in module.SERVICE_PORTS.items()),
        "TCI_CONSOLE_PORT": str(module.CONSOLE_PORT),
    }
    entries = [
        Entry(v, "", defaults.get(v, ""), d, ["image"]) for v, d in ENTRYPOINT_VARIABLES.items()
    ]
    entries += [Entry(f"{name}_FILE", "", "", SECRET_FILE_NOTE.format(name=name), ["image"])
                for name in module.SECRET_VARIABLES]  # fmt: skip
    return entries


def entrypoint_variables_read() -> set[str]:
    """Every variable the entry point's source reads (a new one must be described above)."""
    source = (ROOT / ENTRYPOINT).read_text()
    return set(re.findall(r"""env(?:\.get\(|, )["']([A-Z_]+)["']""", source))


def compose_variables_read() -> set[str]:
    source = (ROOT / COMPOSE).read_text()
    return set(re.findall(r"\$\{([A-Z_]+)", source)) | set(
        re.findall(r"^\s+environment: ([A-Z_]+)\s*$", source, re.MULTILINE)
    )


def _entrypoint_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tci_entrypoint", ROOT / ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _literal_default(module: Any, variable: str) -> str:
    match = re.search(rf"""env\.get\(["']{variable}["'], ["']([^"']*)["']\)""",
                      inspect.getsource(module))  # fmt: skip
    return match.group(1) if match else ""


HEADER = (
    "Generated by `tci settings` (or `make settings`) from the settings classes "
    "(`shared/settings.py`, `services/*/config.py`), the image's entry point "
    "(`deploy/docker/entrypoint.py`), the command line (`shared/cli.py`) and `docker-compose.yml`; "
    "`tests/test_settings_reference.py` fails when it is out of date. Do not edit by hand."
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(entries: list[Entry], *, with_setting: bool = True) -> list[str]:
    head = "| Variable | Setting | Default | Read by | Description |"
    rule = "| --- | --- | --- | --- | --- |"
    if not with_setting:
        head, rule = "| Variable | Default | Description |", "| --- | --- | --- |"
    rows = [head, rule]
    for e in sorted(entries, key=lambda e: e.variable):
        default = f"`{_cell(e.default)}`" if e.default else "(unset)"
        if with_setting:
            rows.append(f"| `{e.variable}` | `{e.name}` | {default} | {', '.join(e.services)} | "
                        f"{_cell(e.description)} |")  # fmt: skip
        else:
            rows.append(f"| `{e.variable}` | {default} | {_cell(e.description)} |")
    return rows


def reference_markdown() -> str:
    settings = settings_entries()
    everywhere = [e for e in settings if set(SERVICE_PORTS) <= set(e.services)]
    lines = ["# Settings reference", "", HEADER, "",
             "Each service reads its settings from the environment when it starts (pydantic-settings;"
             " nothing is read from a `.env` file, which only docker compose reads).", "",
             "## Every service", "", *_table(everywhere), ""]  # fmt: skip
    for service in (*SERVICE_PORTS, "console"):
        own = [e for e in settings if service in e.services and e not in everywhere]
        if own:
            lines += [f"## {service.capitalize()}, besides those of every service", "",
                      *_table(own), ""]  # fmt: skip
    lines += ["## The image's entry point", "",
              "Read by `deploy/docker/entrypoint.py` before it starts uvicorn (or `tci migrate`).",
              "", *_table(entrypoint_entries(), with_setting=False), "",
              "## The command line", "", "Read by `tci migrate` and `tci up`.", "",
              *_table([Entry(v, "", "", d) for v, d in CLI_VARIABLES.items()], with_setting=False),
              "", "## docker compose", "",
              "Substituted by `docker compose` from the environment or `.env` beside the file.", "",
              *_table(_compose_entries(), with_setting=False), ""]  # fmt: skip
    return "\n".join(lines)


def _compose_entries() -> list[Entry]:
    source = (ROOT / COMPOSE).read_text()
    entries = []
    for variable, description in COMPOSE_VARIABLES.items():
        match = re.search(rf"\$\{{{variable}:-([^}}]*)\}}", source)
        entries.append(Entry(variable, "", match.group(1) if match else "", description))
    return entries


def _commented(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="# ")


def env_example() -> str:
    """Every variable, commented out at its default: uncomment a line to change it."""
    lines = ["# Every setting, at its default (docs/settings.md describes each). " +
             "Generated by `tci settings`.", "# docker compose reads `.env` beside its file; " +
             "the services read only their environment.", ""]  # fmt: skip
    sections = [
        ("docker compose", _compose_entries()),
        ("every service", [e for e in settings_entries() if set(SERVICE_PORTS) <= set(e.services)]),
        *((f"{s} only", [e for e in settings_entries() if e.services == [s]])
          for s in (*SERVICE_PORTS, "console")),
        ("several services", [e for e in settings_entries() if len(e.services) > 1]),
        ("the image's entry point", entrypoint_entries()),
        ("tci migrate / tci up", [Entry(v, "", "", d) for v, d in CLI_VARIABLES.items()]),
    ]  # fmt: skip
    listed: set[str] = set()
    for title, entries in sections:
        entries = [e for e in entries if e.variable not in listed]
        listed.update(e.variable for e in entries)
        if not entries:
            continue
        lines += [f"# ---- {title}", ""]
        for e in sorted(entries, key=lambda e: e.variable):
            default = e.default if not e.variable.startswith("PORT") else ""
            lines += [*_commented(e.description), f"# {e.variable}={default}", ""]
    return "\n".join(lines)


def outputs() -> dict[Path, str]:
    return {REFERENCE: reference_markdown(), ENV_EXAMPLE: env_example()}


def stale(root: Path = ROOT) -> list[Path]:
    """The generated files that differ from what the code says."""
    return [path for path, text in outputs().items()
            if not (root / path).is_file() or (root / path).read_text() != text]  # fmt: skip


def write(root: Path = ROOT) -> list[Path]:
    written = []
    for path, text in outputs().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
        written.append(path)
    return written
