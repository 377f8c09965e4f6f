"""A limit recorded from elsewhere (a migrated book, possibly from a past date) never takes away
the cover already answered: the history as known at the end of each day stands, so a recording may
lower an amount (or shorten its terms) only from today on for what was recorded, from tomorrow on
for what this system granted; a first recording and any raise may start in the past; an entry a
later one replaces stays visible, marked superseded."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from tests.builders import check, declared_on, make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth

TODAY = "2027-06-10"
TOMORROW = "2027-06-11"
D_200 = "2026-11-22"  # 200 days before today
D_100 = "2027-03-02"  # 100 days before today
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


async def covered_on(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str,
                     shipped: str) -> dict[str, str]:  # fmt: skip
    """The cover answered for a 200,000 invoice shipped on `shipped`, due 60 days later."""
    due = (dt.date.fromisoformat(shipped) + dt.timedelta(days=60)).isoformat()
    answer = ok(await check(uw, policy, buyer_id, "200000", shipped, due), 200)
    return answer["covered_amount"]  # type: ignore[no-any-return]


async def the_limit(uw: httpx.AsyncClient, policy: dict[str, Any]) -> dict[str, Any]:
    [limit] = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)["items"]
    return limit  # type: ignore[no-any-return]


def refused_as_retroactive(response: httpx.Response, earliest: str) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "retroactive-reduction"
    assert problem["earliest_effective_from"] == earliest


async def test_a_recorded_limit_may_not_lower_a_recorded_amount_on_days_already_past(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    ok(await record(uw, policy, buyer["id"], "100000", D_200), 201)  # a first recording, past
    assert await covered_on(uw, policy, buyer["id"], D_100) == money("100000.00")

    refused_as_retroactive(await record(uw, policy, buyer["id"], "50000", D_200), TOMORROW)
    refused_as_retroactive(await record(uw, policy, buyer["id"], "50000", D_100), TOMORROW)
    refused_as_retroactive(await record(uw, policy, buyer["id"], "100000", D_100,
                                        payment_terms_days=30), TOMORROW)  # shorter terms  # fmt: skip

    assert await covered_on(uw, policy, buyer["id"], D_100) == money("100000.00")
    limit = await the_limit(uw, policy)
    assert [(h["amount"], h["effective_from"]) for h in limit["history"]] == [
        (money("100000.00"), D_200)]  # fmt: skip
    assert limit["superseded"] == []

    # Nor today: goods shipped today stay covered (domain.md: a reduction applies at least
    # from tomorrow), whoever granted the amount in force.
    refused_as_retroactive(await record(uw, policy, buyer["id"], "50000", TODAY), TOMORROW)
    ok(await record(uw, policy, buyer["id"], "50000", TOMORROW), 201)
    assert await covered_on(uw, policy, buyer["id"], D_100) == money("100000.00")
    assert await covered_on(uw, policy, buyer["id"], TODAY) == money("100000.00")
    assert await covered_on(uw, policy, buyer["id"], TOMORROW) == money("50000.00")


async def test_the_days_past_since_an_entry_was_recorded_stand_as_they_were_answered(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    with declared_on(uw, dt.date(2027, 3, 1)):
        ok(await record(uw, policy, buyer["id"], "100000", "2027-01-01"), 201)
    # Recorded on 1 March; a shipment of 1 April was answered 100,000 on 1 April.
    refused_as_retroactive(await record(uw, policy, buyer["id"], "50000", "2027-04-01"),
                           TOMORROW)  # fmt: skip
    assert await covered_on(uw, policy, buyer["id"], "2027-04-01") == money("100000.00")


async def test_raising_a_recorded_limit_from_a_past_date_is_allowed_and_keeps_what_it_replaced(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    ok(await record(uw, policy, buyer["id"], "100000", D_200, reason="migrated: first"), 201)
    ok(await record(uw, policy, buyer["id"], "150000", D_200, reason="migrated: raised"), 201)
    assert await covered_on(uw, policy, buyer["id"], D_100) == money("150000.00")

    limit = await the_limit(uw, policy)
    assert [(h["amount"], h["effective_from"], h["reason"]) for h in limit["history"]] == [
        (money("150000.00"), D_200, "migrated: raised")]  # fmt: skip
    [replaced] = limit["superseded"]
    assert (replaced["amount"], replaced["effective_from"], replaced["reason"]) == (
        money("100000.00"), D_200, "migrated: first")  # fmt: skip
    assert replaced["superseded_at"] is not None
    assert replaced["decided_by"] and replaced["source"] == "external"
    by_id = ok(await uw.get(f"/v1/limits/{limit['id']}", headers=UW), 200)
    assert by_id["superseded"] == limit["superseded"]


async def test_an_entry_replaced_from_the_day_it_starts_stays_visible_as_superseded(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    ok(await record(uw, policy, buyer["id"], "100000", TOMORROW), 201)
    # A correction before it starts.
    recorded = ok(await record(uw, policy, buyer["id"], "80000", TOMORROW), 201)

    assert [h["amount"] for h in recorded["history"]] == [money("80000.00")]
    assert [(h["amount"], h["effective_from"]) for h in recorded["superseded"]] == [
        (money("100000.00"), TOMORROW)]  # fmt: skip
    assert recorded["amount_in_force"] is None  # nothing in force before tomorrow


async def test_a_recorded_limit_keeps_this_systems_grant_until_tomorrow_and_names_that_day(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    assert (await request_limit(uw, policy, buyer["id"], "200000"))["status"] == "approved"
    refused_as_retroactive(await record(uw, policy, buyer["id"], "10000", TODAY), "2027-06-11")


async def test_a_recorded_limit_never_brings_back_the_cover_an_insolvency_withdrew(
    uw: httpx.AsyncClient,
) -> None:
    """Insolvency withdraws every limit on the buyer from the day after: a recording (a raise
    from a past date, a lower amount from today, a first limit) would stand after that day."""
    policy = await make_policy(uw)
    buyer, newcomer = await make_buyer(uw), await make_buyer(uw)
    ok(await record(uw, policy, buyer["id"], "50000", D_200), 201)
    for insolvent in (buyer, newcomer):
        ok(await uw.post(f"/v1/buyers/{insolvent['id']}/signals", headers=UW, json={
            "kind": "insolvency_filing", "observed_on": TODAY, "details": "court filing"}),
            201)  # fmt: skip
    tomorrow = "2027-06-11"
    assert await covered_on(uw, policy, buyer["id"], tomorrow) == money("0.00")

    for buyer_id, amount, since in ((buyer["id"], "80000", D_100), (buyer["id"], "30000", TODAY),
                                    (buyer["id"], "80000", "2027-07-01"),
                                    (newcomer["id"], "80000", D_100)):  # fmt: skip
        refused = await record(uw, policy, buyer_id, amount, since)
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"] == "buyer-not-covered"
        assert await covered_on(uw, policy, buyer_id, "2027-07-10") == money("0.00")
    assert await covered_on(uw, policy, buyer["id"], D_100) == money("50000.00")


def entry(amount: int, since: dt.date, until: dt.date | None, *, recorded: bool,
          terms: int | None = None) -> rules.HistoryEntry:  # fmt: skip
    return rules.HistoryEntry(Decimal(amount), since, until, terms, recorded_elsewhere=recorded)


def test_a_recording_is_allowed_from_the_first_day_whose_cover_does_not_stand() -> None:
    today = dt.date(2027, 6, 10)
    jan, mar, may = dt.date(2027, 1, 1), dt.date(2027, 3, 1), dt.date(2027, 5, 1)

    def allowed_from(history: list[rules.HistoryEntry], amount: int, since: dt.date,
                     terms: int | None = None) -> dt.date | None:  # fmt: skip
        return rules.recording_allowed_from(history, amount=Decimal(amount), terms=terms,
                                            effective_from=since, today=today,
                                            max_credit_period_days=180)  # fmt: skip

    recorded = [entry(100, jan, None, recorded=True)]
    assert allowed_from([], 50, jan) is None  # a first recording may start in the past
    assert allowed_from(recorded, 150, jan) is None  # raising is always allowed
    tomorrow = today + dt.timedelta(days=1)
    assert allowed_from(recorded, 50, jan) == tomorrow  # past days and today stand
    assert allowed_from(recorded, 50, today) == tomorrow  # goods shipped today stay covered
    assert allowed_from(recorded, 50, tomorrow) is None
    assert allowed_from(recorded, 100, mar, terms=30) == tomorrow  # shorter terms take cover too
    # Terms left out are the policy's maximum credit period: the same terms, not longer ones.
    assert allowed_from(recorded, 100, jan, terms=180) is None
    granted = [entry(100, jan, None, recorded=False, terms=90)]
    assert allowed_from(granted, 50, today) == tomorrow
    ended = [entry(100, jan, mar, recorded=True), entry(40, mar, may, recorded=True),
             entry(60, may, None, recorded=True)]  # fmt: skip
    assert allowed_from(ended, 50, jan) == tomorrow  # lower than the 60 from May
    assert allowed_from(ended, 70, jan) == mar  # lower only than the 100 of January–February
