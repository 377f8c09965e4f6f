"""Rendering a page: the Jinja2 environment, the request's translator, and what every template
is given (the caller, the CSRF token, the language switch)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse

from console.i18n import LANGUAGE_NAMES, LOCALES, Translator, negotiate
from console.session import LANGUAGE_COOKIE, csrf_token, settings_of, signed_in

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
HOME_OF_ROLE = {"underwriter": "/underwriting/queue", "claims_handler": "/claims",
                "collector": "/cases"}  # fmt: skip


def translator(request: Request) -> Translator:
    found: Translator | None = getattr(request.state, "translator", None)
    if found is None:
        found = Translator(negotiate(request.headers.get("accept-language"),
                                     request.cookies.get(LANGUAGE_COOKIE)))  # fmt: skip
        request.state.translator = found
    return found


def today(request: Request) -> dt.date:
    return settings_of(request).today()


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    session = signed_in(request)
    page = TEMPLATES.get_template(template).render(
        t=t,
        caller=session[0] if session else None,
        csrf=csrf_token(request),
        path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        locales=[(code, LANGUAGE_NAMES[code]) for code in LOCALES],
        home=HOME_OF_ROLE.get(session[0].role, "/") if session else "/sign-in",
        notice=request.query_params.get("notice"),
        error=request.query_params.get("error"),
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["Content-Language"] = t.locale
    return response


def redirect(path: str, **query: str | None) -> RedirectResponse:
    """After a form: see the page again (303), with a notice or an error code to explain."""
    given = {key: value for key, value in query.items() if value}
    return RedirectResponse(f"{path}?{urlencode(given)}" if given else path, status_code=303)


def local_path(candidate: str | None, default: str = "/") -> str:
    """A path on this console to go back to; anything else (another site, `//host`) is refused."""
    if candidate and candidate.startswith("/") and not candidate.startswith(("//", "/\\")):
        return candidate
    return default
