"""Signing in and out (the development form; the insurer's OpenID Connect provider), the home
page and the language switch."""

from __future__ import annotations

import logging
import re
from typing import Annotated
from urllib.parse import urljoin

from fastapi import APIRouter, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from console.i18n import LOCALES
from console.oidc import SignInRefused, provider_of
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
from console.settings import ConsoleSettings
from console.web import HOME_OF_ROLE, local_path, redirect, render
from shared.auth import mint_token

router = APIRouter()
NAME = re.compile(r"^[\w.@ -]{1,60}$")
log = logging.getLogger("console.signin")


def signed_in_as(settings: ConsoleSettings, role: str, subject: str) -> Response:
    """The answer that signs a person in: a short-lived service token for their role, in an
    HttpOnly, SameSite=Lax cookie (Secure outside development), and their role's home page."""
    ttl = min(settings.console_session_ttl_seconds, settings.max_token_ttl_seconds)
    token = mint_token(settings.jwt_secret, role=role, subject=subject, ttl_seconds=ttl)
    response = redirect(HOME_OF_ROLE[role])
    set_cookie(response, settings, SESSION_COOKIE, token, ttl)
    return response


def refused(request: Request, refusal: SignInRefused) -> Response:
    log.warning("OpenID Connect sign-in refused (%s): %s", refusal.slug, refusal.reason)
    return render(request, "sign_in_refused.html", status=refusal.status, slug=refusal.slug)


def console_url(request: Request, path: str) -> str:
    """An absolute URL of this console: under TCI_CONSOLE_OIDC_REDIRECT_URL's origin when it is
    set (the address the provider knows), else the one the request reached."""
    configured = settings_of(request).console_oidc_redirect_url
    return urljoin(configured, path) if configured else str(request.base_url.replace(path=path))


@router.get("/")
async def home(request: Request) -> Response:
    session = signed_in(request)
    if session is None:
        return redirect("/sign-in")
    return redirect(HOME_OF_ROLE.get(session[0].role, "/sign-in"))


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    """The role picker in development; a way to the insurer's identity provider when one is
    configured; outside development without one, a page saying signing in is not set up (503:
    the console is running but nobody can use it, which monitoring should see)."""
    settings = settings_of(request)
    development = settings.environment == "development"
    unconfigured = not development and not settings.oidc_configured
    return render(request, "sign_in.html", status=503 if unconfigured else 200,
                  roles=CONSOLE_ROLES, development=development,
                  oidc=settings.oidc_configured)  # fmt: skip


@router.get("/sign-in/oidc")
async def sign_in_with_provider(request: Request) -> Response:
    """Off to the provider's authorization endpoint (a link, not a form: it changes nothing
    here; the state it carries is bound to this browser by the flow cookie)."""
    provider = provider_of(request)
    if provider is None:
        raise HTTPException(404)
    settings = settings_of(request)
    callback = settings.console_oidc_redirect_url or str(request.url_for("oidc_callback"))
    try:
        return await provider.start(request, callback)
    except SignInRefused as refusal:
        return refused(request, refusal)


@router.get("/sign-in/callback", name="oidc_callback")
async def provider_answered(request: Request) -> Response:
    """The provider's answer: the person it signs in gets a console session, as with the
    development form; any refusal is explained and sets no session."""
    provider = provider_of(request)
    if provider is None:
        raise HTTPException(404)
    try:
        person = await provider.finish(request, CONSOLE_ROLES)
    except SignInRefused as refusal:
        return refused(request, refusal)
    log.info("signed in through OpenID Connect: %s as %s", person.subject, person.role)
    return signed_in_as(settings_of(request), person.role, person.subject)


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
    return signed_in_as(settings, role, subject)


@router.post("/sign-out", dependencies=[CsrfDep])
async def sign_out(request: Request) -> Response:
    """The session cookie goes; with a provider that advertises an end-session endpoint, the
    person is signed out there too and sent back to the sign-in page."""
    provider = provider_of(request)
    end_session = None
    if provider is not None:
        end_session = await provider.end_session_url(console_url(request, "/sign-in"))
    response = (redirect("/sign-in", notice="signed-out") if end_session is None
                else RedirectResponse(end_session, status_code=303))  # fmt: skip
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
