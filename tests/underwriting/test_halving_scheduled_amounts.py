"""A downgrade halves every amount of a limit from its effective date on (domain.md, Limit
changes: a limit whose buyer reaches grade 8–9 is reduced to half after the notice period): the
amount in force then from that date, and an amount already scheduled to start later — a limit
recorded from a later date, a raise scheduled after a cut to zero, a raise after the date — from
its own start, with the halving's reason. Each halved amount is a change in the answer and a
`limit.changed`; the whole-book re-grade halves exactly as a signal on the one buyer does, and a
level set again before the cut applies halves nothing more. An insolvency that cancels a raise
scheduled after a cut to zero reports the raise as the amount it withdraws."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import auth, unique
from tests.feed import events_since, mark, of_type

UW = auth("underwriter")
TODAY = "2027-06-10"
HALVING_FROM = "2027-07-10"  # the 30-day notice period
COUNTRY = "MW"  # this test's own country: the database is shared by the whole run
WEAK = {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
        "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
        "equity": money("1000000")}  # fmt: skip  # grade 7 at level 2, 8 at level 3
REASON = "buyer downgraded to grade 8: limit halved after the 30-day notice period"


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def record(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str, amount: str,
                 since: str) -> str:  # fmt: skip
    limit = ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer_id, "amount": money(amount), "effective_from": since,
        "payment_terms_days": 90, "reason": "book migrated"}), 201)  # fmt: skip
    return str(limit["id"])


async def change(uw: httpx.AsyncClient, limit_id: str, amount: str, since: str) -> None:
    ok(await uw.post(f"/v1/limits/{limit_id}/changes", headers=UW, json={
        "new_amount": money(amount), "effective_from": since, "reason": "underwriter"}), 201)  # fmt: skip


async def book_with_scheduled_amounts(
    uw: httpx.AsyncClient, policies: list[dict[str, Any]], buyer_id: str
) -> None:
    """On the three policies: a limit recorded from after the halving's date; one cut to zero
    tomorrow with a raise scheduled after that date; one in force with a raise after it."""
    await record(uw, policies[0], buyer_id, "80000", "2027-07-20")
    at_zero = await record(uw, policies[1], buyer_id, "100000", "2027-01-01")
    await change(uw, at_zero, "0", "2027-06-11")
    await change(uw, at_zero, "60000", "2027-07-30")
    raised = await record(uw, policies[2], buyer_id, "100000.01", "2027-01-01")
    await change(uw, raised, "150001", "2027-08-01")


async def histories(
    uw: httpx.AsyncClient, policies: list[dict[str, Any]], buyer_id: str
) -> list[list[tuple[str, str, str | None, str]]]:
    """Per policy, the buyer's limit's amounts in force: (amount, from, to, reason)."""
    found = []
    for policy in policies:
        page = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)
        [item] = [i for i in page["items"] if i["buyer_id"] == buyer_id]
        found.append(sorted((h["amount"]["amount"], h["effective_from"], h["effective_to"],
                             h["reason"]) for h in item["history"]))  # fmt: skip
    return found


EXPECTED = [
    [("40000.00", "2027-07-20", None, REASON)],
    [("0.00", "2027-06-11", "2027-07-30", "underwriter"),
     ("100000.00", "2027-01-01", "2027-06-11", "book migrated"),
     ("30000.00", "2027-07-30", None, REASON)],
    [("100000.01", "2027-01-01", HALVING_FROM, "book migrated"),
     ("50000.01", HALVING_FROM, "2027-08-01", REASON),
     ("75000.50", "2027-08-01", None, REASON)],
]  # fmt: skip


def changes_of(events: list[dict[str, Any]], buyer_id: str) -> list[dict[str, Any]]:
    """The buyer's `limit.changed` payloads, without the ids that differ between buyers."""
    return sorted(({k: v for k, v in e["data"].items() if k not in ("limit_id", "buyer_id")}
                   for e in of_type(events, "limit.changed") if e["data"]["buyer_id"] == buyer_id),
                  key=lambda d: (d["policy_id"], d["effective_from"]))  # fmt: skip


async def test_a_downgrade_halves_the_amounts_scheduled_after_its_date_on_both_paths_alike(
    uw: httpx.AsyncClient,
) -> None:
    policies = [await make_policy(uw, unique("ph"), start_date="2027-01-01",
                                  end_date="2027-12-31") for _ in range(3)]  # fmt: skip
    by_signal = await make_buyer(uw, indicators=WEAK)
    by_book = await make_buyer(uw, country=COUNTRY, indicators=WEAK)
    assert by_signal["grade"] == by_book["grade"] == 7
    for buyer in (by_signal, by_book):
        await book_with_scheduled_amounts(uw, policies, buyer["id"])
    since = await mark(uw)

    answer = ok(await uw.post(f"/v1/buyers/{by_signal['id']}/signals", headers=UW, json={
        "kind": "court_judgment", "observed_on": TODAY, "details": "judgment"}), 201)  # fmt: skip
    regraded = ok(await uw.put(f"/v1/country-risks/{COUNTRY}", headers=UW, json={"level": 3}),
                  200)  # fmt: skip

    assert answer["grade"] == 8
    assert ok(await uw.get(f"/v1/buyers/{by_book['id']}", headers=UW), 200)["grade"] == 8
    assert regraded["limits_changed"] == 3
    assert sorted((c["old_amount"]["amount"], c["new_amount"]["amount"], c["effective_from"],
                   c["reason"]) for c in answer["limit_changes"]) == [
        ("100000.01", "50000.01", HALVING_FROM, REASON),
        ("150001.00", "75000.50", "2027-08-01", REASON),
        ("60000.00", "30000.00", "2027-07-30", REASON),
        ("80000.00", "40000.00", "2027-07-20", REASON),
    ]  # fmt: skip
    assert await histories(uw, policies, by_signal["id"]) == EXPECTED
    assert await histories(uw, policies, by_book["id"]) == EXPECTED

    events = await events_since(uw, since)
    announced = changes_of(events, by_signal["id"])
    assert len(announced) == 4
    assert all(e["change"] == "halving" and e["source"] == "signal" and e["reason"] == REASON
               and e["payment_terms_days"] == 90 for e in announced)  # fmt: skip
    assert sorted((e["previous_amount"]["amount"], e["new_amount"]["amount"],
                   e["effective_from"]) for e in announced) == sorted(
        (c["old_amount"]["amount"], c["new_amount"]["amount"], c["effective_from"])
        for c in answer["limit_changes"])  # fmt: skip
    assert changes_of(events, by_book["id"]) == announced

    for level in (2, 3):  # set down and up again before the cuts apply: halved once
        assert ok(await uw.put(f"/v1/country-risks/{COUNTRY}", headers=UW,
                               json={"level": level}), 200)["limits_changed"] == 0  # fmt: skip
    assert await histories(uw, policies, by_book["id"]) == EXPECTED


async def test_an_insolvency_cancelling_a_scheduled_raise_reports_the_raise_as_withdrawn(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = await make_buyer(uw)
    limit_id = await record(uw, policy, buyer["id"], "100000", "2027-01-01")
    await change(uw, limit_id, "0", "2027-06-11")
    await change(uw, limit_id, "60000", "2027-07-30")
    since = await mark(uw)
    answer = ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": TODAY, "details": "court filing"}), 201)  # fmt: skip
    [withdrawn] = answer["limit_changes"]
    assert (withdrawn["old_amount"], withdrawn["new_amount"]) == (money("60000.00"),
                                                                  money("0.00"))  # fmt: skip
    [announced] = of_type(await events_since(uw, since), "limit.changed")
    assert announced["data"]["change"] == "withdrawal"
    assert announced["data"]["previous_amount"] == money("60000.00")


def entry(amount: str, since: str, until: str | None) -> rules.HistoryEntry:
    return rules.HistoryEntry(D(amount), dt.date.fromisoformat(since),
                              None if until is None else dt.date.fromisoformat(until))  # fmt: skip


def test_a_halving_halves_each_amount_above_zero_in_force_on_its_date_or_starting_later() -> None:
    on = dt.date(2027, 7, 10)
    assert rules.halves(D(100), None, on) and rules.halves(D(100), dt.date(2027, 7, 11), on)
    assert not rules.halves(D(100), on, on)  # ended on the halving's date
    assert not rules.halves(D(0), None, on)  # nothing to halve
    assert rules.halved_from(dt.date(2027, 1, 1), on) == on
    assert rules.halved_from(dt.date(2027, 8, 1), on) == dt.date(2027, 8, 1)


def test_a_withdrawal_reports_what_it_takes_away() -> None:
    on = dt.date(2027, 6, 11)
    at_zero = [entry("60000", "2027-07-30", None), entry("0", "2027-06-11", "2027-07-30"),
               entry("100000", "2027-01-01", "2027-06-11")]  # fmt: skip
    assert rules.amount_withdrawn(at_zero, on) == D(60000)
    assert rules.amount_withdrawn([entry("50000", "2027-06-20", None)], on) == D(50000)
    running = [entry("90000", "2027-08-01", None), entry("70000", "2027-01-01", "2027-08-01")]
    assert rules.amount_withdrawn(running, on) == D(70000)
    assert rules.amount_withdrawn([entry("0", "2027-01-01", None)], on) == D(0)
