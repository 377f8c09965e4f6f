"""Logging with the request id in every line."""

from __future__ import annotations

import contextvars
import logging

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


def configure_logging(service: str, level: str = "INFO") -> None:
    """One handler on the root logger whose lines carry the service and the request id."""
    root = logging.getLogger()
    if any(getattr(h, "_tci", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)s {service} [%(request_id)s] %(name)s: %(message)s"
        )
    )
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
