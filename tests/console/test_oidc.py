"""Production sign-in through the insurer's OpenID Connect provider: the console as a real
process (TCI_ENV=production), a fake issuer over loopback HTTP, and underwriting with the same
production secret. The whole authorization-code flow (PKCE, state, nonce) signs a person in with
an HttpOnly, Secure, SameSite=Lax session whose token the service accepts; every spoilt answer
(state, nonce, key, expiry, audience, issuer, role) is refused and sets no session."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from markupsafe import escape
from pydantic import ValidationError

from console.catalogue import en, zh_cn
from console.main import create_app
from console.oidc import OIDC_FLOW_COOKIE
from console.session import CSRF_COOKIE, SESSION_COOKIE
from console.settings import ConsoleSettings
from shared.auth import decode_token
from shared.migrations import upgrade
from tests.conftest import ROOT, _free_port, backend, free_urls, start_services
from tests.console.conftest import console_process
from tests.console.fake_oidc import FakeIssuer, Served, new_key

PRODUCTION_SECRET = "a-production-secret-of-at-least-32-bytes!"
CLIENT_ID = "tci-console"
CLIENT_SECRET = "the-console-client-secret"
PERSON = {"sub": "li.wei@insurer.example", "name": "Li Wei", "tci_role": "underwriter"}


@dataclass
class Stack:
    console: str
    underwriting: str
    issuer: FakeIssuer


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The fake issuer, underwriting and the console, all in production mode."""
    served = Served(FakeIssuer(CLIENT_ID, CLIENT_SECRET, person=dict(PERSON)), _free_port())
    b = backend()
    database = f"{b.main_database}_oidc" if b.kind == "postgresql" else "oidc"
    b.create_database(database)
    with ThreadPoolExecutor(1) as pool:  # Alembic runs an event loop of its own
        pool.submit(upgrade, "underwriting", b.url_for(database, "underwriting")).result()
    urls = free_urls()
    production = {"TCI_ENV": "production", "TCI_JWT_SECRET": PRODUCTION_SECRET}
    running = start_services(database, urls, only=["underwriting"], env=production)
    port = _free_port()
    env = {**os.environ, **production, "TCI_CONSOLE_PORT": str(port),
           "TCI_UNDERWRITING_URL": urls["underwriting"], "TCI_CLAIMS_URL": urls["claims"],
           "TCI_COLLECTIONS_URL": urls["collections"], "TCI_LOG_LEVEL": "WARNING",
           "TCI_CONSOLE_OIDC_ISSUER": served.issuer.url,
           "TCI_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
           "TCI_CONSOLE_OIDC_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip
    try:
        with console_process(port, env, "tci-console-oidc-") as url:
            yield Stack(url, urls["underwriting"], served.issuer)
    finally:
        running.stop()
        served.stop()
        b.drop_database(database)


@pytest.fixture(autouse=True)
def fresh_issuer(request: pytest.FixtureRequest) -> None:
    """Each test starts with the issuer signing in the usual person with honest tokens."""
    if "stack" in request.fixturenames:
        issuer: FakeIssuer = request.getfixturevalue("stack").issuer
        issuer.person, issuer.id_token_changes, issuer.signing_key = dict(PERSON), {}, None


class Browser:
    """What a browser does here, by hand: cookies kept from `Set-Cookie` and sent back to the
    console (its cookies are Secure, which httpx's jar would keep to https), redirects followed
    one at a time."""

    def __init__(self, console: str, locale: str = "en") -> None:
        self.console = console
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []  # every Set-Cookie header the console answered
        self.http = httpx.Client(timeout=10, headers={"Accept-Language": locale})

    def get(self, url: str) -> httpx.Response:
        return self.send("GET", url)

    def send(self, method: str, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        ours = url.startswith(self.console)
        headers = {}
        if ours and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.request(method, url, headers=headers, data=data)
        if ours:
            for header in response.headers.get_list("set-cookie"):
                self.set_cookies.append(header)
                cookie = SimpleCookie(header)
                for name, morsel in cookie.items():
                    if morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
        return response

    def to_provider(self) -> httpx.Response:
        """From the sign-in page's link to the provider; the provider's answer (a redirect back
        to the console's callback)."""
        page = self.get(f"{self.console}/sign-in")
        assert page.status_code == 200 and 'href="/sign-in/oidc"' in page.text
        started = self.get(f"{self.console}/sign-in/oidc")
        assert started.status_code == 302, started.text
        return self.get(started.headers["location"])

    def set_cookie(self, name: str) -> str | None:
        found = [h for h in self.set_cookies if h.startswith(f"{name}=")]
        return found[-1] if found else None


def callback_of(approved: httpx.Response, console: str) -> str:
    assert approved.status_code == 302, approved.text
    callback = approved.headers["location"]
    assert callback.startswith(f"{console}/sign-in/callback?")
    return callback


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_the_full_sign_in_gives_an_httponly_secure_lax_session_the_services_accept(
    stack: Stack,
) -> None:
    browser = Browser(stack.console)
    approved = browser.to_provider()
    flow = browser.set_cookie(OIDC_FLOW_COOKIE)
    assert flow and "httponly" in flow.lower() and "secure" in flow.lower()
    asked = stack.issuer.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    assert asked["redirect_uri"] == f"{stack.console}/sign-in/callback"
    assert "openid" in asked["scope"].split()

    landed = browser.get(callback_of(approved, stack.console))
    assert landed.status_code == 303 and landed.headers["location"] == "/underwriting/queue"
    exchanged = stack.issuer.token_requests[-1]
    assert exchanged["code_verifier"] and exchanged["grant_type"] == "authorization_code"
    session = browser.set_cookie(SESSION_COOKIE)
    assert session is not None
    flags = [part.strip().lower() for part in session.split(";")]
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= set(flags)
    assert OIDC_FLOW_COOKIE not in browser.cookies  # the flow's secrets are gone

    caller = decode_token(browser.cookies[SESSION_COOKIE], PRODUCTION_SECRET)
    assert (caller.role, caller.subject, caller.party_id) == ("underwriter", PERSON["sub"], None)
    home = browser.get(f"{stack.console}/underwriting/queue")
    assert home.status_code == 200, home.text
    assert PERSON["sub"] in home.text and "<h1>" in home.text
    token = browser.cookies[SESSION_COOKIE]
    served = httpx.get(f"{stack.underwriting}/v1/limit-requests",
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert served.status_code == 200 and "items" in served.json()

    # The page lets forms lead on to the provider (signing out ends its session too).
    assert f"form-action 'self' {stack.issuer.url}" in home.headers["content-security-policy"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert csrf and browser.cookies.get(CSRF_COOKIE)
    out = browser.send("POST", f"{stack.console}/sign-out", data={"csrf": csrf.group(1)})
    assert out.status_code == 303
    assert out.headers["location"].startswith(f"{stack.issuer.url}/end_session?")
    assert SESSION_COOKIE not in browser.cookies
    back = browser.get(out.headers["location"])
    ended = stack.issuer.end_session_requests[-1]
    assert ended["client_id"] == CLIENT_ID
    assert (
        back.headers["location"] == ended["post_logout_redirect_uri"] == f"{stack.console}/sign-in"
    )
    assert browser.get(f"{stack.console}/underwriting/queue").headers["location"] == "/sign-in"


def test_the_role_claim_picks_the_home_page_and_a_list_of_groups_may_carry_it(
    stack: Stack,
) -> None:
    stack.issuer.person = {"sub": "wang.fang", "tci_role": ["staff", "claims_handler"]}
    browser = Browser(stack.console)
    landed = browser.get(callback_of(browser.to_provider(), stack.console))
    assert landed.headers["location"] == "/claims"
    caller = decode_token(browser.cookies[SESSION_COOKIE], PRODUCTION_SECRET)
    assert (caller.role, caller.subject) == ("claims_handler", "wang.fang")


def refused_without_session(browser: Browser, answer: httpx.Response, status: int,
                            slug: str, catalogue: dict[str, str] = en.MESSAGES) -> None:  # fmt: skip
    assert answer.status_code == status, answer.text
    assert escape(catalogue[f"problem.{slug}"]) in answer.text
    assert escape(catalogue["sign_in.refused"]) in answer.text and 'href="/sign-in"' in answer.text
    assert browser.set_cookie(SESSION_COOKIE) is None and SESSION_COOKIE not in browser.cookies


SPOILT_TOKENS = {
    "a nonce of another sign-in": {"nonce": "not-this-sign-in"},
    "for another client": {"aud": "another-client", "azp": CLIENT_ID},
    "for several clients but not this one": {"aud": ["one", "two"], "azp": CLIENT_ID},
    "from another issuer": {"iss": "http://127.0.0.1:1/other-issuer"},
    "expired an hour ago": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 3900},
    "issued in the future": {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3900},
}


@pytest.mark.parametrize("changes", list(SPOILT_TOKENS.values()), ids=list(SPOILT_TOKENS))
def test_a_spoilt_id_token_is_refused_and_sets_no_session(
    stack: Stack, changes: dict[str, Any]
) -> None:
    stack.issuer.id_token_changes = changes
    browser = Browser(stack.console)
    answer = browser.get(callback_of(browser.to_provider(), stack.console))
    refused_without_session(browser, answer, 400, "sign-in-failed")


def test_an_id_token_signed_by_another_key_is_refused(stack: Stack) -> None:
    stack.issuer.signing_key = new_key()  # same key id, another key: the JWKS does not verify it
    browser = Browser(stack.console)
    answer = browser.get(callback_of(browser.to_provider(), stack.console))
    refused_without_session(browser, answer, 400, "sign-in-failed")


def test_a_callback_with_another_state_or_replayed_is_refused(stack: Stack) -> None:
    browser = Browser(stack.console)
    callback = callback_of(browser.to_provider(), stack.console)
    flow_cookies = dict(browser.cookies)
    forged = browser.get(with_query(callback, state="an-attackers-state"))
    refused_without_session(browser, forged, 400, "sign-in-failed")
    # Another browser, with no flow of its own, cannot finish this one's sign-in (login CSRF).
    stranger = Browser(stack.console)
    refused_without_session(stranger, stranger.get(callback), 400, "sign-in-failed")
    # The browser that started it can; and once only: its code is spent at the provider.
    assert browser.get(callback).status_code == 303
    replayed = Browser(stack.console)
    replayed.cookies = flow_cookies
    refused_without_session(replayed, replayed.get(callback), 400, "sign-in-failed")
    assert stack.issuer.token_requests[-1]["code"] == parse_qs(urlsplit(callback).query)["code"][0]


@pytest.mark.parametrize("person", [
    {"sub": "p-1", "tci_role": "policyholder"},
    {"sub": "p-2", "tci_role": "administrator"},
    {"sub": "p-3"},
    {"sub": "p-4", "tci_role": ["underwriter", "collector"]},
], ids=["a service role not for the console", "an unknown role", "no role", "two roles"])  # fmt: skip
def test_a_person_without_exactly_one_console_role_is_refused_in_their_language(
    stack: Stack, person: dict[str, Any]
) -> None:
    stack.issuer.person = person
    browser = Browser(stack.console, locale="zh-CN")
    answer = browser.get(callback_of(browser.to_provider(), stack.console))
    refused_without_session(browser, answer, 403, "sign-in-role", zh_cn.MESSAGES)
    assert answer.headers["content-language"] == "zh-CN"


def test_the_provider_declining_is_refused(stack: Stack) -> None:
    browser = Browser(stack.console)
    callback = callback_of(browser.to_provider(), stack.console)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    declined = f"{stack.console}/sign-in/callback?" + urlencode(
        {"error": "access_denied", "state": state})  # fmt: skip
    refused_without_session(browser, browser.get(declined), 403, "sign-in-denied")


def test_the_development_form_stays_closed_in_production(stack: Stack) -> None:
    browser = Browser(stack.console)
    page = browser.get(f"{stack.console}/sign-in")
    assert 'name="role"' not in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    posted = browser.send("POST", f"{stack.console}/sign-in",
                          data={"csrf": csrf.group(1), "role": "underwriter"})  # fmt: skip
    assert posted.status_code == 404 and SESSION_COOKIE not in browser.cookies


# ---------------------------------------------------------------- without a provider


async def test_production_without_a_provider_says_signing_in_is_not_set_up() -> None:
    settings = ConsoleSettings(TCI_ENV="production", TCI_JWT_SECRET=PRODUCTION_SECRET)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as client:
        page = await client.get("/sign-in")
        assert page.status_code == 503
        assert (
            escape(en.MESSAGES["sign_in.unconfigured"]) in page.text
            and 'name="role"' not in page.text
        )
        assert (await client.get("/sign-in/oidc")).status_code == 404
        assert (await client.get("/sign-in/callback?code=x&state=y")).status_code == 404


async def test_an_unreachable_provider_is_explained_not_a_crash() -> None:
    settings = ConsoleSettings(TCI_ENV="production", TCI_JWT_SECRET=PRODUCTION_SECRET,
                               TCI_CONSOLE_OIDC_ISSUER=f"http://127.0.0.1:{_free_port()}",
                               TCI_CONSOLE_OIDC_CLIENT_ID=CLIENT_ID,
                               TCI_CONSOLE_OIDC_CLIENT_SECRET=CLIENT_SECRET)  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as client:
        answer = await client.get("/sign-in/oidc")
        assert answer.status_code == 503
        assert escape(en.MESSAGES["problem.identity-provider-unavailable"]) in answer.text


@pytest.mark.parametrize(("given", "complaint"), [
    ({"TCI_CONSOLE_OIDC_ISSUER": "https://idp.example"}, "TCI_CONSOLE_OIDC_CLIENT_ID"),
    ({"TCI_CONSOLE_OIDC_CLIENT_ID": "x", "TCI_CONSOLE_OIDC_CLIENT_SECRET": "y"},
     "TCI_CONSOLE_OIDC_ISSUER"),
    ({"TCI_CONSOLE_OIDC_ISSUER": "http://idp.example", "TCI_CONSOLE_OIDC_CLIENT_ID": "x",
      "TCI_CONSOLE_OIDC_CLIENT_SECRET": "y"}, "must be https outside development"),
])  # fmt: skip
def test_a_half_configured_or_plain_http_provider_is_refused_at_start(
    given: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        ConsoleSettings(TCI_ENV="production", TCI_JWT_SECRET=PRODUCTION_SECRET, **given)


def test_every_refusal_the_sign_in_explains_is_in_both_catalogues() -> None:
    source = (ROOT / "console" / "oidc.py").read_text()
    slugs = set(re.findall(r'SignInRefused\(\d+, "([a-z-]+)"', source))
    assert {"sign-in-failed", "sign-in-role", "identity-provider-unavailable"} <= slugs
    for catalogue in (en.MESSAGES, zh_cn.MESSAGES):
        assert {f"problem.{slug}" for slug in slugs} <= set(catalogue)


# ---------------------------------------------------------------- in Chromium


def test_signing_in_and_out_through_the_provider_in_chromium(stack: Stack, browser: Any) -> None:
    """The `browser` fixture (conftest.py) skips, saying why, without Chromium or Playwright."""
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{stack.console}/sign-in")
        page.get_by_role("link", name=en.MESSAGES["sign_in.oidc_submit"]).click()
        page.wait_for_url("**/underwriting/queue")
        assert PERSON["sub"] in page.locator(".who").inner_text()
        cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
        page.get_by_role("button", name=en.MESSAGES["nav.sign_out"]).click()
        page.wait_for_url(f"{stack.console}/sign-in")
        assert stack.issuer.end_session_requests, "the provider's session was not ended"
        assert all(c["name"] != SESSION_COOKIE for c in context.cookies())
        assert errors == [], errors
    finally:
        context.close()
