"""A buyer's grade history and its signals, as lists: newest recorded first, paged with the
cursor, each entry explained (cause, factors, country risk level; a signal's points and the
grade before and after), read by whoever may read the buyer and shown to a policyholder only
as far as it is its own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth

TODAY = "2027-06-10"
UW = auth("underwriter")


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def signal(uw: httpx.AsyncClient, buyer_id: str, kind: str, observed_on: str,
                 **extra: Any) -> dict[str, Any]:  # fmt: skip
    body = {"kind": kind, "observed_on": observed_on, "details": f"{kind} seen", **extra}
    return ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=UW, json=body), 201)


async def every(uw: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int
                ) -> list[dict[str, Any]]:  # fmt: skip
    """Every item of a list, page after page of `limit`."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = ok(await uw.get(path, headers=headers, params=params), 200)
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_the_grade_history_lists_each_regrading_newest_first_with_its_cause_and_factors(
    uw: httpx.AsyncClient,
) -> None:
    buyer = await make_buyer(uw, country="LU")
    ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                     json={"current_ratio": "0.7"}), 200)  # fmt: skip
    judged = await signal(uw, buyer["id"], "court_judgment", TODAY)
    risk = ok(await uw.put("/v1/country-risks/LU", headers=UW, json={"level": 4}), 200)
    assert risk["buyers_regraded"] >= 1

    history = ok(await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=UW), 200)
    causes = [entry["cause"] for entry in history["items"]]
    assert causes == ["country_risk", "signal", "indicators", "registration"]
    assert history["next_cursor"] is None
    newest, by_signal, by_indicators, registered = history["items"]
    assert registered["grade"] == buyer["grade"] and registered["country_risk_level"] == 2
    assert by_signal["grade"] == judged["grade"] > by_indicators["grade"] > registered["grade"]
    assert newest["country_risk_level"] == 4 and newest["grade"] > by_signal["grade"]
    assert all(entry["graded_on"] == TODAY for entry in history["items"])
    assert all(entry["recorded_by"] for entry in history["items"])
    points = {f["factor"]: f["points"] for f in newest["factors"]}
    assert points["country_risk_level"] == "3" and points["current_ratio"] == "3"
    current = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)
    assert current["grade"] == newest["grade"]
    assert current["grade_factors"] == newest["factors"]


async def test_a_signal_observed_earlier_is_listed_with_the_date_its_grade_describes(
    uw: httpx.AsyncClient,
) -> None:
    """The signal grades its own date, and every later date of the history again with it (a
    new entry): the list shows both, newest recorded first, above the registration."""
    buyer = await make_buyer(uw)
    delayed = await signal(uw, buyer["id"], "payment_delay", "2027-05-01")
    history = ok(await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=UW), 200)
    assert [(e["cause"], e["graded_on"], e["grade"]) for e in history["items"]] == [
        ("signal", TODAY, delayed["grade"]),
        ("signal", "2027-05-01", delayed["grade"]),
        ("registration", TODAY, buyer["grade"]),
    ]


async def test_the_lists_are_paged_with_the_cursor_and_lose_or_repeat_nothing(
    uw: httpx.AsyncClient,
) -> None:
    buyer = await make_buyer(uw)
    for day in ("2027-06-01", "2027-06-02", "2027-06-03", "2027-06-04", "2027-06-05"):
        await signal(uw, buyer["id"], "management_change", day)
    for path in ("grades", "signals"):
        whole = ok(await uw.get(f"/v1/buyers/{buyer['id']}/{path}", headers=UW), 200)["items"]
        paged = await every(uw, f"/v1/buyers/{buyer['id']}/{path}", UW, limit=2)
        assert [e["id"] for e in paged] == [e["id"] for e in whole]
        moments = [e["created_at"] for e in whole]
        assert moments == sorted(moments, reverse=True)
    signals = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW), 200)["items"]
    assert [s["observed_on"] for s in signals] == [
        "2027-06-05", "2027-06-04", "2027-06-03", "2027-06-02", "2027-06-01"]  # fmt: skip
    refused = await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=UW,
                           params={"cursor": "not-a-cursor"})  # fmt: skip
    assert refused.status_code == 422


async def test_a_signal_is_listed_with_its_points_and_the_grade_before_and_after(
    uw: httpx.AsyncClient,
) -> None:
    buyer = await make_buyer(uw)
    recorded = await signal(uw, buyer["id"], "court_judgment", "2027-06-09")
    [listed] = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW), 200)["items"]
    assert listed["id"] == recorded["id"]
    assert (listed["kind"], listed["observed_on"], listed["details"]) == (
        "court_judgment", "2027-06-09", "court_judgment seen")  # fmt: skip
    assert listed["points"] == recorded["points"] and listed["points"] != "0"
    assert (listed["grade_before"], listed["grade"]) == (buyer["grade"], recorded["grade"])
    assert listed["recorded_by"]


async def test_a_policyholder_reads_the_history_without_factors_and_only_its_own_signals(
    uw: httpx.AsyncClient,
) -> None:
    buyer = await make_buyer(uw)
    mine, theirs = await make_policy(uw), await make_policy(uw)
    for policy in (mine, theirs):
        await request_limit(uw, policy, buyer["id"], "10000")
    await signal(uw, buyer["id"], "overdue_notified", "2027-06-08", policy_id=mine["id"])
    await signal(uw, buyer["id"], "overdue_notified", "2027-06-08", policy_id=theirs["id"])
    await signal(uw, buyer["id"], "court_judgment", "2027-06-09")
    holder = auth("policyholder", mine["policyholder_id"])

    history = ok(await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=holder), 200)
    assert {e["cause"] for e in history["items"]} == {"registration", "signal"}
    assert all(e["factors"] is None and e["recorded_by"] is None for e in history["items"])
    signals = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=holder), 200)
    assert [(s["kind"], s["policy_id"]) for s in signals["items"]] == [
        ("overdue_notified", mine["id"])]  # fmt: skip
    assert signals["items"][0]["recorded_by"] is None
    staff = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals",
                            headers=auth("claims_handler")), 200)  # fmt: skip
    assert len(staff["items"]) == 3


async def test_a_buyer_not_the_policyholders_is_a_404_like_one_that_does_not_exist(
    uw: httpx.AsyncClient,
) -> None:
    buyer = await make_buyer(uw)
    stranger = auth("policyholder", "ph-stranger")
    for path in ("grades", "signals"):
        hidden = await uw.get(f"/v1/buyers/{buyer['id']}/{path}", headers=stranger)
        missing = await uw.get(f"/v1/buyers/buy-missing/{path}", headers=stranger)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["type"] == missing.json()["type"]
        bank = await uw.get(f"/v1/buyers/{buyer['id']}/{path}", headers=auth("bank", "bank-1"))
        assert bank.status_code == 403
        nobody = await uw.get(f"/v1/buyers/{buyer['id']}/{path}")
        assert nobody.status_code == 401


async def test_a_limit_withdrawn_by_hand_records_no_signal_and_no_regrading(
    uw: httpx.AsyncClient,
) -> None:
    buyer = await make_buyer(uw)
    policy = await make_policy(uw)
    limit = ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("50000"), "effective_from": "2027-01-01",
        "reason": "migrated"}), 201)  # fmt: skip
    ok(await uw.post(f"/v1/limits/{limit['id']}/changes", headers=UW,
                     json={"new_amount": money("0"), "reason": "exit"}), 201)  # fmt: skip
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW), 200)["items"] == []
    history = ok(await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=UW), 200)
    assert [e["cause"] for e in history["items"]] == ["registration"]
