"""What the request, buyer, case and claim pages show as the services answer it: a decision's
reason in words (an underwriter's too), moments in the business time zone with the zone named,
grade factors formatted alike on every page (fractions as percentages, equity as money), and
date inputs bounded as the services' rules bound them."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from console.demo import MIDDLING, Loader, money
from console.i18n import Translator
from services.underwriting.rules.limit_changes import earliest_reduction_date
from shared.calendar import today as business_today
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import auth
from tests.console.conftest import Console
from tests.console.test_idempotency import forms_of, query_of
from tests.console.test_refusals_explained import signed_in

ZONE = "Asia/Shanghai"  # the settings' default business time zone (TCI_BUSINESS_TZ)


def test_a_moment_is_shown_in_the_business_time_zone_with_the_zone_named() -> None:
    moment = "2026-11-25T20:34:23Z"
    assert Translator("en").datetime(moment) == "26 Nov 2026, 04:34:23 (China Time)"
    assert Translator("zh-CN").datetime(moment) == "2026年11月26日 04:34:23（中国时间）"
    assert Translator("en", "Europe/Paris").datetime(moment).startswith("25 Nov 2026, 21:34:23")
    assert Translator("en").date(moment) == "26 Nov 2026"  # a moment's day is the zone's
    assert Translator("en").date("2026-11-25") == "25 Nov 2026"


@pytest.fixture(scope="module")
def decided(console: Console) -> dict[str, Any]:
    """A referred request of its own (a buyer of grade 6 asking above its ceiling), decided
    through the console: a partial approval."""
    loader = Loader(console.services, DEVELOPMENT_JWT_SECRET, business_today(ZONE))
    try:
        policy = loader.policy("ph-zone", "EUR")
        buyer = loader.buyer("Zone Textiles SA", "FR", **MIDDLING, equity=money("6000000"))
        asked = loader.call("underwriting", "POST", f"/v1/policies/{policy['id']}/limit-requests",
                            "policyholder", policy["policyholder_id"],
                            json={"buyer_id": buyer["id"], "amount": money("150000"),
                                  "payment_terms_days": 60})  # fmt: skip
    finally:
        loader.close()
    assert asked["status"] == "referred"
    page = f"/underwriting/requests/{asked['id']}"
    with signed_in(console, "underwriter", "en") as client:
        form = forms_of(client.get(page).text)[f"{page}/decision"]
        done = client.post(f"{page}/decision", data={**form, "decision": "partially_approve",
                                                      "amount": "100,000", "reason": "thin"})  # fmt: skip
        assert query_of(done) == {"notice": "decided"}
    return {"page": page, "buyer": buyer, "id": asked["id"]}


@pytest.mark.parametrize(("language", "label", "zone"), [
    ("en", "Partially approved by an underwriter", " (China Time)"),
    ("zh-CN", "核保员部分批准", "（中国时间）"),
])  # fmt: skip
def test_a_decided_request_names_the_underwriters_reason_and_the_moment_in_shanghai_time(
    console: Console, decided: dict[str, Any], language: str, label: str, zone: str
) -> None:
    with signed_in(console, "underwriter", language) as client:
        page = client.get(decided["page"]).text
    reasons = re.search(r'<ul class="reasons">(.*?)</ul>', page, re.S)
    assert reasons and f"<strong>{label}</strong>" in reasons.group(1)
    assert "underwriter_partial" not in page
    stored = httpx.get(f"{console.services['underwriting']}/v1/limit-requests/{decided['id']}",
                       headers=auth("underwriter"), timeout=10).json()  # fmt: skip
    at = dt.datetime.fromisoformat(stored["decided_at"]).astimezone(ZoneInfo(ZONE))
    facts = re.search(r'<dl class="facts">(.*?)</dl>', page, re.S)
    assert facts and f"{at:%H:%M:%S}{zone}" in facts.group(1), facts.group(1) if facts else page


def factor_cells(page: str) -> dict[str, str]:
    rows = re.findall(r"<tr>\s*<td>([^<]+)</td>\s*<td class=\"num\">([^<]+)</td>", page)
    return {name.strip(): value.strip() for name, value in rows}


def test_grade_factors_read_alike_on_the_request_and_the_buyer_page(
    console: Console, decided: dict[str, Any]
) -> None:
    with signed_in(console, "underwriter", "en") as client:
        on_request = factor_cells(client.get(decided["page"]).text)
        on_buyer = factor_cells(client.get(f"/underwriting/buyers/{decided['buyer']['id']}").text)
    assert on_request["Change in days sales outstanding"] == "16%"  # 58 days after 50
    assert on_request["Share overdue"] == "8%"
    assert on_request["Equity"] == "€6,000,000.00"
    for name, value in on_request.items():
        assert on_buyer[name] == value, name


def bound(page: str, field_id: str, name: str) -> str | None:
    found = re.search(rf'<input[^>]*\bid="{field_id}"[^>]*>', page)
    assert found, field_id
    value = re.search(rf'\b{name}="([^"]*)"', found.group(0))
    return value.group(1) if value else None


def test_date_inputs_are_bounded_as_the_services_rules_bound_them(console: Console) -> None:
    today = business_today(ZONE)
    with signed_in(console, "underwriter", "en") as client:
        limit_id = console.book.limits["mueller"]
        change = client.get(f"/underwriting/limits/{limit_id}/change").text
    assert bound(change, "effective-from", "min") == earliest_reduction_date(today).isoformat()
    with signed_in(console, "collector", "en") as client:
        case = client.get(f"/cases/{console.book.cases['lawsuit']}").text
    assert bound(case, "pay-on", "max") == today.isoformat()
    claim_id = console.book.claims["on_hold"]
    claims = f"{console.services['claims']}/v1/claims/{claim_id}"
    claim = httpx.get(claims, headers=auth("claims_handler"), timeout=10).json()
    opened = [d for d in claim["disputes"] if not d["outcome"]]
    if not opened:  # the demo's open dispute was resolved by another test: one of our own
        raised = httpx.post(f"{claims}/disputes", timeout=10,
                            headers=auth("policyholder", claim["policyholder_id"]),
                            json={"raised_on": (today - dt.timedelta(days=1)).isoformat(),
                                  "invoice_numbers": [claim["invoices"][0]["number"]],
                                  "description": "the buyer disputes the price"})  # fmt: skip
        assert raised.status_code == 201, raised.text
        opened = [raised.json()]
    open_one = opened[0]
    with signed_in(console, "claims_handler", "en") as client:
        claim_page = client.get(f"/claims/{claim_id}").text
    field = f"resolved-on-{open_one['id']}"
    assert bound(claim_page, field, "max") == today.isoformat()
    assert bound(claim_page, field, "min") == open_one["raised_on"]
