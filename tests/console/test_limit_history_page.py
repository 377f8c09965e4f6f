"""A limit's history on the policy page shows, below the entries in force, the entries later ones
replaced before they started (the API's `superseded`), marked as not in force."""

from __future__ import annotations

import html
import re

import httpx

from shared.calendar import today as business_today
from tests.conftest import auth, unique
from tests.console.conftest import Console
from tests.console.test_session import csrf_of

UW = auth("underwriter")


def english_page(console: Console, role: str, path: str) -> str:
    with httpx.Client(base_url=console.url, headers={"Accept-Language": "en-GB"},
                      timeout=30) as client:  # fmt: skip
        signed = client.post("/sign-in", data={"csrf": csrf_of(client.get("/sign-in").text),
                                               "role": role, "name": "Li Na"})  # fmt: skip
        assert signed.status_code == 303
        page = client.get(path)
    assert page.status_code == 200
    return page.text


def test_an_entry_replaced_before_it_started_is_shown_in_the_history_as_not_in_force(
    console: Console,
) -> None:
    underwriting = console.services["underwriting"]
    policy_id = console.book.policies["eur"]["id"]
    buyer = httpx.post(f"{underwriting}/v1/buyers", headers=UW, timeout=10, json={
        "name": "Superseded Trading Ltd", "country": "DE",
        "registration_number": unique("HRB")}).json()  # fmt: skip
    today = business_today("Asia/Shanghai").isoformat()
    for amount, reason in (("120000", "migrated: first figure"),
                           ("180000", "migrated: corrected figure")):  # fmt: skip
        recorded = httpx.post(f"{underwriting}/v1/policies/{policy_id}/limits", headers=UW,
                              timeout=10, json={
            "buyer_id": buyer["id"], "amount": {"amount": amount, "currency": "EUR"},
            "effective_from": today, "reason": reason})  # fmt: skip
        assert recorded.status_code == 201, recorded.text
    limit = recorded.json()

    page = english_page(console, "underwriter", f"/underwriting/policies/{policy_id}")
    section = re.search(rf'<tbody id="limit-{limit["id"]}".*?</tbody>\s*</table>', page, re.S)
    assert section, "the limit is not on the policy page"
    superseded = re.findall(r'<tr class="superseded muted">(.*?)</tr>', section.group(0), re.S)
    assert len(superseded) == 1
    assert "not in force: replaced on" in superseded[0]
    assert "<del>€120,000.00</del>" in superseded[0]
    assert html.escape("migrated: first figure") in superseded[0]
