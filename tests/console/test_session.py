"""Signing in to the console: a short-lived token in an HttpOnly, SameSite=Lax cookie (Secure
outside development), a CSRF token on every form, and each role kept to its own pages."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from console.main import create_app
from console.session import CSRF_COOKIE, LANGUAGE_COOKIE, SESSION_COOKIE
from console.settings import ConsoleSettings
from shared.auth import decode_token
from shared.settings import DEVELOPMENT_JWT_SECRET

PRODUCTION_SECRET = "a-production-secret-of-at-least-32-bytes!"


def console(environment: str = "development") -> httpx.AsyncClient:
    secret = DEVELOPMENT_JWT_SECRET if environment == "development" else PRODUCTION_SECRET
    settings = ConsoleSettings(TCI_ENV=environment, TCI_JWT_SECRET=secret,
                               TCI_CONSOLE_SESSION_TTL_SECONDS=600)  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(settings))
    # Outside development cookies are Secure: the browser sends them back over https only.
    scheme = "http" if environment == "development" else "https"
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://console.test")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with console() as opened:
        yield opened


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def set_cookie_header(response: httpx.Response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


async def test_the_development_sign_in_mints_a_short_lived_token_in_an_httponly_lax_cookie(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/sign-in")
    signed = await client.post("/sign-in", data={"csrf": csrf_of(page.text),
                                                 "role": "claims_handler", "name": "Wang Fang"})  # fmt: skip
    assert signed.status_code == 303 and signed.headers["location"] == "/claims"
    cookie = set_cookie_header(signed, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert "Max-Age=600" in cookie
    caller = decode_token(client.cookies[SESSION_COOKIE], DEVELOPMENT_JWT_SECRET)
    assert (caller.role, caller.subject, caller.party_id) == ("claims_handler", "Wang Fang", None)


async def test_a_form_posted_without_its_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    await client.get("/sign-in")
    for data in ({"role": "underwriter"}, {"role": "underwriter", "csrf": "forged.0000"}):
        refused = await client.post("/sign-in", data=data)
        assert refused.status_code == 403 and SESSION_COOKIE not in client.cookies
    other = console()
    stranger = csrf_of((await other.get("/sign-in")).text)  # another browser's token
    refused = await client.post("/sign-in", data={"role": "underwriter", "csrf": stranger})
    assert refused.status_code == 403
    await other.aclose()


async def test_each_role_sees_only_its_own_pages_and_no_session_goes_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/underwriting/queue")).headers["location"] == "/sign-in"
    page = await client.get("/sign-in")
    await client.post("/sign-in", data={"csrf": csrf_of(page.text), "role": "collector"})
    for path in ("/underwriting/queue", "/claims", "/claims/clm_x/documents/doc_y"):
        assert (await client.get(path)).status_code == 403, path


async def test_a_forged_or_expired_session_is_no_session(client: httpx.AsyncClient) -> None:
    client.cookies.set(SESSION_COOKIE, "not-a-token")
    answer = await client.get("/cases")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_a_signed_session_whose_time_claim_is_a_huge_integer_is_no_session(
    client: httpx.AsyncClient, claim: str
) -> None:
    now = int(time.time())
    claims = {"sub": "Wang Fang", "role": "collector", "iat": now, "exp": now + 600}
    claims[claim] = 10**400
    client.cookies.set(
        SESSION_COOKIE, jwt.encode(claims, DEVELOPMENT_JWT_SECRET, algorithm="HS256")
    )
    answer = await client.get("/cases")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


async def test_outside_development_there_is_no_role_picker_and_cookies_are_secure() -> None:
    async with console("production") as client:
        # No identity provider configured: the page says signing in is not set up (test_oidc.py).
        page = await client.get("/sign-in")
        assert page.status_code == 503 and 'name="role"' not in page.text
        assert "Secure" in set_cookie_header(page, CSRF_COOKIE)
        posted = await client.post("/sign-in", data={"role": "underwriter",
                                                     "csrf": csrf_of(page.text)})  # fmt: skip
        assert posted.status_code == 404 and SESSION_COOKIE not in client.cookies
        chosen = await client.post("/language", data={"locale": "zh-CN", "next": "/",
                                                      "csrf": csrf_of(page.text)})  # fmt: skip
        assert chosen.status_code == 303
        assert "Secure" in set_cookie_header(chosen, LANGUAGE_COOKIE)


async def test_the_switch_sets_the_language_and_goes_back_only_to_a_page_of_the_console(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert page.headers["content-language"] == "zh-CN" and "<h1>登录</h1>" in page.text
    switched = await client.post("/language", data={"csrf": csrf_of(page.text), "locale": "en",
                                                     "next": "//evil.example/"})  # fmt: skip
    assert switched.headers["location"] == "/"
    again = await client.get("/sign-in", headers={"Accept-Language": "zh-CN"})
    assert again.headers["content-language"] == "en" and "<h1>Sign in</h1>" in again.text


async def test_pages_forbid_inline_scripts_and_framing_and_are_not_cached(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/sign-in")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text and " on" + "click=" not in page.text
    htmx = await client.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:200]
