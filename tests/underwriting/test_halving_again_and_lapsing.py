"""A downgrade's halving (domain.md, Limit changes: a limit whose buyer reaches grade 8–9 is reduced
to half after the notice period), on both paths alike — a signal on the one buyer, a country's
re-grade of the whole book:

- once the first downgrade's cut applies, a new downgrade halves again: the amount then in force
  and the half the first one scheduled on a later amount (a raise), which is that downgrade's cut
  already made, not one still to come;
- a limit whose policy ends before the halving's date (within the notice period) is not halved
  (an entry after the end would never take effect): it lapses with the policy, and the signal's
  answer says why, next to the limit changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests.builders import declared_on, make_buyer, make_policy, money, ok
from tests.conftest import auth, unique

UW = auth("underwriter")
TODAY = "2027-06-10"
LATER = dt.date(2027, 7, 20)  # the first cut (from 2027-07-10) in force, its later half not yet
WEAK = {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
        "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
        "equity": money("1000000")}  # fmt: skip  # grade 6 at level 1, 7 at 2, 8 at 3
REASON = "buyer downgraded to grade 8: limit halved after the 30-day notice period"


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def set_level(uw: httpx.AsyncClient, country: str, level: int) -> dict[str, Any]:
    return ok(await uw.put(f"/v1/country-risks/{country}", headers=UW, json={"level": level}), 200)


async def judgment(uw: httpx.AsyncClient, buyer_id: str, on: str) -> dict[str, Any]:
    return ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=UW, json={
        "kind": "court_judgment", "observed_on": on, "details": "judgment"}), 201)  # fmt: skip


async def recorded(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str) -> str:
    limit = ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer_id, "amount": money("100000"), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated"}), 201)  # fmt: skip
    return str(limit["id"])


async def history(uw: httpx.AsyncClient, limit_id: str) -> list[tuple[str, str, str | None, str]]:
    """The limit's amounts in force: (amount, from, to, reason)."""
    limit = ok(await uw.get(f"/v1/limits/{limit_id}", headers=UW), 200)
    return sorted((h["amount"]["amount"], h["effective_from"], h["effective_to"], h["reason"])
                  for h in limit["history"])  # fmt: skip


async def test_a_new_downgrade_after_the_first_cut_applied_halves_its_later_half_too(
    uw: httpx.AsyncClient,
) -> None:
    signal_country, book_country = "MV", "MU"  # this test's own countries
    policy = await make_policy(uw, unique("ph"), start_date="2027-01-01", end_date="2027-12-31")
    buyers = [await make_buyer(uw, country=c, indicators=WEAK)
              for c in (signal_country, book_country)]  # fmt: skip
    limits = []
    for buyer in buyers:
        limit_id = await recorded(uw, policy, buyer["id"])
        ok(await uw.post(f"/v1/limits/{limit_id}/changes", headers=UW, json={
            "new_amount": money("150000"), "effective_from": "2027-09-01",
            "reason": "raise"}), 201)  # fmt: skip
        limits.append(limit_id)
    by_signal = buyers[0]
    assert (await judgment(uw, by_signal["id"], TODAY))["grade"] == 8
    assert (await set_level(uw, book_country, 3))["limits_changed"] == 1

    with declared_on(uw, LATER):  # the buyers better again, then at grade 8 once more
        await set_level(uw, signal_country, 1)
        again = await judgment(uw, by_signal["id"], LATER.isoformat())
        assert again["grade_before"] == 7 and again["grade"] == 8
        assert (await set_level(uw, book_country, 2))["limits_changed"] == 0
        assert (await set_level(uw, book_country, 3))["limits_changed"] == 1
        assert sorted((c["old_amount"]["amount"], c["new_amount"]["amount"], c["effective_from"])
                      for c in again["limit_changes"]) == [
            ("50000.00", "25000.00", "2027-08-19"), ("75000.00", "37500.00", "2027-09-01")]  # fmt: skip
        expected = [
            ("100000.00", "2027-01-01", "2027-07-10", "book migrated"),
            ("25000.00", "2027-08-19", "2027-09-01", REASON),
            ("37500.00", "2027-09-01", None, REASON),
            ("50000.00", "2027-07-10", "2027-08-19", REASON),
        ]
        assert await history(uw, limits[0]) == expected
        assert await history(uw, limits[1]) == expected
        for level in (2, 3):  # down, up and down again before the new cut applies: halved once
            assert (await set_level(uw, book_country, level))["limits_changed"] == 0
        assert await history(uw, limits[1]) == expected


async def test_a_downgrade_leaves_a_limit_whose_policy_ends_within_the_notice_period_to_lapse(
    uw: httpx.AsyncClient,
) -> None:
    book_country = "NR"  # this test's own country
    ending = await make_policy(uw, unique("ph"), start_date="2027-01-01", end_date="2027-06-25")
    running = await make_policy(uw, unique("ph"), start_date="2027-01-01", end_date="2027-12-31")
    by_signal = await make_buyer(uw, indicators=WEAK)
    by_book = await make_buyer(uw, country=book_country, indicators=WEAK)
    kept = {b["id"]: await recorded(uw, ending, b["id"]) for b in (by_signal, by_book)}
    halved = {b["id"]: await recorded(uw, running, b["id"]) for b in (by_signal, by_book)}

    answer = await judgment(uw, by_signal["id"], TODAY)
    assert (await set_level(uw, book_country, 3))["limits_changed"] == 1

    assert answer["grade"] == 8
    assert [c["limit_id"] for c in answer["limit_changes"]] == [halved[by_signal["id"]]]
    [left] = answer["limits_not_halved"]
    assert (left["limit_id"], left["policy_id"], left["reason"]) == (
        kept[by_signal["id"]],
        ending["id"],
        "policy_ends_within_notice_period",
    )
    assert "2027-06-25" in left["message"] and "2027-07-10" in left["message"]
    for buyer in (by_signal, by_book):
        assert await history(uw, kept[buyer["id"]]) == [
            ("100000.00", "2027-01-01", None, "book migrated")
        ]
        assert await history(uw, halved[buyer["id"]]) == [
            ("100000.00", "2027-01-01", "2027-07-10", "book migrated"),
            ("50000.00", "2027-07-10", None, REASON),
        ]
