"""The console in Debian's Chromium: each role does its work through the pages, and the
services' APIs then show the outcome; the same pages in Chinese; the queue by keyboard alone;
no console error on any page; axe-core finds no serious accessibility violation."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.console.conftest import Console, browser_missing

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(browser_missing() is not None,
                       reason=f"browser tests skipped: {browser_missing()}"),
]  # fmt: skip


def api(console: Console, service: str, path: str, role: str) -> dict[str, Any]:
    answer = httpx.get(console.services[service] + path, headers=auth(role), timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def no_serious_accessibility_violations(page: Any) -> None:
    """axe-core (vendored by axe-playwright-python) on the page as it stands."""
    try:
        from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
    except ImportError:
        return
    results = Axe().run(page)
    serious = [v["id"] for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert serious == [], results.generate_report()


def test_an_underwriter_approves_a_referred_request_partially_and_the_api_shows_the_amount(
    tab: Any, console: Console
) -> None:
    request = next(
        r for r in console.book.referred if r["requested_amount"]["amount"] == "2500000.00"
    )
    page = tab().sign_in("underwriter", "Li Wei")
    assert page.url.endswith("/underwriting/queue")
    no_serious_accessibility_violations(page)
    page.get_by_role("link", name="Müller Handels GmbH").first.click()
    page.wait_for_url(f"**/underwriting/requests/{request['id']}")
    assert page.get_by_text("Above the auto-approval ceiling").first.is_visible()
    no_serious_accessibility_violations(page)
    page.get_by_label("Approve partially").check()
    page.get_by_label("Amount to approve (EUR), for a partial approval").fill("1800000")
    page.get_by_label("Reason").fill("Equity supports 1.8m; reassess after the annual accounts")
    page.get_by_role("button", name="Record the decision").click()
    page.get_by_text("The decision is recorded.").wait_for()
    assert "€1,800,000.00" in page.locator("main dl.facts").first.inner_text()
    decided = api(console, "underwriting", f"/v1/limit-requests/{request['id']}", "underwriter")
    assert decided["status"] == "partially_approved"
    assert decided["decided_amount"] == {"amount": "1800000.00", "currency": "EUR"}
    assert decided["decided_by"] == "Li Wei"


def test_a_request_decided_meanwhile_is_explained_not_decided_twice(
    tab: Any, console: Console
) -> None:
    request = next(
        r for r in console.book.referred if r["requested_amount"]["amount"] == "300000.00"
    )
    path = f"/underwriting/requests/{request['id']}"
    first, second = tab(), tab()
    for person, name in ((first, "Li Wei"), (second, "Zhao Min")):
        person.sign_in("underwriter", name)
        person.open(path)
    first.page.get_by_label("Refuse").check()
    first.page.get_by_label("Reason").fill("grade 9 with three lawsuits")
    first.page.get_by_role("button", name="Record the decision").click()
    first.page.get_by_text("The decision is recorded.").wait_for()
    second.page.get_by_label("Approve partially").check()
    second.page.get_by_label("Amount to approve (EUR), for a partial approval").fill("100000")
    second.page.get_by_label("Reason").fill("small limit to start")
    second.page.get_by_role("button", name="Record the decision").click()
    second.page.get_by_text("This was decided meanwhile by someone else").wait_for()
    assert "Refused" in second.page.locator("main dl.facts").first.inner_text()
    second.screenshot("underwriting-already-decided")
    decided = api(console, "underwriting", f"/v1/limit-requests/{request['id']}", "underwriter")
    assert decided["status"] == "refused" and decided["decided_by"] == "Li Wei"


def test_a_claims_handler_takes_a_claim_from_under_review_to_paid(
    tab: Any, console: Console
) -> None:
    claim_id = console.book.claims["under_review"]
    person = tab()
    page = person.sign_in("claims_handler", "Wang Fang")
    assert page.url.endswith("/claims")
    person.screenshot("claims-list")
    no_serious_accessibility_violations(page)
    page.locator(f"a[href='/claims/{claim_id}']").click()
    page.wait_for_url(f"**/claims/{claim_id}")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Proof of delivery")).click()
    assert download.value.suggested_filename == "proof_of_delivery.pdf"
    page.get_by_role("button", name="Assess the claim").click()
    page.get_by_text("The claim is assessed.").wait_for()
    steps = page.locator("table.steps").inner_text()
    assert "Insured loss" in steps and "Deductible and threshold" in steps
    person.screenshot("claim-assessed")
    no_serious_accessibility_violations(page)
    page.get_by_label("Reason").fill("insolvency proven; invoices within the limit")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("The claim is approved.").wait_for()
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    page.get_by_text("The claim is paid.").wait_for()
    # The case is opened through the outbox: at once when collections answers in time, else by a
    # later delivery run once the first attempt's lease (60 s) ends, on a loaded machine; the page
    # shows it once it is there.
    handed_over = page.get_by_text("The debt has passed to collections")
    for _ in range(180):
        if handed_over.is_visible():
            break
        page.wait_for_timeout(500)
        page.reload()
    assert handed_over.is_visible()
    paid = api(console, "claims", f"/v1/claims/{claim_id}", "claims_handler")
    assert paid["status"] == "paid" and paid["collection_case_id"]
    assert paid["indemnity"] == {"amount": "107500.00", "currency": "EUR"}


def test_a_collector_records_a_payment_and_sees_its_allocation(tab: Any, console: Console) -> None:
    case_id = console.book.cases["legal"]
    person = tab()
    page = person.sign_in("collector", "Chen Jie")
    assert page.url.endswith("/cases")
    person.screenshot("cases-list")
    no_serious_accessibility_violations(page)
    page.locator(f"a[href='/cases/{case_id}']").click()
    page.wait_for_url(f"**/cases/{case_id}")
    page.get_by_label("Amount received (EUR)").fill("10000.50")
    page.get_by_role("button", name="Record a payment").first.click()
    page.get_by_text("The payment is recorded").wait_for()
    row = page.locator("#allocation").inner_text()
    person.screenshot("case-payment-allocated")
    no_serious_accessibility_violations(page)
    case = api(console, "collections", f"/v1/cases/{case_id}", "collector")
    [payment] = case["payments"]
    assert payment["amount"] == {"amount": "10000.50", "currency": "EUR"}
    allocation = payment["allocation"]
    total = sum(float(allocation[k]["amount"]) for k in ("fee", "insurer", "policyholder"))
    assert round(total, 2) == 10000.50
    for part in ("fee", "insurer", "policyholder"):
        amount = f"€{float(allocation[part]['amount']):,.2f}"
        assert amount in row, (amount, row)
    assert case["outstanding"] == {"amount": "38500.00", "currency": "EUR"}


def test_the_same_pages_in_chinese_from_the_browser_language_and_back_with_the_switch(
    tab: Any, console: Console
) -> None:
    person = tab("zh-CN")
    page = person.open("/sign-in")
    assert (
        page.locator("h1").inner_text() == "登录"
        and page.locator("html").get_attribute("lang") == "zh-CN"
    )
    person.sign_in("underwriter", "Li Wei")
    assert page.locator("h1").inner_text() == "待审限额申请"
    assert "CN¥" not in page.content() and "¥9,000,000.00" in page.content()
    person.screenshot("zh-queue")
    no_serious_accessibility_violations(page)
    request = console.book.referred[-1]
    person.open(f"/underwriting/requests/{request['id']}")
    assert "评级因素" in page.content() and "超过自动批准上限" in page.content()
    person.screenshot("zh-request")
    collector = tab("zh-CN")
    collector.sign_in("collector", "Chen Jie")
    collector.open(f"/cases/{console.book.cases['phone_collection']}")
    assert "电话催收" in collector.page.content() and "收款及其分配" in collector.page.content()
    collector.screenshot("zh-case")
    handler = tab("zh-CN")
    handler.sign_in("claims_handler", "Wang Fang")
    handler.open(f"/claims/{console.book.claims['assessed']}")
    assert "赔款计算步骤" in handler.page.content() and "免赔额与起赔点" in handler.page.content()
    handler.screenshot("zh-claim-assessed")
    page.get_by_role("button", name="English").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Grade factors" in page.content()


def test_the_queue_is_worked_by_keyboard_alone(tab: Any, console: Console) -> None:
    person = tab()
    page = person.open("/sign-in")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.focus("input[name=role][value=underwriter]")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.type("Keyboard Kim")
    page.keyboard.press("Enter")
    page.wait_for_url("**/underwriting/queue")
    page.wait_for_load_state("networkidle")
    rows = page.locator("[data-keyboard-list] a.row-link")
    assert rows.count() >= 2
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("j")
    second = rows.nth(1).get_attribute("href")
    assert page.evaluate("document.activeElement.getAttribute('href')") == second
    person.screenshot("queue-keyboard-focus")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{second}")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text().startswith("Limit request")


def test_a_refused_form_and_a_missing_page_are_shown_not_swallowed(
    tab: Any, console: Console
) -> None:
    """htmx swaps the page in from every answer, an error page too: a form whose CSRF cookie has
    expired (or another tab replaced) says so in the reader's language, and a link to a page
    that is not there shows the "not found" page, instead of nothing happening at all."""
    case_id = console.book.cases["reminder_letter"]
    person = tab("zh-CN")
    page = person.sign_in("collector", "Chen Jie")
    person.open(f"/cases/{case_id}")
    page.context.add_cookies([{"name": "tci_console_csrf", "value": "another.tab",
                               "url": console.url}])  # fmt: skip
    page.get_by_label("收款金额（EUR）").fill("12.34")
    page.get_by_role("button", name="登记收款").click()
    page.get_by_text("此表单已过期").wait_for()
    assert page.url.endswith(f"/cases/{case_id}")  # not the form's address, which reloads to 405
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert api(console, "collections", f"/v1/cases/{case_id}", "collector")["payments"] == []
    person.open("/cases")
    page.locator("main").evaluate("""main => {
        const gone = Object.assign(document.createElement("a"), {href: "/cases/x", id: "gone"});
        gone.textContent = "gone";
        main.append(gone);
        htmx.process(gone);
    }""")  # a link to a case that is not there (boosted, as every link of the console)
    page.locator("#gone").click()
    page.get_by_text("未找到").wait_for()
    # The browser itself logs each 4xx answer; nothing else may be logged.
    assert all("status of 40" in error for error in person.errors), person.errors
    person.errors.clear()
