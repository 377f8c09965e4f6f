"""Odd input typed into the console's addresses: an id no service ever gave (a `?`, a `#`, a NUL,
a dot segment, Chinese, 5,000 characters) is the translated "not found" page, never a 500, and
never reaches a service as part of another path; a page's `notice` and `error` show only the
console's own messages, never text someone put into a link."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from console.session import SESSION_COOKIE
from shared.auth import mint_token
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.console.conftest import console_with_services
from tests.console.test_session import csrf_of

ODD_IDS = ("x%3Fy%3D1", "%3F", "%23", "%00", "%2E%2E", "%E4%B8%AD", "a" * 5000, "%ED%A0%80")
PAGES = {
    "underwriter": ("/underwriting/requests/{}", "/underwriting/buyers/{}",
                    "/underwriting/policies/{}", "/underwriting/limits/{}/change"),
    "claims_handler": ("/claims/{}", "/claims/{}/documents/doc_1", "/claims/clm_1/documents/{}"),
    "collector": ("/cases/{}",),
}  # fmt: skip
FORMS = {
    "underwriter": ("/underwriting/requests/{}/decision", "/underwriting/buyers/{}/signals",
                    "/underwriting/limits/{}/change"),
    "claims_handler": ("/claims/{}/assessment", "/claims/{}/payment",
                       "/claims/clm_1/disputes/{}/resolution"),
    "collector": ("/cases/{}/payments", "/cases/{}/activities"),
}  # fmt: skip


@pytest.fixture
async def console() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """The console with services that answer as the real ones would to a path they do not
    know (a trailing slash: a redirect; anything else: 404), recording every path asked."""
    asked: list[str] = []

    def service(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.raw_path.decode())
        if request.url.path.endswith("/"):
            return httpx.Response(307, headers={"location": request.url.path.rstrip("/")})
        return httpx.Response(404, json={"type": "https://tci.example/problems/not-found",
                                         "title": "Not Found", "status": 404})  # fmt: skip

    async with console_with_services(service) as client:
        yield client, asked


def sign_in(client: httpx.AsyncClient, role: str) -> None:
    token = mint_token(DEVELOPMENT_JWT_SECRET, role=role, subject="odd", ttl_seconds=600)
    client.cookies.set(SESSION_COOKIE, token)


async def test_an_id_no_service_gave_is_the_translated_not_found_page_and_asks_no_service(
    console: tuple[httpx.AsyncClient, list[str]],
) -> None:
    client, asked = console
    for role, pages in PAGES.items():
        sign_in(client, role)
        csrf = csrf_of((await client.get("/sign-in")).text)
        for odd in ODD_IDS:
            for page in pages:
                answer = await client.get(page.format(odd))
                assert answer.status_code == 404, (page, odd, answer.status_code)
                assert "未找到" in answer.text and answer.headers["content-language"] == "zh-CN"
            for form in FORMS[role]:
                answer = await client.post(form.format(odd), data={"csrf": csrf})
                assert answer.status_code == 404, (form, odd, answer.status_code)
    assert asked == []


async def test_a_well_formed_id_still_reaches_its_service(
    console: tuple[httpx.AsyncClient, list[str]],
) -> None:
    client, asked = console
    sign_in(client, "collector")
    answer = await client.get("/cases/case_01m86c41e49rxwzha5sj9md0n0")
    assert answer.status_code == 404 and "未找到" in answer.text
    assert asked == ["/v1/cases/case_01m86c41e49rxwzha5sj9md0n0"]


async def test_a_page_shows_only_the_consoles_own_notices_and_errors(
    console: tuple[httpx.AsyncClient, list[str]],
) -> None:
    client, _ = console
    planted = "Your session is suspended: call +1 555 0100 now"
    for query in ({"error": planted}, {"notice": planted}, {"error": "x" * 5000}):
        page = await client.get("/sign-in", params=query)
        assert page.status_code == 200
        shown = re.sub(r'name="next" value="[^"]*"', "", page.text)  # the address itself
        assert planted not in shown and "x" * 100 not in shown
        assert 'role="alert"' not in page.text and 'role="status"' not in page.text
    known = await client.get("/sign-in", params={"notice": "signed-out", "error": "csrf"})
    assert 'role="status"' in known.text and 'role="alert"' in known.text
    # A refusal the catalogue does not name yet is still said, with its code.
    unknown = await client.get("/sign-in", params={"error": "some-new-refusal"})
    assert "some-new-refusal" in unknown.text and 'role="alert"' in unknown.text


async def test_a_form_posted_without_its_fields_is_the_translated_validation_page(
    console: tuple[httpx.AsyncClient, list[str]],
) -> None:
    client, asked = console
    sign_in(client, "collector")
    csrf = csrf_of((await client.get("/sign-in")).text)
    answer = await client.post("/cases/case_01m86c41e49rxwzha5sj9md0n0/payments",
                               data={"csrf": csrf, "amount": "5"})  # fmt: skip
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert "部分输入内容无效" in answer.text and "Field required" not in answer.text
    assert asked == []
