"""The underwriting API on the database: requests decided and reviewed, limits over time,
coverage checks, declarations, signals, and who may see what."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.builders import check, declared_on, make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique

UW = auth("underwriter")


async def cut_limit(uw: httpx.AsyncClient, limit_id: str, amount: str, on: str) -> dict[str, Any]:
    body = {"new_amount": money(amount), "effective_from": on, "reason": "buyer risk rose"}
    return ok(await uw.post(f"/v1/limits/{limit_id}/changes", json=body, headers=UW), 201)


async def test_a_grade_2_buyer_is_approved_at_once(uw: httpx.AsyncClient) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    assert buyer["grade"] == 2 and buyer["grade_factors"]
    answer = await request_limit(uw, policy, buyer["id"], "100000")
    assert answer["status"] == "approved"
    assert answer["decided_amount"] == money("100000.00")
    assert answer["reasons"][0]["code"] == "within_auto_approval" and answer["limit_id"]


async def test_a_grade_9_buyer_is_referred_then_decided_once_by_an_underwriter(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw, country="RU", indicators={
        "current_ratio": "0.5", "overdue_ratio": "0.4", "litigation_count": 5,
        "equity": money("-10")})  # fmt: skip
    assert buyer["grade"] == 9
    answer = await request_limit(uw, policy, buyer["id"], "20000")
    assert answer["status"] == "referred" and answer["decided_amount"] is None
    assert "high_risk_grade" in {r["code"] for r in answer["reasons"]}
    queue = ok(await uw.get("/v1/limit-requests?status=referred", headers=UW), 200)
    assert answer["id"] in [r["id"] for r in queue["items"]]
    decision = {"decision": "partially_approve", "amount": money("5000"), "reason": "collateral"}
    decided = ok(await uw.post(f"/v1/limit-requests/{answer['id']}/decision", json=decision,
                               headers=UW), 200)  # fmt: skip
    assert decided["status"] == "partially_approved"
    assert decided["decided_amount"] == money("5000.00") and decided["decided_by"]
    again = await uw.post(f"/v1/limit-requests/{answer['id']}/decision", json=decision, headers=UW)
    assert again.status_code == 409 and again.json()["type"] == "already-decided"
    limits = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)
    assert limits["items"][0]["amount_in_force"] == money("5000.00")


async def test_a_policyholder_sees_the_grade_but_not_its_factors(uw: httpx.AsyncClient) -> None:
    buyer, holder = await make_buyer(uw), unique("ph")  # a buyer it asked a limit on
    await request_limit(uw, await make_policy(uw, holder), buyer["id"], "10000")
    seen = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=auth("policyholder", holder)), 200)
    assert seen["grade"] == buyer["grade"] and seen["grade_factors"] is None


async def test_a_known_registration_is_409_with_the_existing_buyer(uw: httpx.AsyncClient) -> None:
    buyer = await make_buyer(uw)
    again = await uw.post(
        "/v1/buyers",
        headers=UW,
        json={"name": "Same", "country": "DE", "registration_number": buyer["registration_number"]},
    )
    assert again.status_code == 409 and again.json()["existing_buyer_id"] == buyer["id"]


@pytest.fixture
def on_day(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Awaitable[httpx.AsyncClient]]:
    """The underwriting API with today pinned to a given day (a signal cannot be observed later)."""

    async def open_on(day: str) -> httpx.AsyncClient:
        monkeypatch.setenv("TCI_FIXED_TODAY", day)
        client: httpx.AsyncClient = await api.open("underwriting")
        return client

    return open_on


async def limited(uw: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any], str]:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = await make_buyer(uw)
    answer = await request_limit(uw, policy, buyer["id"], "100000")
    return policy, buyer, answer["limit_id"]


async def test_a_cut_on_1_march_keeps_a_15_february_shipment_at_the_old_amount(
    uw: httpx.AsyncClient,
) -> None:
    policy, buyer, limit_id = await limited(uw)
    await cut_limit(uw, limit_id, "40000", "2027-03-01")
    february = ok(await check(uw, policy, buyer["id"], "60000", "2027-02-15", "2027-04-15"), 200)
    assert february["limit_in_force"] == money("100000.00")
    assert february["covered_amount"] == money("60000.00") and february["fully_covered"]
    assert february["insured_amount"] == money("54000.00")
    march = ok(await check(uw, policy, buyer["id"], "60000", "2027-03-01", "2027-05-01"), 200)
    assert march["limit_in_force"] == money("40000.00")
    assert march["covered_amount"] == money("40000.00")
    assert march["reasons"] == ["partially_covered"]


async def test_a_declared_unpaid_february_invoice_uses_part_of_the_new_amount(
    uw: httpx.AsyncClient,
) -> None:
    policy, buyer, limit_id = await limited(uw)
    await cut_limit(uw, limit_id, "40000", "2027-03-01")
    with declared_on(uw, dt.date(2027, 2, 10)):  # declared once shipped
        declared = await uw.post(f"/v1/policies/{policy['id']}/declarations", json={"invoices": [
            {"number": "INV-FEB", "buyer_id": buyer["id"], "amount": money("25000"),
             "shipment_date": "2027-02-10", "due_date": "2027-04-10"}]},
            headers=auth("policyholder", policy["policyholder_id"]))  # fmt: skip
    assert ok(declared, 201) == {"policy_id": policy["id"], "created": 1, "updated": 0}
    march = ok(await check(uw, policy, buyer["id"], "60000", "2027-03-01", "2027-05-01"), 200)
    assert march["exposure"] == money("25000.00")
    assert march["covered_amount"] == money("15000.00")
    february = ok(await check(uw, policy, buyer["id"], "60000", "2027-02-15", "2027-04-15"), 200)
    assert february["covered_amount"] == money("60000.00")
    itself = ok(await check(uw, policy, buyer["id"], "25000", "2027-02-10", "2027-04-10",
                            invoice_number="INV-FEB"), 200)  # fmt: skip
    assert itself["exposure"] == money("0.00")


async def test_a_reduction_from_today_is_retroactive_and_refused(uw: httpx.AsyncClient) -> None:
    _, _, limit_id = await limited(uw)
    from shared.settings import Settings

    today = Settings().today().isoformat()
    body = {"new_amount": money("1"), "effective_from": today, "reason": "x"}
    refused = await uw.post(f"/v1/limits/{limit_id}/changes", json=body, headers=UW)
    assert refused.status_code == 422 and refused.json()["type"] == "retroactive-reduction"


async def test_an_insolvency_signal_withdraws_the_limits(
    on_day: Callable[[str], Awaitable[httpx.AsyncClient]],
) -> None:
    uw = await on_day("2027-02-01")
    policy, buyer, limit_id = await limited(uw)
    signal = ok(
        await uw.post(
            f"/v1/buyers/{buyer['id']}/signals",
            headers=UW,
            json={
                "kind": "insolvency_filing",
                "observed_on": "2027-02-01",
                "details": "court filing",
            },
        ),
        201,
    )
    assert signal["grade"] == 10
    [change] = signal["limit_changes"]
    assert change["limit_id"] == limit_id and change["new_amount"] == money("0.00")
    assert change["effective_from"] == "2027-02-02"
    after = ok(await check(uw, policy, buyer["id"], "1000", "2027-02-02", "2027-03-01"), 200)
    assert after["reasons"] == ["limit_withdrawn"] and not after["covered"]
    before = ok(await check(uw, policy, buyer["id"], "1000", "2027-02-01", "2027-03-01"), 200)
    assert before["covered"]


async def insolvent(uw: httpx.AsyncClient, buyer_id: str, observed_on: str) -> dict[str, Any]:
    return ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": observed_on, "details": "court filing"}),
        201)  # fmt: skip


async def test_an_insolvency_withdraws_a_limit_that_starts_only_after_its_date(
    on_day: Callable[[str], Awaitable[httpx.AsyncClient]],
) -> None:
    """Every limit on the buyer is withdrawn, also one whose amount starts later: a limit
    recorded from next week, and one withdrawn tomorrow with a raise scheduled next month."""
    uw = await on_day("2027-02-01")
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    recorded_buyer, scheduled_buyer = await make_buyer(uw), await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": recorded_buyer["id"], "amount": money("50000"),
        "effective_from": "2027-02-08"}), 201)  # fmt: skip
    limit_id = (await request_limit(uw, policy, scheduled_buyer["id"], "100000"))["limit_id"]
    await cut_limit(uw, limit_id, "0", "2027-02-02")
    await cut_limit(uw, limit_id, "100000", "2027-03-01")  # a raise, scheduled

    for buyer in (recorded_buyer, scheduled_buyer):
        [change] = (await insolvent(uw, buyer["id"], "2027-02-01"))["limit_changes"]
        assert change["new_amount"] == money("0.00")
        assert change["effective_from"] == "2027-02-02"
        later = ok(await check(uw, policy, buyer["id"], "1000", "2027-03-10", "2027-04-10"), 200)
        assert later["reasons"] == ["limit_withdrawn"] and not later["covered"]


async def test_an_overdue_notified_stops_shipments_on_that_policy_until_cleared(
    on_day: Callable[[str], Awaitable[httpx.AsyncClient]],
) -> None:
    uw = await on_day("2027-03-10")
    policy, buyer, _ = await limited(uw)
    signal = {"kind": "overdue_notified", "observed_on": "2027-03-10", "policy_id": policy["id"]}
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", json=signal, headers=UW), 201)
    stopped = ok(await check(uw, policy, buyer["id"], "1000", "2027-03-11", "2027-04-11"), 200)
    assert "stop_shipment" in stopped["reasons"]
    ok(await check(uw, policy, buyer["id"], "1000", "2027-03-10", "2027-04-10"), 200)
    no_policy = await uw.post(
        f"/v1/buyers/{buyer['id']}/signals",
        headers=UW,
        json={"kind": "overdue_notified", "observed_on": "2027-03-10"},
    )
    assert no_policy.status_code == 422


async def test_a_bank_checks_its_assigned_policy_and_not_another(uw: httpx.AsyncClient) -> None:
    policy, buyer, _ = await limited(uw)
    other = await make_policy(uw)
    bank = unique("bank")
    ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", json={"bank_id": bank},
                     headers=UW), 201)  # fmt: skip
    as_bank = auth("bank", bank)
    ok(await check(uw, policy, buyer["id"], "1000", "2027-02-01", "2027-03-01", as_bank), 200)
    foreign = await check(uw, other, buyer["id"], "1000", "2027-02-01", "2027-03-01", as_bank)
    assert foreign.status_code == 404
    assert (await uw.get(f"/v1/policies/{other['id']}", headers=as_bank)).status_code == 404
    stranger = auth("policyholder", "someone-else")
    assert (await check(uw, policy, buyer["id"], "1", "2027-02-01", "2027-03-01",
                        stranger)).status_code == 404  # fmt: skip


async def test_bad_coverage_input_gets_precise_problems(uw: httpx.AsyncClient) -> None:
    policy, buyer, _ = await limited(uw)
    due_first = await check(uw, policy, buyer["id"], "1000", "2027-03-01", "2027-02-01")
    assert due_first.json()["type"] == "due-before-shipment"
    usd = await uw.post("/v1/coverage-checks", headers=auth("policyholder",
                        policy["policyholder_id"]), json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "invoice_amount": money("1", "USD"),
        "shipment_date": "2027-02-01", "due_date": "2027-03-01"})  # fmt: skip
    assert usd.status_code == 422 and usd.json()["type"] == "currency-mismatch"
    assert (await check(uw, policy, "buy_nope", "1", "2027-02-01", "2027-03-01")).status_code \
        == 404  # fmt: skip
    assert (await check(uw, policy, buyer["id"], "0", "2027-02-01", "2027-03-01")).status_code \
        == 422  # fmt: skip


async def test_a_batch_answers_each_item_as_the_single_check_would(uw: httpx.AsyncClient) -> None:
    policy, buyer, limit_id = await limited(uw)
    await cut_limit(uw, limit_id, "40000", "2027-03-01")
    items = [
        {"policy_id": policy["id"], "buyer_id": buyer["id"], "invoice_amount": money("60000"),
         "shipment_date": day, "due_date": due}
        for day, due in (("2027-02-15", "2027-04-15"), ("2027-03-01", "2027-05-01"))
    ] + [{"policy_id": policy["id"], "buyer_id": "buy_missing", "invoice_amount": money("1"),
          "shipment_date": "2027-02-15", "due_date": "2027-01-01"}]  # fmt: skip
    headers = auth("policyholder", policy["policyholder_id"])
    results = ok(await uw.post("/v1/coverage-checks/batch", json={"items": items},
                               headers=headers), 200)["results"]  # fmt: skip
    for item, result in zip(items[:2], results[:2], strict=True):
        single = ok(await uw.post("/v1/coverage-checks", json=item, headers=headers), 200)
        assert result == single
    assert results[2]["index"] == 2 and results[2]["error"]["status"] == 404
    too_many = await uw.post("/v1/coverage-checks/batch", json={"items": [items[0]] * 10_001},
                             headers=headers)  # fmt: skip
    assert too_many.status_code == 422


async def test_premium_and_portfolio_health_come_from_the_declarations(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2026-01-01", end_date="2026-12-31")
    buyer = await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    ok(
        await uw.post(
            f"/v1/policies/{policy['id']}/declarations",
            headers=holder,
            json={
                "invoices": [
                    {
                        "number": "A1",
                        "buyer_id": buyer["id"],
                        "amount": money("100000"),
                        "shipment_date": "2026-03-01",
                        "due_date": "2026-05-01",
                    }
                ]
            },
        ),
        201,
    )
    premium = ok(await uw.get(f"/v1/policies/{policy['id']}/premium?from=2026-01-01&to=2026-12-31",
                              headers=holder), 200)  # fmt: skip
    assert premium["insured_turnover"] == money("100000.00")
    assert premium["premium"] == money("350.00")
    again = ok(
        await uw.post(
            f"/v1/policies/{policy['id']}/declarations",
            headers=holder,
            json={
                "invoices": [
                    {
                        "number": "A1",
                        "buyer_id": buyer["id"],
                        "amount": money("100000"),
                        "shipment_date": "2026-03-01",
                        "due_date": "2026-05-01",
                    }
                ]
            },
        ),
        201,
    )
    assert again["updated"] == 1 and again["created"] == 0
    health = ok(await uw.get(f"/v1/policies/{policy['id']}/portfolio-health", headers=holder), 200)
    assert health["overdue_ratio"] == "1"
    assert [w["code"] for w in health["warnings"]] == ["overdue_ratio_high"]
    weak = await make_buyer(uw, indicators={"current_ratio": "1.1"})
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [{"number": "W1", "buyer_id": weak["id"], "amount": money("500"),
                      "shipment_date": "2026-03-01", "due_date": "2026-05-01"}]}), 201)  # fmt: skip
    health = ok(await uw.get(f"/v1/policies/{policy['id']}/portfolio-health", headers=holder), 200)
    low = [w for w in health["warnings"] if w["code"] == "buyer_current_ratio_low"]
    assert [(w["buyer_id"], w["figure"], w["threshold"]) for w in low] == [
        (weak["id"], "1.1", "1.2")
    ]
    bad = await uw.post(
        f"/v1/policies/{policy['id']}/declarations",
        headers=holder,
        json={
            "invoices": [
                {
                    "number": "A2",
                    "buyer_id": buyer["id"],
                    "amount": money("1"),
                    "shipment_date": "2026-03-01",
                    "due_date": "2026-02-01",
                }
            ]
        },
    )
    assert bad.status_code == 422 and bad.json()["type"] == "due-before-shipment"


async def test_portfolio_health_warns_on_the_exact_dso_change_not_on_the_rounded_days(
    on_day: Callable[[str], Awaitable[httpx.AsyncClient]],
) -> None:
    # 365,000 sold in each year; 36,049 outstanding a year ago (DSO 36.049 days, shown 36.0) and
    # 43,258.80 today (43.2588, shown 43.3): DSO rose exactly 20%, which is not above 20%.
    uw = await on_day("2026-11-24")
    policy = await make_policy(uw, start_date="2026-01-28", end_date="2027-01-27")
    buyer = await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    rows = (("P1a", "328951.00", "2025-07-12", "2025-09-10", "2025-10-20"),
            ("P1b", "36049.00", "2025-07-12", "2025-09-10", "2026-01-28"),
            ("C1", "321741.20", "2026-05-08", "2026-07-07", "2026-08-16"),
            ("C2", "43258.80", "2026-08-16", "2026-12-14", None))  # fmt: skip
    invoices = [{"number": number, "buyer_id": buyer["id"], "amount": money(amount),
                 "shipment_date": shipped, "due_date": due,
                 **({"paid_amount": money(amount), "paid_on": paid} if paid else {})}
                for number, amount, shipped, due, paid in rows]  # fmt: skip
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", json={"invoices": invoices},
                     headers=holder), 201)  # fmt: skip
    health = ok(await uw.get(f"/v1/policies/{policy['id']}/portfolio-health", headers=holder), 200)
    assert (health["dso_days"], health["dso_prior_year_days"]) == ("43.3", "36")
    assert health["dso_change"] == "0.2"
    assert health["warnings"] == []
