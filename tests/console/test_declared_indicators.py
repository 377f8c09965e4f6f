"""What a policyholder declared about a buyer is shown on the buyer's page beside what is
confirmed, and an underwriter confirms it there: the values then move the grade (domain.md,
Buyer: "Indicators that a policyholder supplies are kept as declared and move the grade only once
an underwriter confirms them"). Against the services and the console as real processes."""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from console.demo import WEAK
from services.underwriting.models import IndicatorDeclaration
from shared.calendar import today as business_today
from shared.db import build_engine, build_sessionmaker, new_id, utcnow
from tests.conftest import Services, auth, backend, unique
from tests.console.conftest import Console, browser_missing
from tests.console.test_browser import no_serious_accessibility_violations

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(browser_missing() is not None,
                       reason=f"browser tests skipped: {browser_missing()}"),
]  # fmt: skip


def call(console: Console, method: str, path: str, headers: dict[str, str],
         body: Any = None, expect: int = 200) -> Any:  # fmt: skip
    answer = httpx.request(method, console.services["underwriting"] + path, json=body,
                           headers=headers, timeout=30)  # fmt: skip
    assert answer.status_code == expect, answer.text
    return answer.json()


def declared_buyer(console: Console) -> dict[str, Any]:
    """A buyer a policyholder registered with nothing confirmed, then declared indicators on."""
    holder = auth("policyholder", unique("ph-declares"))
    buyer = call(console, "POST", "/v1/buyers", holder, {
        "name": "Declared Trading GmbH", "country": "DE",
        "registration_number": unique("HRB")}, expect=201)  # fmt: skip
    call(console, "POST", f"/v1/buyers/{buyer['id']}/indicators", holder, {
        "current_ratio": "0.7", "overdue_ratio": "0.35", "litigation_count": 3,
        "equity": {"amount": "-50000.00", "currency": "EUR"}})  # fmt: skip
    return buyer


def test_an_underwriter_sees_the_declared_indicators_and_confirms_them_in_chinese(
    tab: Any, console: Console
) -> None:
    buyer = declared_buyer(console)
    before = call(console, "GET", f"/v1/buyers/{buyer['id']}", auth("underwriter"))
    assert before["indicators_confirmed"] is False
    person = tab("zh-CN")
    person.sign_in("underwriter", "Zhao Min")
    page = person.open(f"/underwriting/buyers/{buyer['id']}")
    declared = page.locator("#declared-indicators")
    assert declared.locator("h2").inner_text() == "投保人申报、尚未确认的指标"
    rows = {r.split("\t")[0]: r.split("\t")[1:] for r in
            declared.locator("tbody tr").all_inner_texts()}  # fmt: skip
    assert rows["流动比率"] == ["—", "0.7"]
    assert rows["逾期比例"] == ["—", "35%"]
    assert rows["诉讼与处罚（12 个月）"] == ["—", "3"]
    assert rows["净资产"][1].startswith("-€50,000.00")
    assert rows["年营业收入"] == ["—", "—"]
    no_serious_accessibility_violations(page)

    declared.get_by_role("button", name="确认申报的数值").click()
    page.get_by_text("申报的数值已确认，买方已重新评级。").wait_for()
    assert page.locator("p.notice").first.inner_text() == "申报的数值已确认，买方已重新评级。"
    assert page.locator("#indicators-effect").inner_text() == "因此变动的限额：0 个。"
    assert page.locator("#declared-indicators").count() == 0
    after = call(console, "GET", f"/v1/buyers/{buyer['id']}", auth("underwriter"))
    assert after["indicators_confirmed"] is True
    assert after["indicators"]["current_ratio"] == "0.7"
    assert after["grade"] > before["grade"]  # weak figures, now counted
    shown = page.locator("dl.facts").inner_text()
    assert f"{after['grade']}" in shown and "是" in shown
    person.open(f"/underwriting/buyers/{declared_buyer(console)['id']}")
    person.screenshot(
        "zh-underwriting-buyer-declared"
    )  # last: a screenshot before a boosted form has htmx set a style the CSP refuses


def test_confirmed_indicators_that_halve_a_limit_are_followed_by_the_limits_they_changed(
    tab: Any, console: Console
) -> None:
    """Declared figures bad enough for the halving grade, confirmed: the buyer's limit is halved
    (the answer's `limit_changes`), and the page says how many limits the new grade changed, as
    after a signal."""
    today = business_today("Asia/Shanghai")
    holder = auth("policyholder", unique("ph-declares"))
    buyer = call(console, "POST", "/v1/buyers", holder, {
        "name": "Halved Trading GmbH", "country": "DE",
        "registration_number": unique("HRB")}, expect=201)  # fmt: skip
    call(console, "POST", f"/v1/policies/{console.book.policies['eur']['id']}/limits",
         auth("underwriter"), {"buyer_id": buyer["id"],
                               "amount": {"amount": "200000", "currency": "EUR"},
                               "effective_from": (today - dt.timedelta(days=30)).isoformat(),
                               "reason": "migrated"}, expect=201)  # fmt: skip
    call(console, "POST", f"/v1/buyers/{buyer['id']}/indicators", holder, {
        **WEAK, "equity": {"amount": "-50000.00", "currency": "EUR"}})  # fmt: skip
    person = tab()
    person.sign_in("underwriter", "Li Wei")
    page = person.open(f"/underwriting/buyers/{buyer['id']}")
    page.get_by_role("button", name="Confirm the declared values").click()
    page.get_by_text("The declared values are confirmed and the buyer graded again.").wait_for()
    assert page.locator("#indicators-effect").inner_text() == "Limits changed because of it: 1."
    limits = call(console, "GET", f"/v1/policies/{console.book.policies['eur']['id']}/limits"
                  "?limit=500", auth("underwriter"))["items"]  # fmt: skip
    [limit] = [item for item in limits if item["buyer_id"] == buyer["id"]]
    assert [h["amount"]["amount"] for h in limit["history"]] == ["200000.00", "100000.00"]


def left_by_un0016(services: Services, buyer_id: str, indicators: dict[str, Any]) -> None:
    """A declaration as migration un0016 left a buyer's one declared slot, written straight into
    the services' database (no route makes one): pending, unattributed (`policyholder_id` null).
    Written from a thread of its own: Playwright's sync API holds this one's event loop."""
    assert services.database is not None

    async def insert() -> None:
        engine = build_engine(backend().url_for(services.database or "", "underwriting"),
                              pool_size=1)  # fmt: skip
        try:
            async with build_sessionmaker(engine)() as session:
                now = utcnow()
                session.add(IndicatorDeclaration(
                    id=new_id("dcl"), created_at=now, buyer_id=buyer_id, policyholder_id=None,
                    indicators=indicators, status="pending", declared_by="migration:un0016",
                    declared_at=now))  # fmt: skip
                await session.commit()
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, insert()).result()


def test_an_underwriter_confirms_the_unattributed_declaration_by_naming_it(
    tab: Any, console: Console, services: Services
) -> None:
    """Beside a policyholder's own pending declaration, the one un0016 kept unattributed: the
    route refuses to guess which one is meant (409 `declarer-required`), and the console's
    button for the unattributed one names it (a null `policyholder_id`): that one is confirmed,
    the policyholder's stays pending."""
    holder_id = unique("ph-declares")
    holder, underwriter = auth("policyholder", holder_id), auth("underwriter")
    buyer = call(console, "POST", "/v1/buyers", holder, {
        "name": "Unattributed Trading GmbH", "country": "DE",
        "registration_number": unique("HRB")}, expect=201)  # fmt: skip
    left_by_un0016(services, buyer["id"], {"current_ratio": "0.7", "litigation_count": 3})
    call(console, "POST", f"/v1/buyers/{buyer['id']}/indicators", holder,
         {"current_ratio": "3.0"})  # fmt: skip
    unnamed = call(console, "POST", f"/v1/buyers/{buyer['id']}/indicators/confirmation",
                   underwriter, expect=409)  # fmt: skip
    assert unnamed["type"].endswith("declarer-required")
    assert set(unnamed["pending_declarers"]) == {None, holder_id}

    person = tab()
    person.sign_in("underwriter", "Li Wei")
    page = person.open(f"/underwriting/buyers/{buyer['id']}")
    declared = page.locator("#declared-indicators")
    assert declared.locator("thead th").all_inner_texts()[2:] == [
        "Declared · —", f"Declared · {holder_id}"]  # fmt: skip
    declared.get_by_role("button", name="Confirm the declared values · —", exact=True).click()
    page.get_by_text("The declared values are confirmed and the buyer graded again.").wait_for()
    after = call(console, "GET", f"/v1/buyers/{buyer['id']}", underwriter)
    assert after["indicators"]["current_ratio"] == "0.7"
    assert after["indicators"]["litigation_count"] == 3
    assert [d["policyholder_id"] for d in after["declarations"]] == [holder_id]
    assert after["indicators_confirmed"] is False
    buttons = page.locator("#declared-indicators button").all_inner_texts()
    assert buttons == ["Confirm the declared values"]  # the policyholder's, alone now
