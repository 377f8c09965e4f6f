"""A country's re-grade commits its book a slice at a time, after the level itself: a run cut short
(the process killed between slices) leaves the country saying since when it is re-grading, and
the next setting of the country finishes it, re-grading only the buyers still graded at the old
level (domain.md, Grade: every buyer of the country re-graded, each once)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from services.underwriting.models import Buyer, BuyerGrade, CountryRisk
from shared.db import get_session, utcnow
from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import auth

UW = auth("underwriter")
TODAY = "2027-06-10"
COUNTRY = "TD"  # this file's own country: the database is shared by the whole run
WEAK = {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
        "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
        "equity": money("1000000")}  # fmt: skip  # grade 7 at level 2, 9 at level 4: halved


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    monkeypatch.setenv("TCI_UW_REGRADE_SLICE_BUYERS", "2")
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def session_of(uw: httpx.AsyncClient) -> Any:
    override = uw._transport.app.dependency_overrides[get_session]  # type: ignore[attr-defined]
    return await override().__anext__()


async def test_a_run_cut_short_is_finished_by_the_next_setting_and_each_buyer_graded_once(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    weak = [await make_buyer(uw, country=COUNTRY, indicators=WEAK) for _ in range(3)]
    strong = [await make_buyer(uw, country=COUNTRY) for _ in range(2)]
    for buyer in [*weak, *strong]:
        ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
            "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": "2027-01-01",
            "payment_terms_days": 90, "reason": "book migrated"}), 201)  # fmt: skip
    # As a run killed after its level and its first slice (one weak buyer) were committed.
    session = await session_of(uw)
    since = utcnow()
    session.add(CountryRisk(country=COUNTRY, level=4, updated_by="uw", updated_at=since,
                            regrading_since=since))  # fmt: skip
    await session.execute(update(Buyer).where(Buyer.id == weak[0]["id"])
                          .values(graded_at=since + dt.timedelta(milliseconds=1)))  # fmt: skip
    await session.flush()

    shown = ok(await uw.get(f"/v1/country-risks/{COUNTRY}", headers=UW), 200)
    assert shown["level"] == 4 and shown["regrading_since"] is not None

    finished = ok(await uw.put(f"/v1/country-risks/{COUNTRY}", headers=UW, json={"level": 4}),
                  200)  # fmt: skip

    assert (finished["buyers_regraded"], finished["limits_changed"]) == (4, 2)
    assert ok(await uw.get(f"/v1/country-risks/{COUNTRY}", headers=UW),
              200)["regrading_since"] is None  # fmt: skip
    rows = await session.execute(
        select(BuyerGrade.buyer_id, BuyerGrade.grade).where(
            BuyerGrade.cause == "country_risk",
            BuyerGrade.buyer_id.in_([b["id"] for b in [*weak, *strong]])))  # fmt: skip
    assert sorted(rows.all()) == sorted(
        [(b["id"], 9) for b in weak[1:]] + [(b["id"], 4) for b in strong]
    )
    again = ok(await uw.put(f"/v1/country-risks/{COUNTRY}", headers=UW, json={"level": 4}), 200)
    assert (again["buyers_regraded"], again["limits_changed"]) == (0, 0)


async def test_in_slices_of_two_every_buyer_of_the_country_is_regraded_and_no_other(
    uw: httpx.AsyncClient,
) -> None:
    country = "NE"
    buyers = [await make_buyer(uw, country=country, indicators=WEAK) for _ in range(5)]
    other = await make_buyer(uw, country="ML", indicators=WEAK)
    answer = ok(await uw.put(f"/v1/country-risks/{country}", headers=UW, json={"level": 4}), 200)
    assert answer["buyers_regraded"] == 5
    for buyer in buyers:
        assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"] == 9
    assert ok(await uw.get(f"/v1/buyers/{other['id']}", headers=UW), 200)["grade"] == 7
