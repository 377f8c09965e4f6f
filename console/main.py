"""`create_app(settings)`: the console's pages, its static files (htmx, styles, keyboard script,
all served locally), security headers, and what a refused or failed call to a service shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response

from console import claims, collections, signin, underwriting
from console.oidc import OIDC_FLOW_COOKIE, OIDC_FLOW_SECONDS, Provider, flow_cookie_secret, origin
from console.session import CSRF_COOKIE, SESSION_COOKIE, SignInRequired, set_cookie
from console.settings import ConsoleSettings
from console.upstream import UpstreamRefused, build_clients
from console.web import HERE, redirect, render

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
CSRF_COOKIE_SECONDS = 12 * 3600


def content_security_policy(request: Request) -> str:
    """The policy; with OpenID Connect sign-in, the sign-out form may lead on to the provider's
    end-session endpoint (browsers hold a form's redirects to `form-action` too)."""
    provider: Provider | None = getattr(request.app.state, "oidc", None)
    if provider is None:
        return CONTENT_SECURITY_POLICY
    sources = {origin(provider.issuer), origin(provider.known_end_session_endpoint() or "")}
    extra = "".join(f" {source}" for source in sorted(s for s in sources if s))
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'", f"form-action 'self'{extra}")


async def security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(request))
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")
    fresh = getattr(request.state, "new_csrf", None)
    if fresh is not None:
        set_cookie(response, request.app.state.settings, CSRF_COOKIE, fresh, CSRF_COOKIE_SECONDS)
    return response


async def sign_in_required(request: Request, exc: Exception) -> Response:
    response = redirect(
        "/sign-in", notice="session-expired" if request.cookies.get(SESSION_COOKIE) else None
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def upstream_refused(request: Request, exc: Exception) -> Response:
    """A service's refusal on a page read: its words on an error page (forms explain their own)."""
    assert isinstance(exc, UpstreamRefused)
    if exc.status == 401:
        return await sign_in_required(request, exc)
    status = exc.status if exc.status in (403, 404, 429, 503) else 502
    response = render(request, "error.html", status=status, slug=exc.slug,
                      status_code=exc.status)  # fmt: skip
    if exc.retry_after and status in (429, 503):
        response.headers["Retry-After"] = exc.retry_after
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug = {403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
        exc.status_code, "validation"
    )
    if exc.detail == "csrf":
        slug = "csrf"
    return render(request, "error.html", status=exc.status_code, slug=slug,
                  status_code=exc.status_code)  # fmt: skip


async def form_incomplete(request: Request, exc: Exception) -> Response:
    """A form posted without a field its page always sends (a stale or hand-made form): the
    validation page in the reader's language, not the framework's JSON."""
    return render(request, "error.html", status=422, slug="validation", status_code=422)


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.clients = build_clients(settings)
        try:
            yield
        finally:
            for client in app.state.clients.values():
                await client.aclose()

    app = FastAPI(title="TCI console", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    app.state.settings = settings
    app.state.oidc = Provider(settings) if settings.oidc_configured else None
    app.add_middleware(BaseHTTPMiddleware, dispatch=security_headers)
    if app.state.oidc is not None:
        # A sign-in's state, nonce and PKCE verifier, signed, while the person is at the provider.
        app.add_middleware(SessionMiddleware, secret_key=flow_cookie_secret(settings),
                           session_cookie=OIDC_FLOW_COOKIE, max_age=OIDC_FLOW_SECONDS,
                           same_site="lax", https_only=settings.secure_cookies)  # fmt: skip
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(UpstreamRefused, upstream_refused)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, form_incomplete)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (signin, underwriting, claims, collections):
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
