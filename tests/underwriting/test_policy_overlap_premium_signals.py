"""One policy per policyholder, currency and period; premium only on turnover with insurable
buyers (an affiliate's bears none); no signal observed after today."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from shared.calendar import today as business_today
from tests.builders import declared_on, make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique
from tests.underwriting.conftest import PINNED_TODAY

UW = auth("underwriter")
TODAY = PINNED_TODAY


def problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(type_), body
    return body


async def post_policy(uw: httpx.AsyncClient, holder: str, start: str, end: str,
                      currency: str = "EUR") -> httpx.Response:  # fmt: skip
    return await uw.post("/v1/policies", headers=UW, json={
        "policyholder_id": holder, "currency": currency, "start_date": start, "end_date": end,
        "cover_type": "whole_turnover", "max_liability": money("1000000", currency),
        "premium_rate_pct": "0.35"})  # fmt: skip


# ---------------------------------------------------------------- one policy per period


async def test_a_second_policy_of_a_holder_in_one_currency_whose_dates_overlap_is_refused(
    uw: httpx.AsyncClient,
) -> None:
    holder = unique("ph")
    first = ok(await post_policy(uw, holder, "2027-01-01", "2027-12-31"), 201)
    for start, end in [
        ("2027-06-01", "2028-05-31"),  # overlaps its second half
        ("2026-07-01", "2027-01-01"),  # ends on its first day
        ("2027-12-31", "2028-12-31"),  # starts on its last day
        ("2027-03-01", "2027-03-31"),  # within it
        ("2026-01-01", "2028-12-31"),  # around it
    ]:
        refused = problem(await post_policy(uw, holder, start, end), 409, "policy-overlap")
        assert refused["existing_policy_id"] == first["id"], (start, end)


async def test_policies_in_another_currency_or_adjoining_or_of_another_holder_are_accepted(
    uw: httpx.AsyncClient,
) -> None:
    holder = unique("ph")
    ok(await post_policy(uw, holder, "2027-01-01", "2027-12-31"), 201)
    ok(await post_policy(uw, holder, "2027-01-01", "2027-12-31", currency="USD"), 201)
    ok(await post_policy(uw, holder, "2028-01-01", "2028-12-31"), 201)  # the next day on
    ok(await post_policy(uw, holder, "2026-01-01", "2026-12-31"), 201)  # up to the day before
    ok(await post_policy(uw, unique("ph"), "2027-01-01", "2027-12-31"), 201)
    # The three EUR policies now cover 2026–2028 without a gap: any EUR date there is taken.
    problem(await post_policy(uw, holder, "2026-12-31", "2027-01-01"), 409, "policy-overlap")


async def test_a_refused_policy_is_not_written(uw: httpx.AsyncClient) -> None:
    holder = unique("ph")
    first = ok(await post_policy(uw, holder, "2027-01-01", "2027-12-31"), 201)
    problem(await post_policy(uw, holder, "2027-06-01", "2028-05-31"), 409, "policy-overlap")
    # Had the refused one (to 2028-05-31) been kept, this one would overlap it too.
    second = ok(await post_policy(uw, holder, "2028-02-01", "2028-12-31"), 201)
    assert second["id"] != first["id"]


# ---------------------------------------------------------------- premium


async def declare(uw: httpx.AsyncClient, policy: dict[str, Any],
                  invoices: list[tuple[str, str, str]]) -> None:  # fmt: skip
    body = {"invoices": [
        {"number": number, "buyer_id": buyer_id, "amount": money(amount),
         "shipment_date": "2027-03-01", "due_date": "2027-04-30"}
        for number, buyer_id, amount in invoices
    ]}  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    with declared_on(uw, dt.date(2027, 3, 1)):  # once shipped: a declaration reports the past
        ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", json=body, headers=holder),
           201)  # fmt: skip


async def declare_affiliate(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str,
                            currency: str = "EUR") -> None:  # fmt: skip
    answer = ok(await uw.post(f"/v1/policies/{policy['id']}/limit-requests",
                              headers=auth("policyholder", policy["policyholder_id"]),
                              json={"buyer_id": buyer_id, "amount": money("10000", currency),
                                    "payment_terms_days": 60,
                                    "related_to_policyholder": True}), 201)  # fmt: skip
    assert answer["status"] == "refused"


async def test_an_affiliates_turnover_carries_no_premium(uw: httpx.AsyncClient) -> None:
    holder = unique("ph")
    policy = await make_policy(uw, holder=holder, premium_rate_pct="0.35")
    other_currency = await make_policy(uw, holder=holder, currency="USD",
                                       max_liability=money("1000000", "USD"))  # fmt: skip
    strangers = await make_policy(uw)
    customer, affiliate, affiliate_elsewhere, strangers_affiliate = [
        (await make_buyer(uw))["id"] for _ in range(4)
    ]
    await declare(uw, policy, [
        ("A-1", customer, "123456.78"), ("A-2", customer, "10000.01"),
        ("B-1", affiliate, "50000.00"), ("C-1", affiliate_elsewhere, "1000.00"),
        ("D-1", strangers_affiliate, "7654.32"),
    ])  # fmt: skip
    path = f"/v1/policies/{policy['id']}/premium"
    before = ok(await uw.get(path, headers=UW), 200)
    assert before["insured_turnover"] == money("192111.11")
    assert before["premium"] == money("672.39")  # 192,111.11 × 0.35 % = 672.388885
    await declare_affiliate(uw, policy, affiliate)
    # Declared an affiliate under another policy of the same policyholder: one all the same.
    await declare_affiliate(uw, other_currency, affiliate_elsewhere, currency="USD")
    # Another policyholder's affiliate is an ordinary buyer of this one.
    await declare_affiliate(uw, strangers, strangers_affiliate)
    after = ok(await uw.get(path, headers=auth("policyholder", holder)), 200)
    assert after["insured_turnover"] == money("141111.11")  # 123,456.78 + 10,000.01 + 7,654.32
    assert after["premium"] == money("493.89")  # 141,111.11 × 0.35 % = 493.888885
    assert (after["invoices_counted"], after["invoices_excluded"]) == (3, 2)


# ---------------------------------------------------------------- signals


async def test_a_signal_observed_after_today_is_refused_and_changes_nothing(
    pinned: httpx.AsyncClient,
) -> None:
    uw = pinned
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    limit = await request_limit(uw, policy, buyer["id"], "50000")
    assert limit["status"] == "approved"
    limit_before = ok(await uw.get(f"/v1/limits/{limit['limit_id']}", headers=UW), 200)
    refused = await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": "2027-01-11", "details": "next month"})  # fmt: skip
    body = problem(refused, 422, "validation")
    assert [e["loc"] for e in body["errors"]] == [["body", "observed_on"]]
    after = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)
    assert after["insolvent_since"] is None and after["grade"] == buyer["grade"]
    assert ok(await uw.get(f"/v1/limits/{limit['limit_id']}", headers=UW), 200) == limit_before
    # Observed today is in time.
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "registry_change", "observed_on": TODAY, "details": "new address"}), 201)  # fmt: skip


async def test_today_for_a_signal_is_the_business_time_zones(uw: httpx.AsyncClient) -> None:
    buyer = await make_buyer(uw)
    today = business_today("Asia/Shanghai")
    tomorrow = today + dt.timedelta(days=1)
    path = f"/v1/buyers/{buyer['id']}/signals"
    refused = await uw.post(path, headers=UW, json={
        "kind": "registry_change", "observed_on": tomorrow.isoformat(), "details": "x"})  # fmt: skip
    problem(refused, 422, "validation")
    ok(await uw.post(path, headers=UW, json={
        "kind": "registry_change", "observed_on": today.isoformat(), "details": "x"}), 201)  # fmt: skip
