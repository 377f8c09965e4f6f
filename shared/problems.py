"""Errors as RFC 9457 problem+json: one exception type, mapped to HTTP in one place."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("tci.problems")


class Problem(Exception):
    """A failure the caller can act on: status, a `type` naming it, a sentence, and extra fields."""

    def __init__(
        self, status: int, type_: str, detail: str, *, title: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            content["instance"] = instance
        content.update(self.extra)
        return content


def not_found(what: str, ident: str) -> Problem:
    return Problem(404, "not-found", f"{what} {ident!r} does not exist")


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail)


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", detail)


def conflict(type_: str, detail: str, **extra: Any) -> Problem:
    return Problem(409, type_, detail, **extra)


def unprocessable(type_: str, detail: str, **extra: Any) -> Problem:
    return Problem(422, type_, detail, **extra)


def invalid(loc: list[str | int], msg: str) -> Problem:
    """A 422 validation problem for one field, shaped like FastAPI's own validation errors."""
    return Problem(422, "validation", msg, errors=[{"loc": loc, "msg": msg, "type": "value_error"}])


def problem_response(
    problem: Problem, request: Request | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


_REPR = re.compile(r"""\bDecimal\((['"])([^()'"]*)\1\)""")


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def plain_message(msg: Any) -> str:
    """A validation message as a caller reads it: no Python repr (`Decimal('10.001')` is shown
    as 10.001), no "Value error, " prefix."""
    text = str(msg).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return _REPR.sub(lambda m: m.group(2), text)


def validation_problem(errors: list[dict[str, Any]] | Any) -> Problem:
    """A 422 problem from validation errors: each item only `loc`, `msg` (plain) and `type`."""
    items = [
        {
            "loc": [_json_safe(p) for p in e.get("loc", ())],
            "msg": plain_message(e.get("msg", "")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]
    first = items[0]["msg"] if items else "invalid input"
    return Problem(422, "validation", f"invalid input: {first}", errors=items)


_STATUS_TYPES = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app answers is problem+json; unexpected ones are handled by the middleware."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc.errors()), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # A body that cannot be read (not UTF-8, not JSON, broken multipart) is invalid input.
            detail = exc.detail if isinstance(exc.detail, str) else "the body cannot be read"
            return problem_response(
                Problem(422, "validation", detail, errors=[{"loc": ["body"], "msg": detail}]),
                request,
            )
        type_ = _STATUS_TYPES.get(exc.status_code, f"http-{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        # Keep what the exception says in its headers (a 405's `Allow`, for one).
        return problem_response(Problem(exc.status_code, type_, detail), request, exc.headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the problem+json answers a route can give."""
    schema = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
        "required": ["type", "title", "status", "detail"],
    }
    return {
        s: {"description": HTTPStatus(s).phrase, "content": {PROBLEM_JSON: {"schema": schema}}}
        for s in statuses
    }


def created_responses(description: str = "Created") -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry for a 201 that names the new resource in `Location`."""
    location = {"description": "the new resource's path", "schema": {"type": "string"}}
    return {201: {"description": description, "headers": {"Location": location}}}
