"""Codes a person would have to decode are said in words (zh-CN): a grade or limit entry the
engine or another service recorded names it (自动决策引擎, 理赔系统), never `engine` or `claims`; a
signal's policy is a link labelled with its policyholder, currency and period, not its raw id;
the claims list names each claim by its reference (its id). Against the services and the
console as real processes."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from shared.calendar import today as business_today
from tests.conftest import auth, token, unique
from tests.console.conftest import Console
from tests.console.test_refusals_explained import signed_in


def call(console: Console, path: str, headers: dict[str, str], body: Any) -> Any:
    answer = httpx.post(console.services["underwriting"] + path, json=body, headers=headers,
                        timeout=30)  # fmt: skip
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_who_recorded_an_entry_and_a_signals_policy_are_said_in_words(console: Console) -> None:
    eur = console.book.policies["eur"]
    holder = eur["policyholder_id"]
    buyer = call(console, "/v1/buyers", auth("underwriter"), {
        "name": "Worded Trading GmbH", "country": "DE", "registration_number": unique("HRB"),
        "indicators": {"current_ratio": "2.5", "overdue_ratio": "0.01", "litigation_count": 0,
                       "management_changes_12m": 0, "dso_days": "40",
                       "dso_prior_year_days": "40",
                       "equity": {"amount": "9000000.00", "currency": "EUR"}}})  # fmt: skip
    granted = call(console, f"/v1/policies/{eur['id']}/limit-requests",
                   auth("policyholder", holder),
                   {"buyer_id": buyer["id"], "amount": {"amount": "20000.00", "currency": "EUR"},
                    "payment_terms_days": 60})  # fmt: skip
    assert granted["status"] == "approved"
    claims = {"Authorization": f"Bearer {token('service', subject='claims')}"}
    call(console, f"/v1/buyers/{buyer['id']}/signals", claims, {
        "kind": "overdue_notified", "observed_on": business_today("Asia/Shanghai").isoformat(),
        "policy_id": eur["id"], "details": "an overdue notified"})  # fmt: skip

    with signed_in(console, "underwriter", "zh-CN") as client:
        policy_page = client.get(f"/underwriting/policies/{eur['id']}").text
        buyer_page = client.get(f"/underwriting/buyers/{buyer['id']}").text
    limit = re.search(rf'<tbody id="limit-{granted["limit_id"]}".*?</tbody>\s*</table>',
                      policy_page, re.S)  # fmt: skip
    assert limit is not None and "· 自动决策引擎</td>" in limit.group(0)
    assert "· engine<" not in limit.group(0)
    grades = re.search(r'id="grade-history-table".*?</table>', buyer_page, re.S)
    assert grades is not None and "· 理赔系统</td>" in grades.group(0)
    signals = re.search(r'id="signals-table".*?</table>', buyer_page, re.S)
    assert signals is not None
    assert "· 理赔系统</td>" in signals.group(0) and "· claims<" not in signals.group(0)
    link = re.search(rf'<a href="/underwriting/policies/{eur["id"]}">([^<]*)</a>',
                     signals.group(0))  # fmt: skip
    assert link is not None
    assert html.unescape(link.group(1)).startswith(f"{holder} · EUR · ")
    assert eur["id"] not in link.group(1)


def test_the_claims_list_names_each_claim_by_its_reference(console: Console) -> None:
    with signed_in(console, "claims_handler", "zh-CN") as client:
        page = client.get("/claims", params={"status": "all"}).text
    links = re.findall(r'<a class="row-link" href="/claims/([^"]+)">([^<]*)</a>', page)
    assert links and all(shown == claim_id for claim_id, shown in links)
    assert set(console.book.claims.values()) <= {claim_id for claim_id, _ in links}
