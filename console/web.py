"""Rendering a page: the Jinja2 environment, the request's translator, and what every template
is given (the caller, the CSRF token, the language switch)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse

from console.i18n import LANGUAGE_NAMES, LOCALES, Translator, negotiate
from console.session import LANGUAGE_COOKIE, csrf_token, settings_of, signed_in
from console.upstream import form_key

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# What the services' ids look like (`new_id`: a prefix, `_`, base32 or hex); a page's `error` code
# (a problem type's slug or the console's own).
PLAIN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SLUG = re.compile(r"^[a-z0-9-]{1,64}$")
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


def _known(t: Translator, group: str, code: str | None, *, any_slug: bool = False) -> str | None:
    """A page address's notice or error code when it is one the console says (an error: any
    problem slug, the catalogue's words or the code itself), never free text put into a link."""
    if not code or not SLUG.match(code):
        return None
    return code if any_slug or t.has(f"{group}.{code}") else None


async def plain_ids(request: Request) -> None:
    """Every id in a page's address looks like one the services give, else the page is not
    found (and no service is asked for a path the id would change: `?`, `#`, `..`, NUL)."""
    if not all(PLAIN_ID.match(str(value)) for value in request.path_params.values()):
        raise HTTPException(404)


PlainIds = Depends(plain_ids)


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    session = signed_in(request)
    page = TEMPLATES.get_template(template).render(
        t=t,
        caller=session[0] if session else None,
        csrf=csrf_token(request),
        form_key=form_key,  # each form's own key, fresh every time it is rendered
        path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        locales=[(code, LANGUAGE_NAMES[code]) for code in LOCALES],
        home=HOME_OF_ROLE.get(session[0].role, "/") if session else "/sign-in",
        notice=_known(t, "notice", request.query_params.get("notice")),
        error=_known(t, "problem", request.query_params.get("error"), any_slug=True),
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["Content-Language"] = t.locale
    if status >= 400 and request.method != "GET":
        # A refused form's page shows where the form was; the address stays the page's.
        response.headers["HX-Push-Url"] = "false"
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
