"""A person's writes on limits, as partners send them: recording (or changing to) the amount already
in force changes nothing and says so (no new entry, no event); an amount is dated within its
policy (a date after its end is a clear 422); and every decision, change, recording and
sanction gives a reason that says something."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from tests.builders import make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth
from tests.feed import events_since, mark

TODAY = "2027-06-10"
PAST = "2027-03-02"
UW = auth("underwriter")


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def record(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str, amount: str,
                 effective_from: str, **extra: Any) -> httpx.Response:  # fmt: skip
    return await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer_id, "amount": money(amount), "effective_from": effective_from,
        **extra})  # fmt: skip


async def change(uw: httpx.AsyncClient, limit_id: str, amount: str, **extra: Any
                 ) -> httpx.Response:  # fmt: skip
    return await uw.post(f"/v1/limits/{limit_id}/changes", headers=UW,
                         json={"new_amount": money(amount), "reason": "review", **extra})  # fmt: skip


def refused_at(response: httpx.Response, *loc: str | int) -> None:
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["body", *loc]], response.text


def entries(limit: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(h["amount"]["amount"], h["effective_from"], h["effective_to"])
            for h in limit["history"]]  # fmt: skip


async def test_recording_the_amount_already_recorded_again_adds_nothing_and_says_unchanged(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = (await make_buyer(uw))["id"]
    first = ok(await record(uw, policy, buyer, "50000", PAST, reason="migrated"), 201)
    assert first["unchanged"] is False
    since = await mark(uw)

    for again in (PAST, "2027-04-01", TODAY):  # the same amount, from its day or while in force
        replayed = ok(await record(uw, policy, buyer, "50000", again, reason="migrated"), 201)
        assert replayed["unchanged"] is True
        assert entries(replayed) == [("50000.00", PAST, None)]
        assert replayed["superseded"] == []
    assert await events_since(uw, since) == []

    # Other terms, another amount or an earlier start are changes, recorded as before.
    raised = ok(await record(uw, policy, buyer, "60000", PAST), 201)
    assert raised["unchanged"] is False
    assert entries(raised) == [("60000.00", PAST, None)]
    earlier = ok(await record(uw, policy, buyer, "60000", "2027-02-01"), 201)
    assert earlier["unchanged"] is False
    assert entries(earlier) == [("60000.00", "2027-02-01", None)]


async def test_a_change_to_the_amount_already_in_force_or_scheduled_adds_nothing(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = (await make_buyer(uw))["id"]
    limit_id = (await request_limit(uw, policy, buyer, "100000"))["limit_id"]
    since = await mark(uw)

    same = ok(await change(uw, limit_id, "100000"), 201)
    assert same["unchanged"] is True
    assert await events_since(uw, since) == []

    reduced = ok(await change(uw, limit_id, "60000"), 201)  # after the notice period
    assert reduced["unchanged"] is False
    since = await mark(uw)
    again = ok(await change(uw, limit_id, "60000"), 201)
    assert again["unchanged"] is True
    assert again["effective_from"] == reduced["effective_from"]
    assert await events_since(uw, since) == []
    limit = ok(await uw.get(f"/v1/limits/{limit_id}", headers=UW), 200)
    assert entries(limit) == [("100000.00", TODAY, reduced["effective_from"]),
                              ("60000.00", reduced["effective_from"], None)]  # fmt: skip
    assert limit["superseded"] == []

    kept = ok(await change(uw, limit_id, "100000"), 201)  # calls the reduction off: a change
    assert kept["unchanged"] is False


async def test_a_limit_recorded_from_after_its_policy_ends_is_refused(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = (await make_buyer(uw))["id"]
    for day in ("2028-01-01", "2990-01-01"):
        refused_at(await record(uw, policy, buyer, "50000", day), "effective_from")
    assert ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)["items"] == []
    ok(await record(uw, policy, buyer, "50000", "2026-12-01"), 201)  # granted ahead of the policy
    ok(await record(uw, policy, buyer, "60000", "2027-12-31"), 201)


async def test_a_change_dated_after_its_policy_ends_is_refused(uw: httpx.AsyncClient) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = (await make_buyer(uw))["id"]
    limit_id = (await request_limit(uw, policy, buyer, "100000"))["limit_id"]
    for amount in ("150000", "50000"):
        refused_at(await change(uw, limit_id, amount, effective_from="2990-01-01"),
                   "effective_from")  # fmt: skip
        refused_at(await change(uw, limit_id, amount, effective_from="2028-01-01"),
                   "effective_from")  # fmt: skip
    ok(await change(uw, limit_id, "50000", effective_from="2027-12-31"), 201)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
async def test_a_decision_change_recording_or_sanction_needs_a_reason_that_says_something(
    uw: httpx.AsyncClient, reason: str
) -> None:
    policy = await make_policy(uw)
    buyer = (await make_buyer(uw))["id"]
    limit_id = (await request_limit(uw, policy, buyer, "100000"))["limit_id"]
    referred = await request_limit(uw, policy, buyer, "5000000")
    assert referred["status"] == "referred"

    refused_at(await change(uw, limit_id, "120000", reason=reason), "reason")
    refused_at(await record(uw, policy, buyer, "120000", TODAY, reason=reason), "reason")
    refused_at(await uw.post(f"/v1/limit-requests/{referred['id']}/decision", headers=UW,
                             json={"decision": "refuse", "reason": reason}), "reason")  # fmt: skip
    refused_at(await uw.post("/v1/sanctions", headers=UW,
                             json={"buyer_id": buyer, "reason": reason}), "reason")  # fmt: skip
    limit = ok(await uw.get(f"/v1/limits/{limit_id}", headers=UW), 200)
    assert entries(limit) == [("100000.00", TODAY, None)]


def test_an_amount_changes_nothing_only_when_the_entry_in_force_runs_on_with_it() -> None:
    day = dt.date(2027, 3, 1)
    running = [rules.HistoryEntry(Decimal(100), day, None, 90)]
    ending = [rules.HistoryEntry(Decimal(60), dt.date(2027, 7, 1), None, 90),
              rules.HistoryEntry(Decimal(100), day, dt.date(2027, 7, 1), 90)]  # fmt: skip
    same = {"amount": Decimal(100), "terms": 90, "max_credit_period_days": 180}
    most = {"max_credit_period_days": 180}
    assert rules.changes_nothing(running, **same, effective_from=day)
    assert rules.changes_nothing(running, **same, effective_from=dt.date(2027, 5, 1))
    assert not rules.changes_nothing(running, **same, effective_from=dt.date(2027, 2, 1))
    assert not rules.changes_nothing(running, amount=Decimal(100), terms=60, effective_from=day,
                                     **most)  # fmt: skip
    assert not rules.changes_nothing(running, amount=Decimal(90), terms=90, effective_from=day,
                                     **most)  # fmt: skip
    assert not rules.changes_nothing(ending, **same, effective_from=day)  # calls the cut off
    assert rules.changes_nothing(ending, amount=Decimal(60), terms=90,
                                 effective_from=dt.date(2027, 7, 1), **most)  # fmt: skip
    assert rules.policy_open(dt.date(2027, 12, 31), dt.date(2027, 12, 31))
    assert not rules.policy_open(dt.date(2028, 1, 1), dt.date(2027, 12, 31))


def test_terms_left_out_and_the_policys_maximum_credit_period_are_the_same_terms() -> None:
    day = dt.date(2027, 3, 1)
    untermed = [rules.HistoryEntry(Decimal(100), day, None, None)]
    at_most = [rules.HistoryEntry(Decimal(100), day, None, 180)]
    for history, terms in ((untermed, 180), (at_most, None), (untermed, None)):
        assert rules.changes_nothing(history, amount=Decimal(100), terms=terms, effective_from=day,
                                     max_credit_period_days=180)  # fmt: skip
    assert not rules.changes_nothing(untermed, amount=Decimal(100), terms=120, effective_from=day,
                                     max_credit_period_days=180)  # fmt: skip
    assert rules.terms_that_apply(None, 180) == 180
    assert rules.terms_that_apply(60, 180) == 60


async def test_recording_again_with_terms_equal_to_the_policys_maximum_changes_nothing(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, max_credit_period_days=120)
    buyer = (await make_buyer(uw))["id"]
    first = ok(await record(uw, policy, buyer, "50000", PAST, reason="migrated"), 201)
    assert first["unchanged"] is False
    since = await mark(uw)

    for again in (PAST, TODAY):  # what applied by default, now named: the same cover
        replayed = ok(await record(uw, policy, buyer, "50000", again, payment_terms_days=120,
                                   reason="migrated"), 201)  # fmt: skip
        assert replayed["unchanged"] is True, replayed
        assert entries(replayed) == [("50000.00", PAST, None)]
    assert await events_since(uw, since) == []

    tomorrow = (dt.date.fromisoformat(TODAY) + dt.timedelta(days=1)).isoformat()
    shorter = ok(await record(uw, policy, buyer, "50000", tomorrow, payment_terms_days=90), 201)
    assert shorter["unchanged"] is False  # shorter terms are a change (from tomorrow on)


async def test_a_reduction_with_no_date_on_a_policy_ending_within_the_notice_period_is_refused(
    uw: httpx.AsyncClient,
) -> None:
    # Today 2027-06-10; the default notice of 30 days would date the reduction 2027-07-10.
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-06-30")
    buyer = (await make_buyer(uw))["id"]
    limit_id = (await request_limit(uw, policy, buyer, "100000"))["limit_id"]
    since = await mark(uw)

    refused = await change(uw, limit_id, "40000")
    refused_at(refused, "effective_from")
    detail = refused.json()["detail"]
    assert "2027-06-30" in detail and "30 days" in detail, detail
    assert "from 2027-06-11 to 2027-06-30" in detail, detail
    refused_at(await change(uw, limit_id, "0"), "effective_from")  # a withdrawal too
    assert await events_since(uw, since) == []
    limit = ok(await uw.get(f"/v1/limits/{limit_id}", headers=UW), 200)
    assert entries(limit) == [("100000.00", TODAY, None)]

    # Dated by the policy's end it is taken; an increase with no date applies today, as before.
    ok(await change(uw, limit_id, "40000", effective_from="2027-06-30"), 201)
    raised = ok(await change(uw, limit_id, "120000"), 201)
    assert raised["effective_from"] == TODAY


async def test_a_reduction_with_no_date_on_a_policy_ending_today_lapses_with_it(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date=TODAY)
    buyer = (await make_buyer(uw))["id"]
    limit_id = (await request_limit(uw, policy, buyer, "100000"))["limit_id"]
    refused = await change(uw, limit_id, "40000")
    refused_at(refused, "effective_from")
    assert "lapses with the policy" in refused.json()["detail"]


async def test_a_reduction_with_no_date_within_a_policy_that_runs_past_the_notice_is_taken(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-07-10")
    buyer = (await make_buyer(uw))["id"]
    limit_id = (await request_limit(uw, policy, buyer, "100000"))["limit_id"]
    reduced = ok(await change(uw, limit_id, "40000"), 201)  # today + 30 days: its last day
    assert reduced["effective_from"] == "2027-07-10"
