"""Who is signed in (a short-lived token in an HttpOnly cookie), the language cookie, and the
CSRF token every form carries (a signed double-submit cookie)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from starlette.responses import Response

from console.settings import ConsoleSettings
from shared.auth import Caller, decode_token
from shared.problems import Problem

SESSION_COOKIE = "tci_console_session"
CSRF_COOKIE = "tci_console_csrf"
LANGUAGE_COOKIE = "tci_console_lang"
CONSOLE_ROLES = ("underwriter", "claims_handler", "collector")
LANGUAGE_COOKIE_SECONDS = 365 * 86_400


class SignInRequired(Exception):
    """No session, or its token has expired: the person is sent to the sign-in page."""


def settings_of(request: Request) -> ConsoleSettings:
    settings: ConsoleSettings = request.app.state.settings
    return settings


def set_cookie(response: Response, settings: ConsoleSettings, name: str, value: str,
               max_age: int) -> None:  # fmt: skip
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                        secure=settings.secure_cookies, path="/")  # fmt: skip


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def signed_in(request: Request) -> tuple[Caller, str] | None:
    """The signed-in caller and their token, or None when there is no valid session."""
    token = session_token(request)
    if token is None:
        return None
    settings = settings_of(request)
    try:
        caller = decode_token(token, settings.jwt_secret, leeway_seconds=0,
                              max_ttl_seconds=settings.max_token_ttl_seconds)  # fmt: skip
    except Problem:
        return None
    return caller, token


def require_caller(request: Request) -> tuple[Caller, str]:
    found = signed_in(request)
    if found is None:
        raise SignInRequired
    return found


def role_dependency(role: str) -> Callable[[Request], tuple[Caller, str]]:
    """A dependency admitting only `role` (a signed-in person of another role: 403)."""

    def dependency(request: Request) -> tuple[Caller, str]:
        caller, token = require_caller(request)
        if caller.role != role:
            raise HTTPException(403)
        return caller, token

    return dependency


SessionDep = Annotated[tuple[Caller, str], Depends(require_caller)]
UnderwriterDep = Annotated[tuple[Caller, str], Depends(role_dependency("underwriter"))]
HandlerDep = Annotated[tuple[Caller, str], Depends(role_dependency("claims_handler"))]
CollectorDep = Annotated[tuple[Caller, str], Depends(role_dependency("collector"))]


# ---------------------------------------------------------------- CSRF


def signature(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value` for one purpose (a CSRF nonce, a refusal carried to its page): a
    value signed for one purpose is never valid for another."""
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def _signature(secret: str, nonce: str) -> str:
    return signature(secret, "csrf", nonce)


def new_csrf_token(secret: str) -> str:
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(secret, nonce)}"


def csrf_token_valid(secret: str, token: str | None) -> bool:
    if not token or "." not in token:
        return False
    nonce, _, signature = token.partition(".")
    return hmac.compare_digest(signature, _signature(secret, nonce))


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: the cookie's when it is ours, else a new one (the middleware
    sets the cookie on the answer)."""
    current = request.cookies.get(CSRF_COOKIE)
    if csrf_token_valid(settings_of(request).jwt_secret, current):
        return str(current)
    fresh: str | None = getattr(request.state, "new_csrf", None)
    if fresh is None:
        fresh = new_csrf_token(settings_of(request).jwt_secret)
        request.state.new_csrf = fresh
    return fresh


async def check_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    """Every form's POST: the hidden `csrf` field must equal this browser's signed cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    secret = settings_of(request).jwt_secret
    if not (csrf_token_valid(secret, cookie) and hmac.compare_digest(csrf, str(cookie))):
        raise HTTPException(403, "csrf")


CsrfDep = Depends(check_csrf)
