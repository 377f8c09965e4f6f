"""JSON logs (`TCI_LOG_FORMAT=json`): one object a line with the service, the request id, the
trace and span ids of the current span, and never a bound SQL parameter."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider

from shared.db import build_engine
from shared.logging import JsonFormatter, RequestIdFilter, reset_request_id, set_request_id
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _line(record: logging.LogRecord, service: str = "claims") -> dict[str, object]:
    RequestIdFilter().filter(record)
    text = JsonFormatter(service).format(record)
    assert "\n" not in text
    parsed: dict[str, object] = json.loads(text)
    return parsed


def _record(message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("tci.test", level, __file__, 1, message, args, None)


def test_a_line_is_one_object_with_time_level_service_request_id_and_message() -> None:
    token = set_request_id("req-42")
    try:
        line = _line(_record("claim %s filed", "clm_1", level=logging.WARNING))
    finally:
        reset_request_id(token)
    assert line["level"] == "WARNING" and line["service"] == "claims"
    assert line["request_id"] == "req-42" and line["message"] == "claim clm_1 filed"
    assert str(line["time"]).endswith("+00:00")
    assert "trace_id" not in line and "span_id" not in line  # no span: tracing is off


def test_a_line_written_inside_a_span_names_its_trace_and_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("POST /v1/claims") as span:
        line = _line(_record("filed"))
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


async def test_a_failed_statement_is_logged_without_its_bound_values(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path}/logs.db")
    secret = "IBAN-DE89370400440532013000"
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text("CREATE TABLE t (iban TEXT NOT NULL UNIQUE)"))
            insert = sa.text("INSERT INTO t (iban) VALUES (:iban)")
            await connection.execute(insert, {"iban": secret})
            with pytest.raises(sa.exc.IntegrityError) as failure:
                await connection.execute(insert, {"iban": secret})
    finally:
        await engine.dispose()
    record = _record("unhandled error on POST /v1/claims", level=logging.ERROR)
    record.exc_info = (failure.type, failure.value, failure.tb)
    line = _line(record)
    assert "INSERT INTO t" in str(line["exception"])
    assert secret not in json.dumps(line)


def test_the_setting_chooses_the_format_and_text_is_the_default() -> None:
    assert Settings().log_format == "text"
    assert Settings(TCI_LOG_FORMAT="json").log_format == "json"  # type: ignore[call-arg]


def test_a_service_started_with_json_logs_writes_json_lines() -> None:
    """A fresh interpreter (the root logger is configured once per process) builds the
    underwriting app and logs through it."""
    script = (
        "import logging\n"
        "from services.underwriting.main import create_app\n"
        "create_app()\n"
        "logging.getLogger('tci.app').warning('peer %s slow', 'claims')\n"
    )
    env = {"TCI_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(x["service"], x["level"], x["message"]) for x in lines] == [
        ("underwriting", "WARNING", "peer claims slow")
    ]
