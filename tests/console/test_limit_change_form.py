"""The limit-change form offers an increase, a reduction and a withdrawal, each with its own
date bound (domain.md, Limit changes: "An increase may take effect today"; a reduction or a
withdrawal from tomorrow, by default after the reduction notice): an increase entered today is
recorded from today, as an increase; an "increase" below the amount in force is sent back, never
recorded as a reduction. In Chromium, against the services and the console as real processes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from shared.calendar import today as business_today
from tests.conftest import auth, unique
from tests.console.conftest import Console, browser_missing

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(browser_missing() is not None,
                       reason=f"browser tests skipped: {browser_missing()}"),
]  # fmt: skip

UW = auth("underwriter")


def recorded_limit(console: Console, amount: str) -> dict[str, Any]:
    """A limit of `amount` on a new buyer under the demo's EUR policy, in force since a week."""
    underwriting = console.services["underwriting"]
    buyer = httpx.post(f"{underwriting}/v1/buyers", headers=UW, timeout=10, json={
        "name": "Raised Trading GmbH", "country": "DE",
        "registration_number": unique("HRB")}).json()  # fmt: skip
    since = business_today("Asia/Shanghai") - dt.timedelta(days=7)
    recorded = httpx.post(
        f"{underwriting}/v1/policies/{console.book.policies['eur']['id']}/limits", headers=UW,
        timeout=10, json={"buyer_id": buyer["id"], "amount": {"amount": amount, "currency": "EUR"},
                          "effective_from": since.isoformat(), "reason": "migrated book"})  # fmt: skip
    assert recorded.status_code == 201, recorded.text
    limit: dict[str, Any] = recorded.json()
    return limit


def history(console: Console, limit_id: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{console.services['underwriting']}/v1/limits/{limit_id}", headers=UW,
                      timeout=10)  # fmt: skip
    entries: list[dict[str, Any]] = found.json()["history"]
    return entries


def test_an_increase_takes_effect_today_and_a_reduction_is_bounded_from_tomorrow(
    tab: Any, console: Console
) -> None:
    today = business_today("Asia/Shanghai")
    notice = console.book.policies["eur"]["reduction_notice_days"]
    limit = recorded_limit(console, "100000")
    person = tab("zh-CN")
    person.sign_in("underwriter", "Zhao Min")
    page = person.open(f"/underwriting/limits/{limit['id']}/change")
    offered = page.locator("input[name=change]")
    assert [offered.nth(i).get_attribute("value") for i in range(offered.count())] == [
        "increase",
        "reduce",
        "withdraw",
    ]
    date = page.get_by_label("生效日期")
    # A reduction is chosen first: from tomorrow, proposed once the notice has run.
    assert page.get_by_label("降低限额").is_checked()
    assert date.get_attribute("min") == (today + dt.timedelta(days=1)).isoformat()
    assert date.input_value() == (today + dt.timedelta(days=notice)).isoformat()
    page.get_by_label("提高限额").check()
    assert date.get_attribute("min") == today.isoformat()
    assert date.input_value() == today.isoformat()
    page.get_by_label("撤销限额").check()
    assert date.get_attribute("min") == (today + dt.timedelta(days=1)).isoformat()
    assert date.input_value() == (today + dt.timedelta(days=notice)).isoformat()

    # An "increase" below the amount in force is sent back, not recorded as a reduction.
    page.get_by_label("提高限额").check()
    page.get_by_label("新金额（EUR）").fill("80,000")
    page.get_by_label("理由").fill("accounts improved")
    page.get_by_role("button", name="记录变更").click()
    page.get_by_text("提高限额需要高于现行限额的新金额").wait_for()
    assert [h["amount"]["amount"] for h in history(console, limit["id"])] == ["100000.00"]

    page.get_by_label("提高限额").check()
    page.get_by_label("新金额（EUR）").fill("150,000")
    page.get_by_label("生效日期").fill(today.isoformat())
    page.get_by_label("理由").fill("accounts improved")
    page.get_by_role("button", name="记录变更").click()
    page.get_by_text("限额变更已记录").wait_for()
    [raised] = [h for h in history(console, limit["id"]) if h["source"] == "change"]
    assert raised["amount"]["amount"] == "150000.00"
    assert raised["effective_from"] == today.isoformat()


def test_a_change_that_replaces_a_scheduled_one_says_so_in_its_notice(
    tab: Any, console: Console
) -> None:
    """A reduction from tomorrow replaces the one scheduled after the notice period (the
    answer's `cancelled`): the notice after the form names the amount and the date that will not
    take effect, as the console writes money and dates."""
    today = business_today("Asia/Shanghai")
    limit = recorded_limit(console, "100000")
    scheduled = httpx.post(
        f"{console.services['underwriting']}/v1/limits/{limit['id']}/changes", headers=UW,
        timeout=10, json={"new_amount": {"amount": "60000.50", "currency": "EUR"},
                          "reason": "trim after the notice"})  # fmt: skip
    assert scheduled.status_code in (200, 201), scheduled.text
    later = dt.date.fromisoformat(scheduled.json()["effective_from"])
    assert later > today + dt.timedelta(days=1)
    person = tab()
    person.sign_in("underwriter", "Zhao Min")
    page = person.open(f"/underwriting/limits/{limit['id']}/change")
    page.get_by_label("Reduce the limit").check()
    page.get_by_label("New amount (EUR)").fill("50,000")
    page.get_by_label("Effective from").fill((today + dt.timedelta(days=1)).isoformat())
    page.get_by_label("Reason").fill("court judgment")
    page.get_by_role("button", name="Record the change").click()
    page.get_by_text("The limit change is recorded").wait_for()
    cancelled = page.locator("p.notice .cancelled").all_inner_texts()
    assert cancelled == [f"The change to €60,000.50 scheduled for {later:%-d %b %Y} is "
                         "cancelled: it will not take effect."]  # fmt: skip
    person.open(f"/underwriting/policies/{console.book.policies['eur']['id']}")
    assert page.locator("p.notice").count() == 0  # shown once


def test_a_replaced_scheduled_change_is_named_in_chinese_too(console: Console) -> None:
    from tests.console.test_idempotency import forms_of
    from tests.console.test_refusals_explained import signed_in

    today = business_today("Asia/Shanghai")
    limit = recorded_limit(console, "100000")
    scheduled = httpx.post(
        f"{console.services['underwriting']}/v1/limits/{limit['id']}/changes", headers=UW,
        timeout=10, json={"new_amount": {"amount": "70000", "currency": "EUR"},
                          "reason": "trim after the notice"}).json()  # fmt: skip
    form = f"/underwriting/limits/{limit['id']}/change"
    with signed_in(console, "underwriter", "zh-CN") as client:
        hidden = forms_of(client.get(form).text)[form]
        done = client.post(form, data={**hidden, "change": "withdraw", "reason": "insolvency",
                                       "effective_from": (today + dt.timedelta(days=1)).isoformat()})  # fmt: skip
        assert done.status_code == 303, done.text
        shown = client.get(done.headers["location"]).text
    later = dt.date.fromisoformat(scheduled["effective_from"])
    day = f"{later.year}年{later.month}月{later.day}日"
    assert f"原定于{day}生效的€70,000.00限额变更已取消，不会生效。" in shown
