"""Rendering a page: the Jinja2 environment, the request's translator, and what every template
is given (the caller, the CSRF token, the language switch, and what a service said when it
refused the form just sent)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse

from console.i18n import LANGUAGE_NAMES, LOCALES, Translator, negotiate
from console.session import (
    LANGUAGE_COOKIE,
    csrf_token,
    set_cookie,
    settings_of,
    signature,
    signed_in,
)
from console.upstream import UpstreamRefused, form_key

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
# What a service said when it refused a form, carried to the form's page in a signed cookie for
# long enough to follow the redirect, and shown there once; at most what a browser keeps of a
# cookie (4 KB) with room for the rest of the header.
REFUSAL_COOKIE = "tci_console_refusal"
REFUSAL_SECONDS = 60
REFUSAL_BYTES = 3000
# The services' names of fields the forms label with another word of the catalogue's `field.`.
FIELD_LABELS = {"details": "note", "new_amount": "amount", "promised_amount": "amount"}
# The parts of a field error's `loc` that say where in the request it is, not which field.
REQUEST_PARTS = ("body", "query", "path")


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


def sealed_refusal(secret: str, page: str, slug: str, refusal: UpstreamRefused) -> str | None:
    """The refusal's detail and field errors for `page`, signed; the last field errors left out
    (and counted), then the detail shortened, as far as the cookie needs. None when the service
    said nothing more than its problem type."""
    errors = [{"loc": list(e.loc), "msg": e.msg} for e in refusal.errors]
    detail = full = refusal.detail.strip()
    if not detail and not errors:
        return None
    left_off, kept = 0, len(full)
    while True:
        said = {"path": page, "slug": slug, "detail": detail, "errors": errors, "more": left_off}
        sealed = base64.urlsafe_b64encode(json.dumps(said).encode()).decode()
        if len(sealed) <= REFUSAL_BYTES:
            return f"{sealed}.{signature(secret, 'refusal', sealed)}"
        if errors:
            errors.pop()
            left_off += 1
        elif kept > 1:
            kept //= 2
            detail = full[:kept] + "…"
        else:
            return None


def form_refused(request: Request, page: str, refusal: UpstreamRefused, *,
                 error: str | None = None, **query: str | None) -> RedirectResponse:  # fmt: skip
    """After a form a service refused: its page again with the refusal's code (`error`: the
    console's own for it, when it has one), and what the service said of it (its detail and the
    fields it names) in a short-lived signed cookie, for that page to show once. Never in the
    address: free text put into a link could be planted by anyone."""
    slug = error or refusal.slug
    response = redirect(page, error=slug, **query)
    settings = settings_of(request)
    sealed = sealed_refusal(settings.jwt_secret, page, slug, refusal)
    if sealed is not None:
        set_cookie(response, settings, REFUSAL_COOKIE, sealed, REFUSAL_SECONDS)
    return response


def field_label(t: Translator, loc: list[Any]) -> str:
    """Where a field error is, in the reader's words: each name the label the forms give it (or
    give it without its `_id` or plural `s`; the name itself when the catalogue has none), each
    index the item's number, from 1."""
    parts = loc[1:] if loc and loc[0] in REQUEST_PARTS else loc
    words: list[str] = []
    for part in parts:
        if isinstance(part, int):
            words.append(t("problem.field_item", n=part + 1))
            continue
        name = FIELD_LABELS.get(str(part), str(part))
        keys = (f"field.{name}", f"field.{name.removesuffix('_id')}",
                f"field.{name.removesuffix('s')}")  # fmt: skip
        words.append(next((t(key) for key in keys if t.has(key)), str(part)))
    return " › ".join(words)


def shown_refusal(request: Request, t: Translator, error: str | None) -> dict[str, Any] | None:
    """What the service said when it refused the form this page was sent back to: its detail
    (left out when it only repeats a field error) and its field errors, each labelled; None
    unless the signed cookie names this page and this error."""
    cookie = request.cookies.get(REFUSAL_COOKIE)
    if not cookie or not error or "." not in cookie:
        return None
    sealed, _, signed = cookie.partition(".")
    expected = signature(settings_of(request).jwt_secret, "refusal", sealed)
    if not hmac.compare_digest(signed, expected):
        return None
    try:
        said = json.loads(base64.urlsafe_b64decode(sealed.encode()))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(said, dict) or said.get("path") != request.url.path \
            or said.get("slug") != error:  # fmt: skip
        return None
    errors = [(field_label(t, e["loc"]), e["msg"]) for e in said.get("errors", [])]
    detail = str(said.get("detail", ""))
    if any(detail in (msg, f"invalid input: {msg}") for _, msg in errors):
        detail = ""
    return {"detail": detail, "errors": errors, "more": int(said.get("more", 0))}


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    session = signed_in(request)
    error = _known(t, "problem", request.query_params.get("error"), any_slug=True)
    page = TEMPLATES.get_template(template).render(
        t=t,
        caller=session[0] if session else None,
        csrf=csrf_token(request),
        form_key=form_key,  # each form's own key, fresh every time it is rendered
        path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        locales=[(code, LANGUAGE_NAMES[code]) for code in LOCALES],
        home=HOME_OF_ROLE.get(session[0].role, "/") if session else "/sign-in",
        notice=_known(t, "notice", request.query_params.get("notice")),
        error=error,
        refusal=shown_refusal(request, t, error),
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["Content-Language"] = t.locale
    if REFUSAL_COOKIE in request.cookies:  # shown once, on the page it was for
        response.delete_cookie(REFUSAL_COOKIE, path="/")
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
