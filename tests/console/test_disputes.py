"""Disputes in the console, in Debian's Chromium: a claims handler sees a claim's disputes (who
raised each, the grounds, the invoices and amounts disputed, how the settled one was resolved),
resolves the open one, and the claims API then shows it resolved and the claim resumed; a second
handler's form, left open meanwhile, gets the translated "resolved meanwhile" answer in zh-CN."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import Console, browser_missing
from tests.console.test_browser import api, no_serious_accessibility_violations

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(browser_missing() is not None,
                       reason=f"browser tests skipped: {browser_missing()}"),
]  # fmt: skip


def test_a_claims_handler_resolves_an_open_dispute_and_a_stale_form_is_explained_in_chinese(
    tab: Any, console: Console
) -> None:
    claim_id = console.book.claims["on_hold"]
    path = f"/claims/{claim_id}"
    before = api(console, "claims", f"/v1/claims/{claim_id}", "claims_handler")
    assert before["status"] == "on_hold"
    settled, held = before["disputes"]
    assert settled["outcome"] == "policyholder" and held["outcome"] is None
    amount_of = {i["number"]: i["amount"]["amount"] for i in before["invoices"]}
    assert amount_of[held["invoice_numbers"][0]] == "45000.00"

    handler, colleague = tab(), tab("zh-CN")
    page = handler.sign_in("claims_handler", "Wang Fang")
    colleague.sign_in("claims_handler", "Zhao Min")
    colleague.open(path)  # its form stays open while Wang Fang resolves the dispute
    handler.open(path)
    assert "On hold" in page.locator("main dl.facts").first.inner_text()
    shown = page.locator(f"#dispute-{held['id']}")
    text = shown.inner_text()
    for expected in ("Open", "Raised by", "demo-policyholder", held["description"],
                     f"{held['invoice_numbers'][0]} (€45,000.00)", "Amount disputed"):  # fmt: skip
        assert expected in text, (expected, text)
    earlier = page.locator(f"#dispute-{settled['id']}").inner_text()
    for expected in ("Settled for the policyholder", "demo-claims_handler", "€80,000.00",
                     "Surveyor: packed correctly"):  # fmt: skip
        assert expected in earlier, (expected, earlier)
    assert page.locator(f"#dispute-{settled['id']} form").count() == 0  # resolved: no form
    # Screenshots and axe-core leave empty `style` attributes on the inputs (Playwright hides
    # the caret), which htmx's settling would copy onto the next page's inputs of the same id,
    # a CSP report no person's browser makes: a third tab, which submits nothing, is looked at.
    reader = tab()
    reader.sign_in("claims_handler", "Reader")
    no_serious_accessibility_violations(reader.open(path))
    reader.screenshot("claim-disputes")

    shown.get_by_label("Settled for the buyer").check()
    resolved_on = shown.get_by_label("Resolved on").input_value()
    shown.get_by_label("Reason for the outcome").fill("Delivery note signed for 1,200 units only")
    shown.get_by_role("button", name="Resolve the dispute").click()
    page.get_by_text("The dispute is resolved.").wait_for()
    assert "Under review" in page.locator("main dl.facts").first.inner_text()
    assert page.locator("#disputes form").count() == 0
    assert "Settled for the buyer" in page.locator(f"#dispute-{held['id']}").inner_text()
    handler.screenshot("claim-dispute-resolved")

    after = api(console, "claims", f"/v1/claims/{claim_id}/disputes/{held['id']}",
                "claims_handler")  # fmt: skip
    assert (after["outcome"], after["resolved_by"], after["resolved_on"], after["note"]) == (
        "buyer",
        "Wang Fang",
        resolved_on,
        "Delivery note signed for 1,200 units only",
    )
    assert after["claim_status"] == "under_review"
    claim = api(console, "claims", f"/v1/claims/{claim_id}", "claims_handler")
    assert claim["status"] == "under_review" and claim["assessment"] is None

    late = colleague.page
    form = late.locator(f"#dispute-{held['id']}")
    form.get_by_label("裁定有利于投保人").check()
    form.get_by_label("裁定理由").fill("买方已签收全部货物")
    form.get_by_role("button", name="解决争议").click()
    late.get_by_text("此争议已由他人在此期间解决").wait_for()
    assert late.locator("html").get_attribute("lang") == "zh-CN"
    now = late.locator(f"#dispute-{held['id']}").inner_text()
    for expected in ("裁定有利于买方", "争议金额", "€45,000.00", "Wang Fang", "解决人"):
        assert expected in now, (expected, now)
    assert late.locator("#disputes form").count() == 0
    colleague.screenshot("zh-claim-dispute-resolved-meanwhile")
    no_serious_accessibility_violations(late)
    unchanged = api(console, "claims", f"/v1/claims/{claim_id}/disputes/{held['id']}",
                    "claims_handler")  # fmt: skip
    assert (unchanged["outcome"], unchanged["resolved_by"]) == ("buyer", "Wang Fang")
