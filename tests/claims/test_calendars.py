"""Calendars a person can correct: the working-day rule with staff corrections, the calendar
routes, and a claim's decision date that follows a corrected day."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from services.claims import rules
from shared.calendar import add_working_days, is_working_day
from tests.builders import ok
from tests.claims.test_api import INVOICES, complete, filed_claim, insured
from tests.conftest import auth

D = dt.date
HANDLER = auth("claims_handler")


# ---------------------------------------------------------------- the rule


def test_fifteen_working_days_after_28_september_2026_in_cn_is_23_october() -> None:
    assert add_working_days(D(2026, 9, 28), 15, "CN") == D(2026, 10, 23)
    assert add_working_days(D(2026, 9, 28), 15, "CN", {}) == D(2026, 10, 23)


def test_a_weekend_working_day_set_by_staff_counts_and_brings_the_deadline_forward() -> None:
    assert not is_working_day(D(2026, 10, 17), "CN")  # a Saturday
    corrected = {D(2026, 10, 17): True}
    assert is_working_day(D(2026, 10, 17), "CN", corrected)
    assert add_working_days(D(2026, 9, 28), 15, "CN", corrected) == D(2026, 10, 22)


def test_a_holiday_added_by_staff_is_skipped_and_pushes_the_deadline_past_the_weekend() -> None:
    corrected = {D(2026, 10, 12): False}  # a Monday
    assert add_working_days(D(2026, 9, 28), 15, "CN", corrected) == D(2026, 10, 26)
    assert rules.decision_due(D(2026, 9, 28), 15, "CN", corrected) == D(2026, 10, 26)


def test_a_package_holiday_staff_declare_working_counts_as_a_working_day() -> None:
    assert not is_working_day(D(2026, 10, 7), "CN")  # a day off in the package
    assert add_working_days(D(2026, 9, 28), 15, "CN", {D(2026, 10, 7): True}) == D(2026, 10, 22)


# ---------------------------------------------------------------- the routes


@pytest.fixture
async def claims(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    client: httpx.AsyncClient = await api.open("claims")
    return client


async def test_the_calendar_lists_package_days_and_staff_corrections_with_their_source(
    claims: httpx.AsyncClient,
) -> None:
    before = ok(await claims.get("/v1/calendars/CN/days?year=2027", headers=HANDLER), 200)
    days = {d["date"]: d for d in before["items"]}
    assert before["country"] == "CN" and before["year"] == 2027
    assert days["2027-02-08"]["source"] == "holidays" and days["2027-02-08"]["working"] is False
    assert "2027-02-20" not in days  # the package knows none of 2027's weekend working days

    put = await claims.put("/v1/calendars/CN/days/2027-02-20", headers=HANDLER,
                           json={"working": True, "reason": "State Council notice"})  # fmt: skip
    created = ok(put, 201)
    assert put.headers["location"] == "/v1/calendars/CN/days/2027-02-20"
    assert created["source"] == "staff" and created["working"] is True
    assert created["reason"] == "State Council notice" and created["set_by"]
    # A country is its upper-case ISO code, as the published enum lists it ("cn" is not).
    lower = await claims.put("/v1/calendars/cn/days/2027-02-11", headers=auth("collector"),
                             json={"working": False, "reason": "Spring Festival"})  # fmt: skip
    assert lower.status_code == 422 and lower.json()["errors"][0]["loc"] == ["path", "country"]
    holiday = ok(await claims.put("/v1/calendars/CN/days/2027-02-11", headers=auth("collector"),
                                  json={"working": False, "reason": "Spring Festival"}), 201)  # fmt: skip
    assert holiday["country"] == "CN"
    replaced = ok(await claims.put("/v1/calendars/CN/days/2027-02-20", headers=auth("underwriter"),
                                   json={"working": False, "reason": "notice withdrawn"}), 200)  # fmt: skip
    assert replaced["working"] is False and replaced["reason"] == "notice withdrawn"

    # Any valid token may read.
    reader = auth("policyholder", "ph-calendar")
    after = ok(await claims.get("/v1/calendars/CN/days?year=2027", headers=reader), 200)
    days = {d["date"]: d for d in after["items"]}
    # Who corrected a day is staff's business: a policyholder sees what and why, not who.
    assert days["2027-02-20"] == {
        **replaced,
        "set_at": days["2027-02-20"]["set_at"],
        "set_by": None,
    }
    assert days["2027-02-11"]["source"] == "staff" and days["2027-02-11"]["working"] is False
    assert days["2027-02-08"]["source"] == "holidays"
    assert [d["date"] for d in after["items"]] == sorted(days)
    one = ok(await claims.get("/v1/calendars/CN/days/2027-02-11", headers=reader), 200)
    assert one["source"] == "staff" and one["set_by"] is None
    staff = ok(await claims.get("/v1/calendars/CN/days/2027-02-11", headers=HANDLER), 200)
    assert staff["set_by"] == holiday["set_by"] and staff["set_by"]

    gone = await claims.delete("/v1/calendars/CN/days/2027-02-20", headers=HANDLER)
    assert gone.status_code == 204
    again = await claims.delete("/v1/calendars/CN/days/2027-02-20", headers=HANDLER)
    assert again.status_code == 404
    listed = ok(await claims.get("/v1/calendars/CN/days?year=2027", headers=HANDLER), 200)
    assert "2027-02-20" not in {d["date"] for d in listed["items"]}


async def test_only_staff_correct_a_calendar_and_every_route_needs_a_token(
    claims: httpx.AsyncClient,
) -> None:
    holder = auth("policyholder", "ph-calendar")
    body = {"working": True, "reason": "mine"}
    put = await claims.put("/v1/calendars/CN/days/2027-02-20", headers=holder, json=body)
    delete = await claims.delete("/v1/calendars/CN/days/2027-02-20", headers=holder)
    bank = await claims.put("/v1/calendars/CN/days/2027-02-20", headers=auth("bank", "b-1"),
                            json=body)  # fmt: skip
    assert (put.status_code, delete.status_code, bank.status_code) == (403, 403, 403)
    for response in (
        await claims.get("/v1/calendars/CN/days?year=2027"),
        await claims.put("/v1/calendars/CN/days/2027-02-20", json=body),
        await claims.delete("/v1/calendars/CN/days/2027-02-20"),
    ):
        assert response.status_code == 401
    service = await claims.put("/v1/calendars/CN/days/2027-02-20", headers=auth("service"),
                               json=body)  # fmt: skip
    assert service.status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/calendars/XX/days?year=2027", None),
        ("GET", "/v1/calendars/CHN/days?year=2027", None),
        ("GET", "/v1/calendars/CN/days?year=1800", None),
        ("GET", "/v1/calendars/CN/days?year=twenty", None),
        ("PUT", "/v1/calendars/CN/days/2027-02-30", {"working": True, "reason": "r"}),
        ("PUT", "/v1/calendars/CN/days/1799-02-01", {"working": True, "reason": "r"}),
        ("PUT", "/v1/calendars/ZZ/days/2027-02-20", {"working": True, "reason": "r"}),
        ("PUT", "/v1/calendars/CN/days/2027-02-20", {"working": True, "reason": ""}),
        ("PUT", "/v1/calendars/CN/days/2027-02-20", {"working": "maybe", "reason": "r"}),
        ("DELETE", "/v1/calendars/CN/days/2027-13-01", None),
    ],
)
async def test_a_country_year_or_date_that_is_not_one_is_refused(
    claims: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await claims.request(method, path, headers=HANDLER, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


# ---------------------------------------------------------------- a claim's decision date


async def test_a_claims_decision_date_reads_the_calendar_staff_corrected(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    claims = await api.open("claims")
    uw = api("underwriting")

    async def filed_and_completed() -> dict[str, Any]:
        policy, buyer = await insured(uw)
        holder = auth("policyholder", policy["policyholder_id"])
        ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
            "invoices": INVOICES}), 201)  # fmt: skip
        claim = await filed_claim(claims, policy, buyer, holder)
        assert policy["claims_calendar_country"] == "CN"
        return await complete(claims, claim, holder)

    # Completed on 2027-06-10 (CN): 15 working days → 2027-07-01 on the package's calendar.
    plain = await filed_and_completed()
    assert plain["decision_due"] == "2027-07-01"

    # Staff declare Monday 2027-06-14 a holiday: the next file completed is due a day later,
    # and so is the one awaiting its decision (every working-day deadline reads the correction).
    ok(await claims.put("/v1/calendars/CN/days/2027-06-14", headers=HANDLER,
                        json={"working": False, "reason": "regional closure"}), 201)  # fmt: skip
    moved = await filed_and_completed()
    assert moved["decision_due"] == "2027-07-02"

    async def due(claim: dict[str, Any]) -> str:
        read = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
        return str(read["decision_due"])

    assert await due(plain) == "2027-07-02"

    # And a Saturday worked in its place brings every one back.
    ok(await claims.put("/v1/calendars/CN/days/2027-06-19", headers=HANDLER,
                        json={"working": True, "reason": "make-up working day"}), 201)  # fmt: skip
    back = await filed_and_completed()
    assert back["decision_due"] == "2027-07-01"
    assert [await due(c) for c in (plain, moved)] == ["2027-07-01", "2027-07-01"]
    # Withdrawing that correction moves them again; a day after their due date moves none.
    deleted = await claims.delete("/v1/calendars/CN/days/2027-06-19", headers=HANDLER)
    assert deleted.status_code == 204
    assert [await due(c) for c in (plain, moved, back)] == ["2027-07-02"] * 3
    ok(await claims.put("/v1/calendars/CN/days/2027-07-05", headers=HANDLER,
                        json={"working": False, "reason": "after them"}), 201)  # fmt: skip
    assert [await due(c) for c in (plain, moved, back)] == ["2027-07-02"] * 3
    # Another country's calendar is not theirs.
    ok(await claims.put("/v1/calendars/DE/days/2027-06-15", headers=HANDLER,
                        json={"working": False, "reason": "not CN"}), 201)  # fmt: skip
    assert await due(plain) == "2027-07-02"
    # The calendar as it was for the tests after this one (the database is shared).
    for day in ("CN/days/2027-06-14", "CN/days/2027-07-05", "DE/days/2027-06-15"):
        assert (await claims.delete(f"/v1/calendars/{day}", headers=HANDLER)).status_code == 204
    assert await due(plain) == "2027-07-01"
