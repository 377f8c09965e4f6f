"""Logging with the request id in every line: readable text, or one JSON object a line with the
trace and span ids when tracing is on."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, service, logger, request id, the trace and span
    ids of the current span when tracing is on, the message, and the traceback if any."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "request_id": _request_id.get(),
        }
        line.update(_trace_ids())
        line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _trace_ids() -> dict[str, str]:
    """The current span's ids, only if OpenTelemetry is loaded (tracing on) and a span records."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def configure_logging(service: str, level: str = "INFO", log_format: str = "text") -> None:
    """One handler on the root logger whose lines carry the service and the request id, as
    text or as JSON (`TCI_LOG_FORMAT`)."""
    root = logging.getLogger()
    if any(getattr(h, "_tci", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    formatter: logging.Formatter = (
        JsonFormatter(service)
        if log_format == "json"
        else logging.Formatter(
            f"%(asctime)s %(levelname)s {service} [%(request_id)s] %(name)s: %(message)s"
        )
    )
    handler.setFormatter(formatter)
    handler._tci = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Access lines only when uvicorn was asked for them: `--no-access-log` leaves its access
    # logger without handlers (uvicorn then checks `hasHandlers()`, which would find ours
    # through propagation and print every request anyway).
    access = logging.getLogger("uvicorn.access")
    if access.handlers:
        access.handlers.clear()
        access.propagate = True
