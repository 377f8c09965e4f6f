"""Signing in and out, the home page and the language switch."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from starlette.responses import Response

from console.i18n import LOCALES
from console.session import (
    CONSOLE_ROLES,
    LANGUAGE_COOKIE,
    LANGUAGE_COOKIE_SECONDS,
    SESSION_COOKIE,
    CsrfDep,
    set_cookie,
    settings_of,
    signed_in,
)
from console.web import HOME_OF_ROLE, local_path, redirect, render
from shared.auth import mint_token

router = APIRouter()
NAME = re.compile(r"^[\w.@ -]{1,60}$")


@router.get("/")
async def home(request: Request) -> Response:
    session = signed_in(request)
    if session is None:
        return redirect("/sign-in")
    return redirect(HOME_OF_ROLE.get(session[0].role, "/sign-in"))


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    if settings_of(request).environment != "development":
        # Production signs in through the insurer's identity provider, not this form.
        raise HTTPException(404)
    return render(request, "sign_in.html", roles=CONSOLE_ROLES)


@router.post("/sign-in", dependencies=[CsrfDep])
async def sign_in(
    request: Request, role: Annotated[str, Form()], name: Annotated[str, Form()] = ""
) -> Response:
    """Development sign-in: a short-lived token for the role picked, kept in an HttpOnly cookie."""
    settings = settings_of(request)
    if settings.environment != "development":
        raise HTTPException(404)
    if role not in CONSOLE_ROLES:
        return redirect("/sign-in", error="validation")
    subject = name.strip() if NAME.match(name.strip()) else role
    ttl = min(settings.console_session_ttl_seconds, settings.max_token_ttl_seconds)
    token = mint_token(settings.jwt_secret, role=role, subject=subject, ttl_seconds=ttl)
    response = redirect(HOME_OF_ROLE[role])
    set_cookie(response, settings, SESSION_COOKIE, token, ttl)
    return response


@router.post("/sign-out", dependencies=[CsrfDep])
async def sign_out(request: Request) -> Response:
    response = redirect("/sign-in", notice="signed-out")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language", dependencies=[CsrfDep])
async def choose_language(
    request: Request, locale: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:
    """The language switch: kept in a cookie, preferred over the browser's Accept-Language."""
    response = redirect(local_path(next))
    if locale in LOCALES:
        set_cookie(response, settings_of(request), LANGUAGE_COOKIE, locale, LANGUAGE_COOKIE_SECONDS)
    return response
