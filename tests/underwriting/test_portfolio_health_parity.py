"""Portfolio health is summed in SQL (`repository.portfolio_health_statements`, the twin of
`rules.health_totals`) and computed from the sums by the rule (`rules.cash_flow.health_from_totals`):
the same invoices through the endpoint and through `rules.portfolio_health` in Python must give the
same answer, on every edge of the windows, the ageing buckets, payments and ties. And a declaration
is one upsert by invoice number: new numbers created, known ones updated, in one request."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from services.underwriting.rules.cash_flow import HealthThresholds
from tests.builders import declared_on, make_buyer, make_policy, money, ok
from tests.conftest import auth

TODAY = dt.date(2027, 7, 1)
D = Decimal
# Shipments on each edge of the sales windows (today's and a year ago's) and of the ageing buckets,
# one in the future; terms of 0, 30 and 60 days; unpaid, paid ten days after shipment (before or
# after today), 40% paid today, and paid in full after today.
SHIP_OFFSETS = [-731, -730, -729, -400, -366, -365, -364, -200, -121, -91, -90, -61, -60, -31,
                -30, -1, 0, 5]  # fmt: skip
TERMS = [0, 30, 60]
PAYMENTS = ["none", "ten_days_after_shipment", "part_today", "after_today"]
RATIOS = ["1.1", "2.5", "0.9", "1.2", "1.19", "3", "1.05"]


def invoice(n: int, buyer: str, ship: dt.date, terms: int, payment: str) -> rules.Invoice:
    amount = D(f"{1000 + 37 * n}.{n % 100:02d}")
    paid, on = {
        "none": (D(0), None),
        "ten_days_after_shipment": (amount, ship + dt.timedelta(days=10)),
        "part_today": ((amount * D("0.4")).quantize(D("0.01")), TODAY),
        "after_today": (amount, TODAY + dt.timedelta(days=3)),
    }[payment]
    return rules.Invoice(buyer, amount, ship, ship + dt.timedelta(days=terms), paid, on)


def declared(number: str, i: rules.Invoice) -> dict[str, Any]:
    return {"number": number, "buyer_id": i.buyer_id, "amount": money(str(i.amount)),
            "shipment_date": i.shipment_date.isoformat(), "due_date": i.due_date.isoformat(),
            "paid_amount": money(str(i.paid_amount)),
            "paid_on": None if i.paid_on is None else i.paid_on.isoformat()}  # fmt: skip


async def books(
    client: httpx.AsyncClient, make: Any
) -> tuple[str, list[rules.Invoice], dict[str, D]]:
    policy = await make_policy(client, start_date="2025-01-01", end_date="2027-12-31")
    buyers = [(await make_buyer(client, indicators={"current_ratio": r}))["id"] for r in RATIOS]
    idle = (await make_buyer(client, indicators={"current_ratio": "0.5"}))["id"]  # owes nothing
    invoices = [*make(buyers), rules.Invoice(idle, D(10), TODAY - dt.timedelta(days=40),
                                             TODAY - dt.timedelta(days=20), D(10), TODAY)]  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    with declared_on(client, max(i.paid_on for i in invoices if i.paid_on is not None)):
        answer = ok(await client.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                                      json={"invoices": [declared(f"P-{n}", i)
                                                         for n, i in enumerate(invoices)]}), 201)  # fmt: skip
    assert answer["created"] == len(invoices)
    ratios = dict(zip([*buyers, idle], map(D, [*RATIOS, "0.5"]), strict=True))
    return policy["id"], invoices, ratios


def every_edge(buyers: list[str]) -> list[rules.Invoice]:
    combos = itertools.product(SHIP_OFFSETS, TERMS, PAYMENTS)
    return [invoice(n, buyers[n % len(buyers)], TODAY + dt.timedelta(days=ship), terms, payment)
            for n, (ship, terms, payment) in enumerate(combos)]  # fmt: skip


def ties(buyers: list[str]) -> list[rules.Invoice]:
    """Every buyer owes the same: the largest five are the first by id."""
    ship = TODAY - dt.timedelta(days=45)
    return [rules.Invoice(b, D("1234.56"), ship, ship + dt.timedelta(days=30), D(0), None)
            for b in buyers]  # fmt: skip


def as_answer(health: rules.PortfolioHealth) -> dict[str, Any]:
    """The rule's figures as the endpoint writes them."""

    def figure(value: D | None) -> str | None:
        return None if value is None else str(value)

    return {
        "outstanding": (health.outstanding, "EUR"), "dso_days": figure(health.dso_days),
        "dso_prior_year_days": figure(health.dso_prior_year_days),
        "dso_change": figure(health.dso_change), "overdue_ratio": figure(health.overdue_ratio),
        "ageing": [(name, D(amount)) for name, amount in health.ageing],
        "concentration": [(b, D(a), D(s)) for b, a, s in health.concentration],
        "top_buyers_share": figure(health.top_buyers_share),
        "warnings": [(w.code, D(w.figure), D(w.threshold), w.message, w.buyer_id)
                     for w in health.warnings],
    }  # fmt: skip


def normalised(answer: dict[str, Any]) -> dict[str, Any]:
    def figure(value: str | None) -> D | None:
        return None if value is None else D(value)

    return {
        "outstanding": (D(answer["outstanding"]["amount"]), answer["outstanding"]["currency"]),
        **{k: figure(answer[k]) for k in ("dso_days", "dso_prior_year_days", "dso_change",
                                           "overdue_ratio", "top_buyers_share")},
        "ageing": [(a["bucket"], D(a["amount"]["amount"])) for a in answer["ageing"]],
        "concentration": [(c["buyer_id"], D(c["outstanding"]["amount"]), D(c["share"]))
                          for c in answer["concentration"]],
        "warnings": [(w["code"], D(w["figure"]), D(w["threshold"]), w["message"], w["buyer_id"])
                     for w in answer["warnings"]],
    }  # fmt: skip


@pytest.mark.parametrize("overdue_after_days", [30, 0, 45])
@pytest.mark.parametrize("make", [every_edge, ties], ids=["every_edge", "ties"])
async def test_the_sql_sums_and_the_python_rule_give_the_same_portfolio_health(
    api: Any, monkeypatch: pytest.MonkeyPatch, make: Any, overdue_after_days: int
) -> None:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    monkeypatch.setenv("TCI_UW_HEALTH_OVERDUE_AFTER_DAYS", str(overdue_after_days))
    client: httpx.AsyncClient = await api.open("underwriting")
    policy_id, invoices, ratios = await books(client, make)
    thresholds = HealthThresholds(overdue_after_days=overdue_after_days)
    expected = rules.portfolio_health(invoices, today=TODAY, thresholds=thresholds,
                                      current_ratios=ratios)  # fmt: skip
    answer = ok(await client.get(f"/v1/policies/{policy_id}/portfolio-health",
                                 headers=auth("underwriter")), 200)  # fmt: skip
    got = normalised(answer)
    assert got == normalised_expected(as_answer(expected))
    # The books are not trivial: something in every bucket, warnings of both kinds, five largest.
    if make is every_edge:
        assert all(amount > 0 for _, amount in got["ageing"])
        assert {w[0] for w in got["warnings"]} >= {"buyer_current_ratio_low"}
        assert got["dso_days"] is not None and got["dso_prior_year_days"] is not None
    assert len(got["concentration"]) == 5


def normalised_expected(expected: dict[str, Any]) -> dict[str, Any]:
    return {**expected, **{k: None if expected[k] is None else D(expected[k]) for k in (
        "dso_days", "dso_prior_year_days", "dso_change", "overdue_ratio", "top_buyers_share")}}  # fmt: skip


async def test_a_policy_without_receivables_has_no_figures(api: Any) -> None:
    client: httpx.AsyncClient = await api.open("underwriting")
    policy = await make_policy(client)
    answer = ok(await client.get(f"/v1/policies/{policy['id']}/portfolio-health",
                                 headers=auth("underwriter")), 200)  # fmt: skip
    expected = as_answer(rules.portfolio_health([], today=dt.date.today()))
    assert normalised(answer) == normalised_expected(expected)


async def test_one_declaration_creates_the_new_numbers_and_updates_the_known_ones(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2026-01-01", end_date="2026-12-31")
    buyer, other = (await make_buyer(uw))["id"], (await make_buyer(uw))["id"]
    holder = auth("policyholder", policy["policyholder_id"])
    url = f"/v1/policies/{policy['id']}/declarations"

    def line(number: str, amount: str, who: str = buyer) -> dict[str, Any]:
        return {"number": number, "buyer_id": who, "amount": money(amount),
                "shipment_date": "2026-03-01", "due_date": "2026-05-01"}  # fmt: skip

    first = ok(await uw.post(url, headers=holder, json={"invoices": [
        line(f"N-{n}", "100") for n in range(1200)]}), 201)  # fmt: skip
    assert (first["created"], first["updated"]) == (1200, 0)
    again = ok(await uw.post(url, headers=holder, json={"invoices": [
        line("N-5", "250.25", other), line("N-1199", "50"), line("NEW-1", "1000")]}), 201)  # fmt: skip
    assert (again["created"], again["updated"]) == (1, 2)
    premium = ok(await uw.get(f"/v1/policies/{policy['id']}/premium?from=2026-01-01&to=2026-12-31",
                              headers=holder), 200)  # fmt: skip
    # 1198 × 100 + 250.25 + 50 + 1000: the known numbers now carry their new amounts.
    assert premium["insured_turnover"] == money("121100.25")
    exposure = ok(
        await uw.get(f"/v1/policies/{policy['id']}/portfolio-health", headers=holder), 200
    )
    moved = {c["buyer_id"]: c["outstanding"]["amount"] for c in exposure["concentration"]}
    assert moved[other] == "250.25"
