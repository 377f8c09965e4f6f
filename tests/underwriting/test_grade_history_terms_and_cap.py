"""Grades kept as a history read on the shipment date, payment terms kept per amount of a limit,
and the single-buyer cap binding every act and every coverage answer."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import JSON, Column, Date, Integer, MetaData, String, Table, insert, select, update

from services.underwriting import rules
from services.underwriting.models import BuyerGrade, LimitAmount, Policy
from shared.db import Amount, Exact, UTCDateTime, build_engine, get_session, utcnow
from shared.migrations import upgrade
from tests.builders import check, make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth

TODAY = "2027-06-10"
UW = auth("underwriter")
HANDLER = auth("claims_handler")


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    """Claims, underwriting and collections in-process, on 2027-06-10."""
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    return {"claims": await api.open("claims"), "underwriting": api("underwriting")}


@pytest.fixture
async def uw(apis: dict[str, httpx.AsyncClient]) -> httpx.AsyncClient:
    return apis["underwriting"]


async def discretionary_policy(uw: httpx.AsyncClient, **terms: Any) -> dict[str, Any]:
    """A whole-turnover policy for 2027 with a discretionary limit of 100,000 and no credit limit."""
    return await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31",
                             discretionary_limit=money("100000"), **terms)  # fmt: skip


async def insolvent_since(uw: httpx.AsyncClient, buyer_id: str, observed_on: str) -> None:
    signal = ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": observed_on,
        "details": "insolvency petition"}), 201)  # fmt: skip
    assert signal["grade"] == 10


@pytest.mark.parametrize("earlier_first", [True, False])
async def test_discretionary_cover_reads_the_earliest_insolvency_whatever_order_it_is_heard_in(
    uw: httpx.AsyncClient, earlier_first: bool
) -> None:
    """Two insolvency filings on one buyer, observed on 1 and 5 June, heard in either order: the
    buyer is insolvent from 1 June, so a shipment of 3 June is not covered by discretion, one of
    31 May is."""
    policy = await discretionary_policy(uw)
    buyer = await make_buyer(uw)
    for day in ["2027-06-01", "2027-06-05"] if earlier_first else ["2027-06-05", "2027-06-01"]:
        await insolvent_since(uw, buyer["id"], day)
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["insolvent_since"] == (
        "2027-06-01")  # fmt: skip
    before, after = [ok(await uw.post("/v1/coverage-checks", headers=UW, json=item(
        policy, buyer["id"], "1000", shipped, "2027-08-01")), 200) for shipped in (
        "2027-05-31", "2027-06-03")]  # fmt: skip
    assert before["covered"] is True and after["covered"] is False


def item(policy: dict[str, Any], buyer_id: str, amount: str, shipped: str, due: str
         ) -> dict[str, Any]:  # fmt: skip
    return {"policy_id": policy["id"], "buyer_id": buyer_id, "invoice_amount": money(amount),
            "shipment_date": shipped, "due_date": due}  # fmt: skip


# ---------------------------------------------------------------- grades as a history


def test_the_grade_on_a_date_counts_only_what_was_observed_by_then() -> None:
    indicators = rules.Indicators(Decimal("2.5"), Decimal(40), Decimal(40), Decimal("0.01"), 0, 0,
                                  Decimal(1_000_000))  # fmt: skip
    signals = [("payment_delay", dt.date(2027, 3, 1)), ("court_judgment", dt.date(2027, 5, 1))]

    def on(day: dt.date) -> int:
        return rules.grade_on(indicators, day=day, country_risk_level=1, signals=signals,
                              insolvent_since=dt.date(2027, 6, 1)).grade  # fmt: skip

    assert on(dt.date(2027, 2, 28)) == 1
    assert on(dt.date(2027, 3, 1)) == 2
    assert on(dt.date(2027, 5, 1)) == 3
    assert on(dt.date(2027, 5, 31)) == 3
    assert on(dt.date(2027, 6, 1)) == 10


async def test_discretionary_cover_reads_the_grade_in_force_on_the_shipment_date(
    uw: httpx.AsyncClient,
) -> None:
    policy = await discretionary_policy(uw)
    buyer = await make_buyer(uw)
    await insolvent_since(uw, buyer["id"], "2027-06-01")

    before = ok(await check(uw, policy, buyer["id"], "50000", "2027-03-01", "2027-04-30"), 200)
    assert before["covered"] and before["covered_amount"] == money("50000.00")
    assert before["limit_source"] == "discretionary"
    assert before["limit_in_force"] == money("100000.00")
    for shipped in ("2027-06-01", "2027-06-05", "2027-06-20"):  # insolvent, then the future
        after = ok(await check(uw, policy, buyer["id"], "50000", shipped, "2027-08-30"), 200)
        assert not after["covered"] and after["reasons"] == ["no_limit"], shipped

    batch = ok(await uw.post("/v1/coverage-checks/batch", headers=HANDLER, json={"items": [
        item(policy, buyer["id"], "50000", "2027-03-01", "2027-04-30"),
        item(policy, buyer["id"], "50000", "2027-05-31", "2027-07-30"),
        item(policy, buyer["id"], "50000", "2027-06-01", "2027-07-30"),
        item(policy, buyer["id"], "50000", "2027-06-20", "2027-07-30"),
    ]}), 200)["results"]  # fmt: skip
    assert [r["covered_amount"]["amount"] for r in batch] == ["50000.00", "50000.00", "0.00",
                                                              "0.00"]  # fmt: skip
    assert [r["limit_source"] for r in batch] == ["discretionary", "discretionary", None, None]


async def test_a_signal_learnt_late_grades_the_later_dates_of_the_history_again(
    uw: httpx.AsyncClient,
) -> None:
    policy = await discretionary_policy(uw)
    buyer = await make_buyer(uw)
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "payment_delay", "observed_on": "2027-05-20"}), 201)  # fmt: skip
    # Learnt after the payment delay, the insolvency was observed before it.
    await insolvent_since(uw, buyer["id"], "2027-05-01")

    for shipped, covered in (("2027-04-30", True), ("2027-05-10", False), ("2027-05-25", False)):
        answer = ok(await check(uw, policy, buyer["id"], "1000", shipped, "2027-07-30"), 200)
        assert answer["covered"] is covered, shipped


async def test_an_insolvency_claim_on_discretionary_cover_is_indemnified(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy = await discretionary_policy(uw, deductible=money("5000"))
    buyer = await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    invoices = [
        {"number": "INV-1", "amount": money("80000"), "shipment_date": "2027-03-01",
         "due_date": "2027-04-30"},
        {"number": "INV-2", "amount": money("40000"), "shipment_date": "2027-03-20",
         "due_date": "2027-05-19"},
    ]  # fmt: skip
    # The insurer learned of the insolvency (a court's notice): the buyer is at grade 10 today.
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": "2027-06-01",
        "details": "insolvency proceedings opened"}), 201)  # fmt: skip
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"] == 10
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": invoices}), 201)  # fmt: skip
    for kind in claim["missing_documents"]:
        ok(await claims.post(f"/v1/claims/{claim['id']}/documents", headers=holder,
                             data={"kind": kind},
                             files={"file": (f"{kind}.pdf", b"%PDF-1.4 scanned",
                                             "application/pdf")}), 201)  # fmt: skip

    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    lines = {i["number"]: i for i in assessed["assessment"]["invoices"]}
    assert lines["INV-1"]["covered"] == money("80000.00")
    assert lines["INV-2"]["covered"] == money("20000.00")  # the discretionary 100,000 is used up
    assert assessed["indemnity"] == money("85000.00")  # 100,000 × 90% − 5,000


async def test_a_country_downgrade_regrades_its_buyers_and_their_limits_follow(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    weak = {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
            "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
            "equity": money("1000000")}  # fmt: skip
    buyer = await make_buyer(uw, country="NZ", indicators=weak)
    assert buyer["grade"] == 7  # 1 + 3 (current ratio) + 2 (overdue ratio) + 1 (country level 2)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": "2027-01-01"}), 201)  # fmt: skip

    ok(await uw.put("/v1/country-risks/NZ", headers=UW, json={"level": 4}), 200)

    regraded = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)
    assert regraded["grade"] == 9
    history = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)
    entries = [(h["amount"]["amount"], h["effective_from"]) for h in history["items"][0]["history"]]
    assert entries == [("100000.00", "2027-01-01"), ("50000.00", "2027-07-10")]  # after 30 days


# ---------------------------------------------------------------- terms per amount


async def test_new_payment_terms_never_take_cover_from_goods_already_shipped(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = await make_buyer(uw)
    first = await request_limit(uw, policy, buyer["id"], "100000", terms=90)
    assert first["status"] == "approved"
    shipped_at_90 = ("2027-06-10", "2027-09-08")  # a 90-day credit period, shipped today
    assert ok(await check(uw, policy, buyer["id"], "1000", *shipped_at_90), 200)["covered"]

    second = await request_limit(uw, policy, buyer["id"], "100000", terms=60)
    assert second["status"] == "approved"

    kept = ok(await check(uw, policy, buyer["id"], "1000", *shipped_at_90), 200)
    assert kept["covered"] and kept["reasons"] == []
    later = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-09-09"), 200)
    assert not later["covered"] and later["reasons"] == ["credit_period_exceeded"]
    within = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-08-10"), 200)
    assert within["covered"]

    limits = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)["items"]
    history = [(h["effective_from"], h["effective_to"], h["payment_terms_days"], h["amount"])
               for h in limits[0]["history"]]  # fmt: skip
    assert history == [("2027-06-10", "2027-06-11", 90, money("100000.00")),
                       ("2027-06-11", None, 60, money("100000.00"))]  # fmt: skip
    assert limits[0]["payment_terms_days"] == 90  # the terms in force today


def test_a_grant_that_takes_cover_away_applies_from_tomorrow_and_one_that_changes_nothing_is_none() -> (
    None
):
    today = dt.date(2027, 6, 10)

    def when(amount: int, terms: int | None) -> dt.date | None:
        return rules.grant_effective_from(current=Decimal(1000), current_terms=90,
                                          amount=Decimal(amount), terms=terms, today=today,
                                          max_credit_period_days=180)  # fmt: skip

    assert when(1000, 90) is None
    assert when(2000, 90) == today
    assert when(1000, 120) == today
    assert when(1000, None) == today  # the policy's maximum: never shorter
    untermed = {"current": Decimal(1000), "current_terms": None, "today": today,
                "max_credit_period_days": 180}  # fmt: skip
    assert rules.grant_effective_from(amount=Decimal(1000), terms=180, **untermed) is None
    assert rules.grant_effective_from(amount=Decimal(1000), terms=120, **untermed) == (
        today + dt.timedelta(days=1))  # fmt: skip
    assert when(500, 90) == today + dt.timedelta(days=1)
    assert when(2000, 60) == today + dt.timedelta(days=1)
    assert rules.within_single_buyer_cap(Decimal(300), Decimal(200)) == Decimal(200)
    assert rules.within_single_buyer_cap(Decimal(300), None) == Decimal(300)
    assert rules.exceeds_single_buyer_cap(Decimal("200.01"), Decimal(200))
    assert not rules.exceeds_single_buyer_cap(Decimal(200), Decimal(200))


async def test_a_recorded_limit_keeps_the_terms_of_each_period(uw: httpx.AsyncClient) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = await make_buyer(uw)
    # A migration replays a past widening of the terms (a past shortening would take cover the
    # days already past were answered with: test_recorded_limits).
    for since, terms in (("2027-01-01", 30), ("2027-04-01", 120)):
        ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
            "buyer_id": buyer["id"], "amount": money("50000"), "effective_from": since,
            "payment_terms_days": terms}), 201)  # fmt: skip
    march = ok(await check(uw, policy, buyer["id"], "1000", "2027-03-01", "2027-06-29"), 200)
    assert march["reasons"] == ["credit_period_exceeded"]
    april = ok(await check(uw, policy, buyer["id"], "1000", "2027-04-01", "2027-07-30"), 200)
    assert april["covered"]


async def test_a_limit_recorded_from_a_past_date_never_takes_cover_this_system_granted(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = await make_buyer(uw)
    granted = await request_limit(uw, policy, buyer["id"], "200000", terms=90)
    assert granted["status"] == "approved"
    shipped_today = ("2027-06-10", "2027-09-08")  # a 90-day credit period, under 200,000
    limits = f"/v1/policies/{policy['id']}/limits"

    for lower in ({"amount": money("10000")},
                  {"amount": money("200000"), "payment_terms_days": 30},
                  {"amount": money("10000"), "effective_from": "2027-06-10"}):  # fmt: skip
        refused = await uw.post(limits, headers=UW, json={
            "buyer_id": buyer["id"], "effective_from": "2027-06-01", **lower})  # fmt: skip
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"] == "retroactive-reduction"

    kept = ok(await check(uw, policy, buyer["id"], "150000", *shipped_today), 200)
    assert kept["covered_amount"] == money("150000.00") and kept["reasons"] == []
    more = {"buyer_id": buyer["id"], "amount": money("300000"), "effective_from": "2027-06-01"}
    ok(await uw.post(limits, headers=UW, json=more), 201)  # more cover from a past date
    later = {"buyer_id": buyer["id"], "amount": money("10000"), "effective_from": "2027-06-11"}
    ok(await uw.post(limits, headers=UW, json=later), 201)  # less, for later shipments
    [limit] = ok(await uw.get(limits, headers=UW), 200)["items"]
    assert [(h["amount"]["amount"], h["effective_from"]) for h in limit["history"]] == [
        ("300000.00", "2027-06-01"), ("10000.00", "2027-06-11")]  # fmt: skip


# ---------------------------------------------------------------- the single-buyer cap


def refused_above_cap(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "single-buyer-cap-exceeded"


async def test_an_underwriter_may_not_approve_above_the_single_buyer_cap(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, single_buyer_cap=money("200000"))
    buyer = await make_buyer(uw)
    referred = await request_limit(uw, policy, buyer["id"], "1500000")
    assert referred["status"] == "referred"
    decide = f"/v1/limit-requests/{referred['id']}/decision"

    refused_above_cap(await uw.post(decide, headers=UW, json={
        "decision": "approve", "reason": "good payer"}))  # fmt: skip
    refused_above_cap(await uw.post(decide, headers=UW, json={
        "decision": "partially_approve", "amount": money("200000.01"), "reason": "most of it"}))  # fmt: skip
    # Nothing was written: the request still waits, and no limit exists.
    still = ok(await uw.get(f"/v1/limit-requests/{referred['id']}", headers=UW), 200)
    assert still["status"] == "referred" and still["decided_amount"] is None
    assert ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)["items"] == []

    decided = ok(await uw.post(decide, headers=UW, json={
        "decision": "partially_approve", "amount": money("200000"), "reason": "up to the cap"}),
        200)  # fmt: skip
    assert decided["status"] == "partially_approved"
    assert decided["decided_amount"] == money("200000.00")


async def test_a_recorded_limit_or_a_change_above_the_single_buyer_cap_is_refused(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, single_buyer_cap=money("200000"))
    buyer = await make_buyer(uw)
    record = f"/v1/policies/{policy['id']}/limits"
    refused_above_cap(await uw.post(record, headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("250000"), "effective_from": "2026-06-01"}))  # fmt: skip
    assert ok(await uw.get(record, headers=UW), 200)["items"] == []

    limit = ok(await uw.post(record, headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("200000"), "effective_from": "2026-06-01"}), 201)  # fmt: skip
    change = f"/v1/limits/{limit['id']}/changes"
    refused_above_cap(await uw.post(change, headers=UW, json={
        "new_amount": money("200000.01"), "reason": "more business"}))  # fmt: skip
    history = ok(await uw.get(record, headers=UW), 200)["items"][0]["history"]
    assert [h["amount"] for h in history] == [money("200000.00")]
    ok(await uw.post(change, headers=UW, json={
        "new_amount": money("150000"), "reason": "less business"}), 201)  # fmt: skip


async def _limit_of_400000_under_a_cap_lowered_to_150000(
    uw: httpx.AsyncClient, *, year: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A limit recorded for the whole `year` before the policy's single-buyer cap was lowered."""
    policy = await make_policy(uw, start_date=f"{year}-01-01", end_date=f"{year}-12-31",
                               single_buyer_cap=money("500000"))  # fmt: skip
    buyer = await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("400000"), "effective_from": f"{year}-01-01"}), 201)  # fmt: skip
    session = uw._transport.app.dependency_overrides[get_session]  # type: ignore[attr-defined]
    async for s in session():
        await s.execute(
            update(Policy).where(Policy.id == policy["id"]).values(single_buyer_cap=Decimal(150000))
        )
    return policy, buyer


async def test_coverage_never_answers_more_than_the_single_buyer_cap(
    uw: httpx.AsyncClient,
) -> None:
    policy, buyer = await _limit_of_400000_under_a_cap_lowered_to_150000(uw, year=2027)
    capped = ok(await check(uw, policy, buyer["id"], "300000", "2027-03-01", "2027-04-30"), 200)
    assert capped["limit_in_force"] == money("150000.00")
    assert capped["covered_amount"] == money("150000.00")
    assert capped["reasons"] == ["partially_covered"]

    # A discretionary limit above the cap.
    loose = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31",
                              discretionary_limit=money("300000"),
                              single_buyer_cap=money("120000"))  # fmt: skip
    other = await make_buyer(uw)
    items = [item(loose, other["id"], "200000", "2027-03-01", "2027-04-30")]
    single = ok(await check(uw, loose, other["id"], "200000", "2027-03-01", "2027-04-30"), 200)
    batch = ok(await uw.post("/v1/coverage-checks/batch", headers=HANDLER,
                             json={"items": items}), 200)["results"]  # fmt: skip
    for answer in (single, batch[0]):
        assert answer["limit_source"] == "discretionary"
        assert answer["limit_in_force"] == money("120000.00")
        assert answer["covered_amount"] == money("120000.00")
        assert answer["insured_amount"] == money("108000.00")


async def test_a_policys_exposure_shows_no_limit_above_the_single_buyer_cap(
    uw: httpx.AsyncClient,
) -> None:
    policy, _ = await _limit_of_400000_under_a_cap_lowered_to_150000(uw, year=2026)
    page = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=UW), 200)
    assert [(i["limit_in_force"], i["headroom"]) for i in page["items"]] == [
        (money("150000.00"), money("150000.00"))
    ]


# ---------------------------------------------------------------- the migration


def _migrate(url: str, revision: str) -> None:
    """Alembic runs its own event loop: in a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade, "underwriting", url, revision).result()


def _before(name: str, *columns: Column[Any]) -> Table:
    """A table as it stood before un0003, with the columns the test writes."""
    return Table(name, MetaData(), Column("id", String), Column("created_at", UTCDateTime()),
                 *columns, schema="underwriting")  # fmt: skip


async def test_the_migration_copies_each_limits_terms_onto_its_amounts_and_starts_grade_histories(
    scratch_database: Any,
) -> None:
    url = scratch_database("underwriting")
    _migrate(url, "un0002")
    now = utcnow()
    policy = {
        "policyholder_id": "ph-m", "currency": "EUR", "start_date": dt.date(2027, 1, 1),
        "end_date": dt.date(2027, 12, 31), "cover_type": "whole_turnover",
        "max_liability": Decimal(1000000), "premium_rate_pct": Decimal("0.35"),
        "indemnity_pct": Decimal(90), "political_risk_cover": False,
        "political_indemnity_pct": Decimal(90), "max_credit_period_days": 180,
        "deductible": Decimal(0), "claim_threshold": Decimal(0),
        "discretionary_limit": Decimal(0), "claim_filing_days": 30, "documents_grace_days": 30,
        "overdue_notification_days": 60, "max_extension_days": 60,
        "protracted_default_wait_days": 180, "reduction_notice_days": 30,
        "claims_calendar_country": "CN", "collection_ladder": "reminder_15_30_45",
        "created_by": "test",
    }  # fmt: skip
    typed: dict[str, Any] = {
        "max_liability": Amount(), "deductible": Amount(), "claim_threshold": Amount(),
        "discretionary_limit": Amount(), "premium_rate_pct": Exact(12, 6),
        "indemnity_pct": Exact(12, 6), "political_indemnity_pct": Exact(12, 6),
        "start_date": Date(), "end_date": Date(),
    }  # fmt: skip
    policies = _before("policies", *(Column(name, typed.get(name)) for name in policy))
    buyers = _before("buyers", Column("name", String), Column("country", String),
                     Column("registration_number", String), Column("legal_form", String),
                     Column("indicators", JSON), Column("grade", Integer),
                     Column("grade_factors", JSON), Column("registered_by", String),
                     Column("graded_at", UTCDateTime()))  # fmt: skip
    limits = _before("credit_limits", Column("policy_id", String), Column("buyer_id", String),
                     Column("payment_terms_days", Integer), Column("decided_on", Date))  # fmt: skip
    amounts = _before("limit_amounts", Column("limit_id", String), Column("amount", Amount()),
                      Column("effective_from", Date), Column("reason", String),
                      Column("source", String), Column("decided_by", String))  # fmt: skip
    engine = build_engine(url)
    async with engine.begin() as connection:
        await connection.execute(insert(policies).values(id="pol_m", created_at=now, **policy))
        await connection.execute(insert(buyers).values(
            id="buy_m", created_at=now, name="Old Co", country="DE", registration_number="R1",
            legal_form="company", indicators={}, grade=4, grade_factors=[{"factor": "f"}],
            registered_by="test", graded_at=now))  # fmt: skip
        await connection.execute(insert(limits).values(
            id="lim_m", created_at=now, policy_id="pol_m", buyer_id="buy_m",
            payment_terms_days=75, decided_on=dt.date(2027, 1, 1)))  # fmt: skip
        for n, since in enumerate((dt.date(2027, 1, 1), dt.date(2027, 3, 1))):
            await connection.execute(insert(amounts).values(
                id=f"lam_m{n}", created_at=now, limit_id="lim_m", amount=Decimal(1000),
                effective_from=since, reason="old", source="external", decided_by="test"))  # fmt: skip
    _migrate(url, "un0003")
    async with engine.connect() as connection:
        terms = await connection.execute(
            select(LimitAmount.payment_terms_days).where(LimitAmount.limit_id == "lim_m")
        )
        grades = await connection.execute(
            select(BuyerGrade.grade, BuyerGrade.factors, BuyerGrade.cause)
        )
        assert list(terms.scalars()) == [75, 75]
        assert [tuple(g) for g in grades] == [(4, [{"factor": "f"}], "registration")]
    await engine.dispose()
