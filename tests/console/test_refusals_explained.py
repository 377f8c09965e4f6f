"""A form a service refuses is explained on its page with what the service said: the console's
sentence for the problem in the reader's language, then the service's own detail and, for a
validation problem, each field it names (labelled as the form labels it), kept as the service
wrote them and marked `lang="en"`. The explanation travels from the form to its page in a
short-lived signed cookie, never in the address, and is shown once, on that page only."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from console.upstream import FieldError, UpstreamRefused
from console.web import REFUSAL_BYTES, REFUSAL_COOKIE, sealed_refusal
from shared.calendar import today as business_today
from shared.contracts import UNDERWRITER_SIGNAL_KINDS
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.console.conftest import Console, browser_missing, console_with_services
from tests.console.test_idempotency import forms_of
from tests.console.test_service_english import marked_english
from tests.console.test_session import csrf_of

POLICY_NEEDED = "a overdue_notified signal needs a policy_id"


@contextmanager
def signed_in(console: Console, role: str, language: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url, headers={"Accept-Language": language},
                      timeout=30) as client:  # fmt: skip
        signed = client.post("/sign-in", data={"csrf": csrf_of(client.get("/sign-in").text),
                                               "role": role, "name": "Wang Fang"})  # fmt: skip
        assert signed.status_code == 303
        yield client


def sent_back(client: httpx.Client, action: str, page: str, **fields: str) -> httpx.Response:
    """The form of `page` posted to `action` with `fields`: refused, its page shown again."""
    form = forms_of(client.get(page).text)[action]
    answer = client.post(action, data={**form, **fields})
    assert answer.status_code == 303, answer.text
    address = urlsplit(answer.headers["location"])
    assert address.path == page and parse_qs(address.query).keys() == {"error"}  # no free text
    return client.get(answer.headers["location"])


def alert_of(page: str) -> str:
    found = re.search(r'<div class="error" role="alert">(.*?)</div>', page, re.S)
    assert found, "the page explains no refusal"
    return found.group(1)


def test_a_refused_signal_shows_the_field_the_service_names_in_english_on_a_chinese_page(
    console: Console,
) -> None:
    buyer = console.book.buyers["milano"]
    page = f"/underwriting/buyers/{buyer['id']}"
    with signed_in(console, "underwriter", "zh-CN") as client:
        shown = sent_back(client, f"{page}/signals", page, kind="overdue_notified",
                          observed_on=business_today("Asia/Shanghai").isoformat())  # fmt: skip
        assert shown.status_code == 200 and shown.headers["content-language"] == "zh-CN"
        alert = alert_of(shown.text)
        assert "部分输入内容无效。" in alert and "服务的说明：" in alert
        assert f'<li>保单: <span lang="en">{html.escape(POLICY_NEEDED)}</span></li>' in alert
        assert marked_english(shown.text, POLICY_NEEDED)
        assert alert.count(html.escape(POLICY_NEEDED)) == 1  # the detail only repeats the field's
        again = client.get(f"{page}?error=validation")
        assert "部分输入内容无效。" in again.text and POLICY_NEEDED not in again.text  # shown once


def test_the_signal_form_offers_only_the_kinds_an_underwriter_may_send(console: Console) -> None:
    buyer = console.book.buyers["milano"]
    with signed_in(console, "underwriter", "en") as client:
        page = client.get(f"/underwriting/buyers/{buyer['id']}").text
    select = re.search(r'<select id="signal-kind".*?</select>', page, re.S)
    assert select
    offered = re.findall(r'<option value="([a-z_]+)">', select.group(0))
    assert offered == list(UNDERWRITER_SIGNAL_KINDS)


def test_a_refused_limit_change_shows_the_services_detail_under_the_consoles_sentence(
    console: Console,
) -> None:
    limit_id = console.book.limits["mueller"]
    form = f"/underwriting/limits/{limit_id}/change"
    today = business_today("Asia/Shanghai").isoformat()
    with signed_in(console, "underwriter", "en") as client:
        shown = sent_back(client, form, form, change="reduce", amount="100,000",
                          effective_from=today, reason="DSO up again")  # fmt: skip
    alert = alert_of(shown.text)
    assert "A reduction can take effect tomorrow at the earliest." in alert
    detail = "a reduction or withdrawal applies only to shipments from tomorrow on"
    assert f'The service explains: <span lang="en">{detail}</span>' in alert


def test_a_refused_payment_shows_the_services_detail_marked_english_on_a_chinese_page(
    console: Console,
) -> None:
    case_id = console.book.cases["phone_collection"]
    page = f"/cases/{case_id}"
    with signed_in(console, "collector", "zh-CN") as client:
        shown = sent_back(client, f"{page}/payments", page, amount="999,999,999",
                          received_on=business_today("Asia/Shanghai").isoformat())  # fmt: skip
    alert = alert_of(shown.text)
    assert "金额超过案件未清余额。" in alert and "服务的说明：" in alert
    detail = re.search(r'<span lang="en">(999999999\.00 exceeds the outstanding [^<]+)</span>',
                       alert)  # fmt: skip
    assert detail and marked_english(shown.text, detail.group(1))


# ---------------------------------------------------------------- the cookie, in process


def refusal(errors: int) -> UpstreamRefused:
    return UpstreamRefused(422, "validation", "invalid input: one of many", tuple(
        FieldError(("body", "invoices", n, "shipment_date"), f"invoice {n} is odd " + "x" * 60)
        for n in range(errors)))  # fmt: skip


async def with_cookie(client: httpx.AsyncClient, cookie: str, error: str) -> httpx.Response:
    """The sign-in page (rendered as every page is) with `?error=` and the refusal cookie."""
    client.cookies.set(REFUSAL_COOKIE, cookie)
    try:
        return await client.get("/sign-in", params={"error": error})
    finally:
        client.cookies.clear()


@pytest.fixture
async def client() -> Any:
    def service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    async with console_with_services(service) as client:
        yield client


async def test_only_the_consoles_own_signed_explanation_for_this_page_and_error_is_shown_once(
    client: httpx.AsyncClient,
) -> None:
    sealed = sealed_refusal(DEVELOPMENT_JWT_SECRET, "/sign-in", "validation", refusal(3))
    assert sealed is not None
    nonce, _, signature = sealed.partition(".")
    for cookie, query in (
        (f"{nonce}.{'0' * len(signature)}", "validation"),  # not signed by the console
        (sealed_refusal("another secret", "/sign-in", "validation", refusal(3)), "validation"),
        (sealed_refusal(DEVELOPMENT_JWT_SECRET, "/cases/case_1", "validation", refusal(3)),
         "validation"),  # another page's
        (sealed, "csrf"),  # another error's
    ):  # fmt: skip
        page = await with_cookie(client, str(cookie), query)
        assert "invoice 1 is odd" not in page.text and "服务的说明" not in page.text
    page = await with_cookie(client, sealed, "validation")
    alert = alert_of(page.text)
    assert "服务的说明：" in alert and "invalid input: one of many" in alert
    assert '<li>发票 › 第 2 项 › 发货日期: <span lang="en">invoice 1 is odd' in alert
    assert f'{REFUSAL_COOKIE}=""' in page.headers["set-cookie"]  # shown once: deleted


async def test_an_explanation_too_long_for_a_cookie_keeps_the_first_fields_and_counts_the_rest(
    client: httpx.AsyncClient,
) -> None:
    sealed = sealed_refusal(DEVELOPMENT_JWT_SECRET, "/sign-in", "validation", refusal(200))
    assert sealed is not None and len(sealed) <= REFUSAL_BYTES + 65
    page = await with_cookie(client, sealed, "validation")
    alert = alert_of(page.text)
    shown = alert.count("<li>") - 1
    assert 10 < shown < 200 and f"另有 {200 - shown} 项" in alert
    assert "invoice 0 is odd" in alert


# ---------------------------------------------------------------- in the browser


@pytest.mark.e2e
@pytest.mark.skipif(browser_missing() is not None,
                    reason=f"browser tests skipped: {browser_missing()}")  # fmt: skip
def test_in_the_browser_a_refused_signal_is_explained_where_the_form_is(
    tab: Any, console: Console
) -> None:
    buyer = console.book.buyers["milano"]
    person = tab("zh-CN")
    page = person.sign_in("underwriter", "Wang Fang")
    person.open(f"/underwriting/buyers/{buyer['id']}")
    page.get_by_label("类型", exact=True).select_option("overdue_notified")
    page.get_by_role("button", name="记录信号").click()
    alert = page.get_by_role("alert")
    alert.get_by_text(POLICY_NEEDED).wait_for()
    assert alert.locator("span[lang=en]").inner_text() == POLICY_NEEDED
    assert "保单" in alert.locator("li").inner_text()
    assert page.url.endswith(f"/underwriting/buyers/{buyer['id']}?error=validation")
