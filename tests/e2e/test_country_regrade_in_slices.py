"""A country's re-grade against the service as a process: its book in slices of three buyers
(the e2e services' setting), two slices at once on PostgreSQL, each its own transaction. Every
buyer is re-graded exactly once, every limit that must be halved is halved once, and each change
is announced once: the slices neither overlap nor leave a buyer out."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import Services, auth
from tests.feed import of_type, read_feed

pytestmark = pytest.mark.e2e

UW = auth("underwriter")
WEAK = {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
        "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
        "equity": money("1000000")}  # fmt: skip  # grade 7 at level 2, 9 at level 4: halved
COUNTRY = "NE"  # this test's own country in the e2e database


async def test_a_downgrade_in_slices_regrades_each_buyer_once_and_halves_each_limit_once(
    services: Services,
) -> None:
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        holder = f"ph-slices-{dt.datetime.now().timestamp():.0f}"
        policy = await make_policy(uw, holder)
        weak = [await make_buyer(uw, country=COUNTRY, indicators=WEAK) for _ in range(10)]
        strong = [await make_buyer(uw, country=COUNTRY) for _ in range(4)]
        limit_ids = {}
        for buyer in [*weak, *strong]:
            limit_ids[buyer["id"]] = ok(await uw.post(
                f"/v1/policies/{policy['id']}/limits", headers=UW, json={
                    "buyer_id": buyer["id"], "amount": money("100000"),
                    "effective_from": "2026-01-01", "payment_terms_days": 90,
                    "reason": "book migrated"}), 201)["id"]  # fmt: skip
        # A raise scheduled after the halving's date is halved too, from its own start.
        raised_on = (dt.date.today() + dt.timedelta(days=90)).isoformat()
        ok(await uw.post(f"/v1/limits/{limit_ids[weak[0]['id']]}/changes", headers=UW, json={
            "new_amount": money("150000"), "effective_from": raised_on, "reason": "raised"}),
            201)  # fmt: skip
        before = await read_feed(uw, auth("policyholder", holder))

        answer = ok(await uw.put(f"/v1/country-risks/{COUNTRY}", headers=UW,
                                 json={"level": 4}), 200)  # fmt: skip

        assert (answer["buyers_regraded"], answer["limits_changed"]) == (14, 10)
        assert answer["regrading_since"] is None
        for buyer in [*weak, *strong]:
            grades = ok(await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=UW), 200)
            causes = [g["cause"] for g in grades["items"]]
            assert causes.count("country_risk") == 1, causes
            assert grades["items"][0]["country_risk_level"] == 4
            assert grades["items"][0]["grade"] == (9 if buyer in weak else 4)
        limits = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)
        halved = {item["buyer_id"]: sorted((h["effective_from"], h["amount"]["amount"])
                                           for h in item["history"]) for item in limits["items"]}  # fmt: skip
        assert [a for _, a in halved[weak[0]["id"]]] == ["100000.00", "50000.00", "75000.00"]
        assert halved[weak[0]["id"]][-1][0] == raised_on
        assert all([a for _, a in halved[b["id"]]] == ["100000.00", "50000.00"]
                   for b in weak[1:]), halved  # fmt: skip
        assert all([a for _, a in halved[b["id"]]] == ["100000.00"] for b in strong), halved
        events = await read_feed(uw, auth("policyholder", holder))
        new = events[len(before) :]
        assert len(of_type(new, "buyer.grade_changed")) == 14
        assert sorted(e["data"]["limit_id"] for e in of_type(new, "limit.changed")) == sorted(
            [limit_ids[weak[0]["id"]], *(limit_ids[b["id"]] for b in weak)]
        )  # one change per amount halved: the raised limit's two
        again = ok(await uw.put(f"/v1/country-risks/{COUNTRY}", headers=UW,
                                json={"level": 4}), 200)  # fmt: skip
        assert (again["buyers_regraded"], again["limits_changed"]) == (0, 0)


async def test_downgrades_of_several_countries_at_once_each_run_to_the_end(
    services: Services,
) -> None:
    """Four countries' runs at once share the pool of work committed in parts (four connections):
    each waits its turn for a connection, none fails, each re-grades its own buyers."""
    countries = ("BF", "GN", "SN", "TG")
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        for country in countries:
            for _ in range(7):
                await make_buyer(uw, country=country, indicators=WEAK)
        answers = await asyncio.gather(*(
            uw.put(f"/v1/country-risks/{country}", headers=UW, json={"level": 4})
            for country in countries))  # fmt: skip
    assert [a.status_code for a in answers] == [200] * len(countries), [a.text for a in answers]
    assert [a.json()["buyers_regraded"] for a in answers] == [7] * len(countries)
