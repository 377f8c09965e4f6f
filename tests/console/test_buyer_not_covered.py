"""A buyer the insurer does not cover (insolvent, sanctioned — it or its country — or not
insurable: underwriting's `why_not_covered`) takes no new or higher limit from anyone, only a
refusal or a cut (422 `buyer-not-covered`). The console says so before the underwriter acts, on
the request's decision form and on the limit change form, and explains the refusal in the reader's
language when the form is sent anyway; the buyer's page shows an insolvency as the yes it is, the
grade coming from it and not from the points; and a buyer's country reads alike on the request and
the buyer page. Against the services and the console as real processes."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import httpx
import pytest

from console.demo import MIDDLING, Loader, money
from console.underwriting import buyer_standing
from shared.calendar import today as business_today
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import auth, unique
from tests.console.conftest import Console
from tests.console.test_idempotency import forms_of
from tests.console.test_refusals_explained import alert_of, sent_back, signed_in

ZONE = "Asia/Shanghai"  # the settings' default business time zone (TCI_BUSINESS_TZ)
UW = auth("underwriter")


def underwriting(console: Console, method: str, path: str, body: Any = None,
                 expect: int = 200) -> Any:  # fmt: skip
    answer = httpx.request(method, console.services["underwriting"] + path, json=body,
                           headers=UW, timeout=30)  # fmt: skip
    assert answer.status_code == expect, answer.text
    return answer.json()


def standing_of(page: str) -> str:
    found = re.search(r'<div class="standing" role="note" id="buyer-standing">(.*?)</div>', page,
                      re.S)  # fmt: skip
    assert found, "the page says nothing of the buyer's standing"
    return found.group(1)


@pytest.fixture(scope="module")
def sanctioned_request(console: Console) -> dict[str, Any]:
    """A request referred to an underwriter (a buyer of grade 6 asking above its ceiling), its
    buyer put under sanctions since."""
    loader = Loader(console.services, DEVELOPMENT_JWT_SECRET, business_today(ZONE))
    try:
        policy = loader.policy("ph-sanctioned", "EUR")
        buyer = loader.buyer("Listed Textiles SARL", "FR", **MIDDLING, equity=money("6000000"))
        asked = loader.call("underwriting", "POST", f"/v1/policies/{policy['id']}/limit-requests",
                            "policyholder", policy["policyholder_id"],
                            json={"buyer_id": buyer["id"], "amount": money("150000"),
                                  "payment_terms_days": 60})  # fmt: skip
    finally:
        loader.close()
    assert asked["status"] == "referred"
    underwriting(console, "POST", "/v1/sanctions", {"buyer_id": buyer["id"],
                                                    "reason": "listed today"}, expect=201)  # fmt: skip
    return {"page": f"/underwriting/requests/{asked['id']}", "buyer": buyer}


@pytest.mark.parametrize(("language", "sanctioned", "only", "country", "refused"), [
    ("en", "sanctioned (the buyer or its country)", "Only a refusal is possible",
     "France (FR)", "The buyer is not covered (insolvent, sanctioned"),
    ("zh-CN", "受到制裁（买方本身或其所在国家）", "只能拒绝", "法国 (FR)",
     "该买方不在承保范围内"),
])  # fmt: skip
def test_the_decision_form_says_a_sanctioned_buyer_takes_only_a_refusal_and_explains_one_sent(
    console: Console, sanctioned_request: dict[str, Any], language: str, sanctioned: str,
    only: str, country: str, refused: str,
) -> None:  # fmt: skip
    page = sanctioned_request["page"]
    with signed_in(console, "underwriter", language) as client:
        shown = client.get(page).text
        standing = standing_of(shown)
        assert html.escape(sanctioned) in standing and only in standing
        # the country as the buyer's page writes it, not its bare code
        assert f"<dd>{country}</dd>" in shown
        buyer_page = client.get(f"/underwriting/buyers/{sanctioned_request['buyer']['id']}").text
        assert f"<dd>{country}</dd>" in buyer_page
        answer = sent_back(client, f"{page}/decision", page, decision="approve",
                           reason="good payer")  # fmt: skip
    alert = alert_of(answer.text)
    assert refused in alert and "buyer-not-covered" not in alert
    decided = underwriting(console, "GET", f"/v1/limit-requests/{page.rsplit('/', 1)[1]}")
    assert decided["status"] == "referred"


@pytest.fixture(scope="module")
def insolvent_limit(console: Console) -> dict[str, Any]:
    """A limit of 200,000 in force for two months on a buyer that filed for insolvency
    yesterday (grade 10)."""
    today = business_today(ZONE)
    buyer = underwriting(console, "POST", "/v1/buyers", {
        "name": "Bankrupt Handels GmbH", "country": "DE", "registration_number": unique("HRB"),
        "indicators": {**MIDDLING, "equity": money("5000000")}}, expect=201)  # fmt: skip
    limit = underwriting(console, "POST",
                         f"/v1/policies/{console.book.policies['eur']['id']}/limits",
                         {"buyer_id": buyer["id"], "amount": money("200000"),
                          "effective_from": (today - dt.timedelta(days=60)).isoformat(),
                          "reason": "migrated"}, expect=201)  # fmt: skip
    underwriting(console, "POST", f"/v1/buyers/{buyer['id']}/signals", {
        "kind": "insolvency_filing", "observed_on": (today - dt.timedelta(days=1)).isoformat(),
        "details": "filed at the Amtsgericht"}, expect=201)  # fmt: skip
    assert underwriting(console, "GET", f"/v1/buyers/{buyer['id']}")["grade"] == 10
    return {"limit": limit, "buyer": buyer}


@pytest.mark.parametrize(("language", "insolvent", "only", "refused"), [
    ("en", "insolvent", "Only a reduction or a withdrawal is possible",
     "The buyer is not covered (insolvent, sanctioned"),
    ("zh-CN", "已破产", "只能降低或撤销限额", "该买方不在承保范围内"),
])  # fmt: skip
def test_the_limit_change_form_says_an_insolvent_buyer_takes_only_a_cut_and_explains_a_raise(
    console: Console, insolvent_limit: dict[str, Any], language: str, insolvent: str, only: str,
    refused: str,
) -> None:  # fmt: skip
    form = f"/underwriting/limits/{insolvent_limit['limit']['id']}/change"
    with signed_in(console, "underwriter", language) as client:
        standing = standing_of(client.get(form).text)
        assert insolvent in standing and only in standing
        answer = sent_back(client, form, form, change="increase", amount="900000",
                           reason="more business")  # fmt: skip
    alert = alert_of(answer.text)
    assert refused in alert and "buyer-not-covered" not in alert


@pytest.mark.parametrize(("language", "yes", "rule"), [
    ("en", "Yes", "The buyer is insolvent: that alone makes its grade 10, whatever the points"),
    ("zh-CN", "是", "该买方已破产：仅此一项即使其评级为 10，与分数无关"),
])  # fmt: skip
def test_the_buyers_page_shows_the_insolvency_as_yes_and_the_grade_as_coming_from_it(
    console: Console, insolvent_limit: dict[str, Any], language: str, yes: str, rule: str
) -> None:
    with signed_in(console, "underwriter", language) as client:
        page = client.get(f"/underwriting/buyers/{insolvent_limit['buyer']['id']}").text
    factors = re.search(r'<table class="list factors">(.*?)</table>', page, re.S)
    assert factors
    insolvency = "Insolvency" if language == "en" else "破产"
    assert re.search(rf"<td>{insolvency}</td>\s*<td class=\"num\">{yes}</td>", factors.group(1))
    said = re.search(r'<p class="hint" id="grade-rule">([^<]*)</p>', page)
    assert said and said.group(1).startswith(rule), said
    assert "which give grade 10" not in page and "对应评级 10" not in page


def test_a_covered_buyers_forms_say_nothing_of_its_standing(console: Console) -> None:
    request = console.book.referred[0]
    with signed_in(console, "underwriter", "en") as client:
        page = client.get(f"/underwriting/requests/{request['id']}").text
        form = client.get(f"/underwriting/limits/{console.book.limits['mueller']}/change").text
    assert 'id="buyer-standing"' not in page and 'id="buyer-standing"' not in form
    assert forms_of(page)  # the decision form is there


# ---------------------------------------------------------------- the standing, from its reads

COMPANY = {"id": "buy_1", "country": "DE", "legal_form": "company", "grade": 4,
           "grade_factors": [], "insolvent_since": None}  # fmt: skip
ON = dt.date(2026, 11, 25)


@pytest.mark.parametrize(("buyer", "sanctions", "related", "reasons", "unknown"), [
    (COMPANY, {"items": [], "next_cursor": None}, False, [], False),
    ({**COMPANY, "legal_form": "individual"}, {"items": [], "next_cursor": None}, False,
     ["not_insurable"], False),
    (COMPANY, {"items": [], "next_cursor": None}, True, ["not_insurable_related"], False),
    (COMPANY, {"items": [{"country": "DE", "buyer_id": None}], "next_cursor": None}, False,
     ["sanctioned"], False),
    (COMPANY, {"items": [{"country": None, "buyer_id": "buy_1"}], "next_cursor": "c"}, False,
     ["sanctioned"], False),
    (COMPANY, {"items": [{"country": "FR", "buyer_id": None}], "next_cursor": "c"}, False, [],
     True),  # the list read was not whole: whether it is sanctioned is not said
    (COMPANY, None, False, [], True),  # the list could not be read
    ({**COMPANY, "grade": 10, "grade_factors": [{"factor": "insolvency", "value": "true"}]},
     {"items": [], "next_cursor": None}, False, ["insolvent"], False),
    ({**COMPANY, "insolvent_since": "2026-11-24"}, {"items": [], "next_cursor": None}, False,
     ["insolvent"], False),
    ({**COMPANY, "insolvent_since": "2026-11-26"}, {"items": [], "next_cursor": None}, False, [],
     False),
])  # fmt: skip
def test_a_buyers_standing_is_read_as_underwriting_decides_it(
    buyer: dict[str, Any], sanctions: dict[str, Any] | None, related: bool, reasons: list[str],
    unknown: bool,
) -> None:  # fmt: skip
    assert buyer_standing(buyer, sanctions, ON, related=related) == {
        "reasons": reasons, "sanctions_unknown": unknown}  # fmt: skip
