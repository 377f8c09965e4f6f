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
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
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
from console.upstream import Upstream, UpstreamRefused, form_key
from shared import signing

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
# What a form sent, carried back to its page with the refusal the same way (signed, short-lived)
# so that the form is shown again as it was filled in; compressed, and its longest values cut
# short as far as the cookie needs. Never the CSRF token; the form's idempotency key only when
# the service's answer is not known (it timed out, was unavailable, is still running), so that
# the form sent again is a replay of the first, never done twice.
FORM_COOKIE = "tci_console_form"
FORM_BYTES = 3000
# What a form's answer said beyond its notice (a limit change's `cancelled` amounts), carried to
# the page the form leads to the same way (signed, short-lived, the last items left out and
# counted as far as the cookie needs), shown there once: never in the address, where anyone
# could plant a link saying what was not done.
OUTCOME_COOKIE = "tci_console_outcome"
NEVER_KEPT = ("csrf", "idempotency_key")
# A refusal after which whether the form was done is not known yet (a 5xx: the service or its
# peer did not answer in time), and the key still in use by the first sending.
OUTCOME_UNKNOWN = "outcome-unknown"
KEEPS_THE_KEY = ("idempotency-key-in-use", OUTCOME_UNKNOWN)
# The services' names of a form's fields where the form names them otherwise.
FORM_FIELD_OF = {"new_amount": "amount"}
# The services' names of fields the forms label with another word of the catalogue's `field.`.
FIELD_LABELS = {"details": "note", "new_amount": "amount", "promised_amount": "amount"}
# The parts of a field error's `loc` that say where in the request it is, not which field.
REQUEST_PARTS = ("body", "query", "path")


def translator(request: Request) -> Translator:
    found: Translator | None = getattr(request.state, "translator", None)
    if found is None:
        found = Translator(negotiate(request.headers.get("accept-language"),
                                     request.cookies.get(LANGUAGE_COOKIE)),
                           settings_of(request).business_tz)  # fmt: skip
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


def claims_named(members: Mapping[str, Any]) -> list[list[Any]]:
    """A refusal's `limit_used_by` (`assessment-outdated`: the other claims on the policy and
    buyer, each with what it covered of the buyer's credit limit) as [claim id, money] pairs, in
    the order the service named them; anything not shaped so is left out."""
    used = members.get("limit_used_by")
    if not isinstance(used, dict):
        return []
    return [[claim_id, {"amount": str(money["amount"]), "currency": str(money["currency"])}]
            for claim_id, money in used.items()
            if isinstance(claim_id, str) and PLAIN_ID.match(claim_id) and isinstance(money, dict)
            and {"amount", "currency"} <= money.keys()]  # fmt: skip


def sealed_refusal(secret: str, page: str, slug: str, refusal: UpstreamRefused) -> str | None:
    """The refusal's detail, field errors and the claims it names (`limit_used_by`) for `page`,
    signed; the last field errors left out (and counted), then the detail shortened, then the
    last claims left out (and counted), as far as the cookie needs. None when the service said
    nothing more than its problem type."""
    errors = [{"loc": list(e.loc), "msg": e.msg} for e in refusal.errors]
    used = claims_named(refusal.members)
    detail = full = refusal.detail.strip()
    if not detail and not errors and not used:
        return None
    left_off, kept, used_left_off = 0, len(full), 0
    while True:
        said = {"path": page, "slug": slug, "detail": detail, "errors": errors, "more": left_off,
                "limit_used_by": used, "more_claims": used_left_off}  # fmt: skip
        sealed = base64.urlsafe_b64encode(json.dumps(said).encode()).decode()
        if len(sealed) <= REFUSAL_BYTES:
            return f"{sealed}.{signature(secret, 'refusal', sealed)}"
        if errors:
            errors.pop()
            left_off += 1
        elif kept > 1:
            kept //= 2
            detail = full[:kept] + "…"
        elif used:
            used.pop()
            used_left_off += 1
        else:
            return None


def _sealed(secret: str, purpose: str, said: dict[str, Any]) -> str:
    packed = base64.urlsafe_b64encode(zlib.compress(json.dumps(said).encode())).decode()
    return signing.sign(secret, f"console {purpose}", packed)


def _unsealed(secret: str, purpose: str, cookie: str | None) -> dict[str, Any] | None:
    packed = signing.verified(secret, f"console {purpose}", cookie) if cookie else None
    if packed is None:
        return None
    try:
        said = json.loads(zlib.decompress(base64.urlsafe_b64decode(packed.encode())))
    except (binascii.Error, ValueError, zlib.error):
        return None
    return said if isinstance(said, dict) else None


def redirect_with_outcome(request: Request, page: str, name: str, items: list[Any],
                          **query: str | None) -> RedirectResponse:  # fmt: skip
    """After a form: `page` with its notice (`query`), and the answer's `items` under `name`
    for that page to show once (`answered` in its templates: `name` and `more`, how many
    items the cookie had no room for)."""
    response = redirect(page, **query)
    if not items:
        return response
    settings = settings_of(request)
    kept, more = list(items), 0
    while kept:
        sealed = _sealed(settings.jwt_secret, "outcome",
                         {"path": page, "outcome": {name: kept, "more": more}})  # fmt: skip
        if len(sealed) <= FORM_BYTES:
            set_cookie(response, settings, OUTCOME_COOKIE, sealed, REFUSAL_SECONDS)
            break
        kept.pop()
        more += 1
    return response


def shown_outcome(request: Request) -> dict[str, Any]:
    """What the form just sent led this page to show (`redirect_with_outcome`), when the signed
    cookie names this page; else nothing."""
    said = _unsealed(settings_of(request).jwt_secret, "outcome",
                     request.cookies.get(OUTCOME_COOKIE))  # fmt: skip
    if said is None or said.get("path") != request.url.path:
        return {}
    outcome = said.get("outcome")
    return outcome if isinstance(outcome, dict) else {}


def sealed_form(secret: str, page: str, action: str, values: dict[str, str],
                key: str | None) -> str | None:  # fmt: skip
    """What the form `action` sent (its text fields, never its CSRF token; its key when given),
    signed, for `page` to fill the form in again; its longest values shortened as far as the
    cookie needs (None when even that cannot fit)."""
    kept = {name: value for name, value in values.items() if name not in NEVER_KEPT}
    while True:
        sealed = _sealed(secret, "form", {"path": page, "action": action, "values": kept,
                                          "key": key})  # fmt: skip
        if len(sealed) <= FORM_BYTES:
            return sealed
        longest = max(kept, key=lambda name: len(kept[name]), default=None)
        if longest is None or not kept[longest]:
            return None
        kept[longest] = kept[longest][: len(kept[longest]) // 2]


async def sent_values(request: Request) -> tuple[dict[str, str], str | None]:
    """The text fields of the form this request posted, and its idempotency key."""
    form = await request.form()
    values = {name: value for name, value in form.multi_items() if isinstance(value, str)}
    return values, values.get("idempotency_key") or None


async def form_sent_back(request: Request, page: str, error: str, *,
                         refusal: UpstreamRefused | None = None, keep_key: bool = False,
                         **query: str | None) -> RedirectResponse:  # fmt: skip
    """The form's page again with `error`, the form filled in as it was sent (`keep_key`: with
    the key it was sent with), and what the service said of it (`refusal`: its detail and the
    fields it names): each in a short-lived signed cookie, for that page to show once. Never in
    the address: free text put into a link could be planted by anyone."""
    response = redirect(page, error=error, **query)
    settings = settings_of(request)
    values, key = await sent_values(request)
    sealed = sealed_form(settings.jwt_secret, page, request.url.path, values,
                         key if keep_key else None)  # fmt: skip
    if sealed is not None:
        set_cookie(response, settings, FORM_COOKIE, sealed, REFUSAL_SECONDS)
    said = sealed_refusal(settings.jwt_secret, page, error, refusal) if refusal else None
    if said is not None:
        set_cookie(response, settings, REFUSAL_COOKIE, said, REFUSAL_SECONDS)
    return response


async def form_refused(request: Request, page: str, refusal: UpstreamRefused, *,
                       error: str | None = None, **query: str | None) -> RedirectResponse:  # fmt: skip
    """After a form a service refused: its page again with the refusal's code (`error`: the
    console's own for it, when it has one), the form as it was sent, and what the service said.
    A service that did not answer (a 5xx, a timeout) may yet have done it: the page says so, and
    the form keeps its key, so that sending it again is answered with what was done, once."""
    slug = error or (OUTCOME_UNKNOWN if refusal.status >= 500 else refusal.slug)
    return await form_sent_back(request, page, slug, refusal=refusal,
                                keep_key=slug in KEEPS_THE_KEY, **query)  # fmt: skip


class SentForm:
    """The form a page was sent back with, for the templates: its values, its key, and the
    fields the service named in its refusal, each only for the form with that action."""

    def __init__(self, said: dict[str, Any] | None, fields: dict[str, list[str]]) -> None:
        said = said or {}
        self.action = str(said.get("action", ""))
        values = said.get("values")
        self.values = {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) \
            else {}  # fmt: skip
        key = said.get("key")
        self.key_sent = key if isinstance(key, str) and key else None
        self.fields = fields if self.action else {}

    def key(self, action: str) -> str:
        """The form's key: the one it was sent with when its outcome is not known, else fresh."""
        return self.key_sent if self.key_sent and action == self.action else form_key()

    def value(self, action: str, name: str, default: Any = "") -> Any:
        if action == self.action and name in self.values:
            return self.values[name]
        return default

    def errors(self, action: str, name: str) -> list[str]:
        return self.fields.get(name, []) if action == self.action else []

    def attrs(self, action: str, name: str, field_id: str, hint_id: str = "") -> Markup:
        """A field's `aria-describedby` (its hint, its error) and `aria-invalid` when the service
        named it."""
        described = [hint_id] if hint_id else []
        invalid = bool(self.errors(action, name))
        if invalid:
            described.append(f"{field_id}-error")
        found = f' aria-describedby="{escape(" ".join(described))}"' if described else ""
        return Markup(found + (' aria-invalid="true"' if invalid else ""))

    def error(self, action: str, name: str, field_id: str) -> Markup:
        """What the service said of the field, next to it (in English, as it said it)."""
        said = self.errors(action, name)
        if not said:
            return Markup("")
        return Markup('<p class="field-error" id="{}-error" lang="en">{}</p>').format(
            field_id, "; ".join(said)
        )


def shown_form(request: Request, fields: dict[str, list[str]]) -> SentForm:
    said = _unsealed(settings_of(request).jwt_secret, "form", request.cookies.get(FORM_COOKIE))
    if said is None or said.get("path") != request.url.path:
        return SentForm(None, {})
    return SentForm(said, fields)


def form_field(loc: list[Any]) -> str | None:
    """The form field a field error names: the request body's field, as the form names it."""
    parts = loc[1:] if loc and loc[0] in REQUEST_PARTS else loc
    if not loc or loc[0] != "body" or not parts or not isinstance(parts[0], str):
        return None
    return FORM_FIELD_OF.get(parts[0], parts[0])


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
    fields: dict[str, list[str]] = {}
    for e in said.get("errors", []):
        name = form_field(e["loc"])
        if name:
            fields.setdefault(name, []).append(e["msg"])
    used = said.get("limit_used_by")
    return {"detail": detail, "errors": errors, "more": int(said.get("more", 0)),
            "fields": fields,
            "limit_used_by": claims_named({"limit_used_by": dict(used)}) if isinstance(used, list)
            else [], "more_claims": int(said.get("more_claims", 0))}  # fmt: skip


def unread_reasons(request: Request) -> list[str]:
    """Why reads this page could do without were left out (each problem's slug, once), for the
    page to say that what it shows is incomplete: never a row half filled in silently."""
    upstream: Upstream | None = getattr(request.state, "upstream", None)
    return sorted(set(upstream.unread)) if upstream is not None else []


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    session = signed_in(request)
    error = _known(t, "problem", request.query_params.get("error"), any_slug=True)
    refusal = shown_refusal(request, t, error)
    sent = shown_form(request, refusal["fields"] if refusal else {}) if error \
        else SentForm(None, {})  # fmt: skip
    page = TEMPLATES.get_template(template).render(
        t=t,
        caller=session[0] if session else None,
        csrf=csrf_token(request),
        # Each form's own key, fresh every time it is rendered (unless the form is shown again
        # after an answer that was not known: then the key it was sent with).
        form_key=sent.key,
        sent=sent,
        path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        locales=[(code, LANGUAGE_NAMES[code]) for code in LOCALES],
        home=HOME_OF_ROLE.get(session[0].role, "/") if session else "/sign-in",
        notice=_known(t, "notice", request.query_params.get("notice")),
        error=error,
        refusal=refusal,
        answered=shown_outcome(request),
        unread=[t.problem(slug) for slug in unread_reasons(request)],
        **context,
    )
    response = HTMLResponse(page, status_code=status)
    response.headers["Content-Language"] = t.locale
    for cookie in (REFUSAL_COOKIE, FORM_COOKIE, OUTCOME_COOKIE):  # shown once, on its page
        if cookie in request.cookies:
            response.delete_cookie(cookie, path="/")
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
