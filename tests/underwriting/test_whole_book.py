"""A country's risk level re-grades the whole book at once (domain.md, Grade): every buyer of the
country and no other, each with an entry of its grade history; each limit of a buyer newly at
grade 8–9 halved after its policy's notice period, with its reason, in the limit's history; every
change announced (`buyer.grade_changed`, `limit.changed`) to the right parties; the answer counts
them. The same level again changes nothing. A sanction takes effect on the next check at once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.underwriting.models import BuyerGrade
from shared.db import get_session
from tests.builders import check, make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique
from tests.feed import events_since, mark, of_type, read_feed

UW = auth("underwriter")
TODAY = "2027-06-10"
# Each test grades its own country: the database is shared by the whole run.
WEAK = {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
        "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
        "equity": money("1000000")}  # fmt: skip  # 6 points: grade 7 at level 2, 9 at level 4


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def set_level(uw: httpx.AsyncClient, country: str, level: int) -> dict[str, Any]:
    return ok(await uw.put(f"/v1/country-risks/{country}", headers=UW, json={"level": level}), 200)


async def limit_of(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str,
                   amount: str) -> dict[str, Any]:  # fmt: skip
    return ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer_id, "amount": money(amount), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated"}), 201)  # fmt: skip


async def buyers_of(uw: httpx.AsyncClient, country: str) -> list[dict[str, Any]]:
    page = ok(await uw.get("/v1/buyers", headers=UW, params={"country": country, "limit": 200}),
              200)  # fmt: skip
    assert page["next_cursor"] is None
    return page["items"]  # type: ignore[no-any-return]


async def grade_history(uw: httpx.AsyncClient, buyer_id: str) -> list[tuple[str, int, str]]:
    """The buyer's grade history, read in the test's own transaction (no route lists it)."""
    override = uw._transport.app.dependency_overrides[get_session]  # type: ignore[attr-defined]
    session = await override().__anext__()
    rows = await session.execute(
        select(BuyerGrade.cause, BuyerGrade.grade, BuyerGrade.graded_on, BuyerGrade.factors)
        .where(BuyerGrade.buyer_id == buyer_id).order_by(BuyerGrade.created_at, BuyerGrade.id))  # fmt: skip
    return [(cause, grade, on.isoformat(), factors) for cause, grade, on, factors in rows.all()]


async def history(uw: httpx.AsyncClient, policy: dict[str, Any]) -> dict[str, list[Any]]:
    page = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)
    return {item["buyer_id"]: [(h["amount"]["amount"], h["effective_from"], h.get("reason"))
                               for h in item["history"]] for item in page["items"]}  # fmt: skip


async def test_a_downgrade_regrades_every_buyer_of_the_country_halves_the_limits_reaching_8_and_announces_it(
    uw: httpx.AsyncClient,
) -> None:
    country, elsewhere = "MN", "KG"
    holder, bank = unique("ph"), unique("bank")
    policy = await make_policy(uw, holder, start_date="2027-01-01", end_date="2027-12-31")
    ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", headers=UW,
                     json={"bank_id": bank}), 201)  # fmt: skip
    weak = await make_buyer(uw, country=country, indicators=WEAK)
    strong = await make_buyer(uw, country=country)
    unrelated = await make_buyer(uw, country=elsewhere, indicators=WEAK)
    assert (weak["grade"], strong["grade"], unrelated["grade"]) == (7, 2, 7)
    for buyer, amount in ((weak, "100000.01"), (strong, "80000"), (unrelated, "60000")):
        await limit_of(uw, policy, buyer["id"], amount)
    book = await buyers_of(uw, country)
    since = await mark(uw)

    answer = await set_level(uw, country, 4)

    assert answer == {"country": country, "level": 4, "listed": True,
                      "buyers_regraded": len(book), "limits_changed": 1,
                      "regrading_since": None}  # fmt: skip
    after = {b["id"]: b for b in await buyers_of(uw, country)}
    assert (after[weak["id"]]["grade"], after[strong["id"]]["grade"]) == (9, 4)
    assert {"factor": "country_risk_level", "value": "4", "points": "3", "note": "scored"} in \
        after[strong["id"]]["grade_factors"]  # fmt: skip
    other = ok(await uw.get(f"/v1/buyers/{unrelated['id']}", headers=UW), 200)
    assert other["grade"] == 7 and other["grade_factors"] == unrelated["grade_factors"]
    limits = await history(uw, policy)
    reason = "buyer downgraded to grade 9: limit halved after the 30-day notice period"
    assert [(a, f) for a, f, _ in limits[weak["id"]]] == [
        ("100000.01", "2027-01-01"), ("50000.01", "2027-07-10")]  # half-up to the cent  # fmt: skip
    assert limits[weak["id"]][-1][2] in (reason, None)
    assert [a for a, _, _ in limits[strong["id"]]] == ["80000.00"]  # grade 4: not halved
    assert [a for a, _, _ in limits[unrelated["id"]]] == ["60000.00"]

    events = await events_since(uw, since)
    moved = {e["data"]["buyer_id"]: e["data"] for e in of_type(events, "buyer.grade_changed")}
    assert moved[weak["id"]] == {"buyer_id": weak["id"], "previous_grade": 7, "grade": 9,
                                 "graded_on": TODAY, "cause": "country_risk"}  # fmt: skip
    assert moved[strong["id"]]["grade"] == 4 and unrelated["id"] not in moved
    [halved] = of_type(events, "limit.changed")
    assert halved["data"] == {
        "limit_id": halved["data"]["limit_id"], "policy_id": policy["id"], "buyer_id": weak["id"],
        "change": "halving", "previous_amount": money("100000.01"),
        "new_amount": money("50000.01"), "effective_from": "2027-07-10",
        "payment_terms_days": 90, "reason": reason, "source": "signal", "cancelled": [],
    }  # fmt: skip
    expected = {e["id"] for e in events if e["data"]["buyer_id"] in (weak["id"], strong["id"])}
    for party in (auth("policyholder", holder), auth("bank", bank)):
        heard = {e["id"] for e in await read_feed(uw, party)}
        assert heard & {e["id"] for e in events} == expected
    assert await read_feed(uw, auth("policyholder", unique("ph"))) == []


async def test_the_grade_history_gets_one_entry_per_regraded_buyer_and_the_same_level_again_changes_nothing(
    uw: httpx.AsyncClient,
) -> None:
    country = "UY"
    buyer = await make_buyer(uw, country=country, indicators=WEAK)
    first = await set_level(uw, country, 3)
    assert first["buyers_regraded"] == len(await buyers_of(uw, country)) >= 1
    regraded = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)
    assert regraded["grade"] == 8
    entries = await grade_history(uw, buyer["id"])
    assert [(c, g, on) for c, g, on, _ in entries] == [
        ("registration", 7, TODAY), ("country_risk", 8, TODAY)]  # fmt: skip
    assert entries[-1][3] == regraded["grade_factors"]
    since = await mark(uw)
    again = await set_level(uw, country, 3)
    assert (again["buyers_regraded"], again["limits_changed"]) == (0, 0)
    assert await events_since(uw, since) == []
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200) == regraded
    assert len(await grade_history(uw, buyer["id"])) == 2


async def test_an_upgrade_regrades_down_and_halves_nothing(uw: httpx.AsyncClient) -> None:
    country = "PY"
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    buyer = await make_buyer(uw, country=country, indicators=WEAK)
    await limit_of(uw, policy, buyer["id"], "100000")
    since = await mark(uw)
    answer = await set_level(uw, country, 1)
    assert answer["buyers_regraded"] >= 1 and answer["limits_changed"] == 0
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"] == 6
    [moved] = [e for e in await events_since(uw, since, types="buyer.grade_changed")
               if e["data"]["buyer_id"] == buyer["id"]]  # fmt: skip
    assert (moved["data"]["previous_grade"], moved["data"]["grade"]) == (7, 6)
    assert [a for a, _, _ in (await history(uw, policy))[buyer["id"]]] == ["100000.00"]


async def test_a_300000_request_approved_before_a_downgrade_is_referred_after_it(
    uw: httpx.AsyncClient,
) -> None:
    country = "BO"
    sound = {"current_ratio": "1.5", "dso_days": "40", "dso_prior_year_days": "40",
             "overdue_ratio": "0.01", "litigation_count": 0, "management_changes_12m": 0,
             "equity": money("50000000")}  # fmt: skip  # 1 + 1 (ratio) + 1 (level 2): grade 3
    before = await make_buyer(uw, country=country, indicators=sound)
    after = await make_buyer(uw, country=country, indicators=sound)
    assert before["grade"] == 3
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    assert (await request_limit(uw, policy, before["id"], "300000"))["status"] == "approved"
    await set_level(uw, country, 3)  # one more point: grade 4, whose ceiling is 250,000
    assert ok(await uw.get(f"/v1/buyers/{after['id']}", headers=UW), 200)["grade"] == 4
    referred = await request_limit(uw, policy, after["id"], "300000")
    assert referred["status"] == "referred"


async def test_a_sanctioned_country_or_buyer_is_refused_cover_on_the_next_check_and_counted(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    by_country = await make_buyer(uw, country="TJ")
    by_name = await make_buyer(uw, country="DE")
    for buyer in (by_country, by_name):
        await limit_of(uw, policy, buyer["id"], "50000")
        covered = ok(await check(uw, policy, buyer["id"], "1000", TODAY, "2027-08-01"), 200)
        assert covered["covered"] is not False
    listed = ok(await uw.post("/v1/sanctions", headers=UW,
                              json={"country": "TJ", "reason": "listed"}), 201)  # fmt: skip
    named = ok(await uw.post("/v1/sanctions", headers=UW,
                             json={"buyer_id": by_name["id"], "reason": "listed"}), 201)  # fmt: skip
    for buyer in (by_country, by_name):
        refused = ok(await check(uw, policy, buyer["id"], "1000", TODAY, "2027-08-01"), 200)
        assert "sanctioned" in refused["reasons"] and refused["covered_amount"] == money("0.00")
    assert listed["buyers_affected"] >= 1 and listed["limits_affected"] >= 1
    assert (named["buyers_affected"], named["limits_affected"]) == (1, 1)


async def test_a_level_set_down_up_and_down_again_halves_a_limit_once_until_the_cut_applies(
    uw: httpx.AsyncClient,
) -> None:
    """A mistaken level corrected and set again (or a level that flaps) must not halve the
    half of a cut not yet in force: 1,000,001 becomes 500,001 once, not 125,001."""
    country = "BT"
    policy = await make_policy(uw, unique("ph"), currency="JPY", start_date="2027-01-01",
                               end_date="2027-12-31", max_liability=money("900000000", "JPY"))  # fmt: skip
    weak = await make_buyer(uw, country=country, indicators=WEAK)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": weak["id"], "amount": money("1000001", "JPY"), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated"}), 201)  # fmt: skip
    first = await set_level(uw, country, 4)
    assert first["limits_changed"] == 1
    for level in (2, 4, 1, 4):
        await set_level(uw, country, level)
    [entries] = (await history(uw, policy)).values()
    assert [amount for amount, _, _ in entries] == ["1000001", "500001"]
    assert ok(await uw.get(f"/v1/buyers/{weak['id']}", headers=UW), 200)["grade"] == 9
