"""One delay, one signal's worth of points (domain.md, Grade: payment delays observed by the
insurer arrive as signals and add points): a delay notified under a policy counts once while it
lasts, however many notifications (one per invoice, or one for them all) report it; another
policy reporting the same buyer is more evidence and counts again, and so does a delay notified
again after the policy's arrears were cleared. Every signal is kept; only the points change, the
grade's factors say what was counted, and the whole-book re-grade counts as the one-buyer path
does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from tests.builders import make_buyer, make_policy, ok
from tests.claims.test_api import INVOICES, insured
from tests.conftest import auth

UW = auth("underwriter")
TODAY = dt.date(2027, 6, 10)
DAY = dt.timedelta(days=1)


def seen(kind: str, on: dt.date, policy: str | None = None) -> rules.ObservedSignal:
    return rules.ObservedSignal(kind, on, policy)


# ---------------------------------------------------------------- the rule


def test_thirty_notifications_of_one_delay_weigh_what_one_notification_of_it_weighs() -> None:
    one = [seen("overdue_notified", TODAY, "pol-1")]
    thirty = [seen("overdue_notified", TODAY - n * DAY, "pol-1") for n in range(30)]
    assert rules.recent_signal_points(one, today=TODAY) == D(1)
    assert rules.recent_signal_points(thirty, today=TODAY) == D(1)
    graded = rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1,
                            signals=thirty, insolvent_since=None)  # fmt: skip
    alone = rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1, signals=one,
                           insolvent_since=None)  # fmt: skip
    assert graded.grade == alone.grade


def test_another_policy_reporting_the_same_buyer_counts_again() -> None:
    signals = [seen("overdue_notified", TODAY - DAY, "pol-1"),
               seen("overdue_notified", TODAY, "pol-2"),
               seen("overdue_notified", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(signals, today=TODAY) == D(2)


def test_a_delay_notified_again_after_the_policys_arrears_were_cleared_is_a_new_delay() -> None:
    first = [seen("overdue_notified", TODAY - 40 * DAY, "pol-1"),
             seen("overdue_notified", TODAY - 30 * DAY, "pol-1")]  # fmt: skip
    cleared_elsewhere = [*first, seen("arrears_cleared", TODAY - 20 * DAY, "pol-2"),
                         seen("overdue_notified", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(cleared_elsewhere, today=TODAY) == D(1)
    cleared = [*first, seen("arrears_cleared", TODAY - 20 * DAY, "pol-1"),
               seen("overdue_notified", TODAY - 10 * DAY, "pol-1"),
               seen("overdue_notified", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(cleared, today=TODAY) == D(2)


def test_on_one_day_the_signals_count_in_the_order_they_were_recorded() -> None:
    again = [seen("overdue_notified", TODAY, "pol-1"), seen("arrears_cleared", TODAY, "pol-1"),
             seen("overdue_notified", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(again, today=TODAY) == D(2)
    still = [seen("overdue_notified", TODAY, "pol-1"), seen("overdue_notified", TODAY, "pol-1"),
             seen("arrears_cleared", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(still, today=TODAY) == D(1)
    # A signal observed earlier but recorded later is counted on the day it was observed.
    late = [seen("overdue_notified", TODAY, "pol-1"), seen("arrears_cleared", TODAY - DAY, "pol-1")]
    assert rules.recent_signal_points(late, today=TODAY) == D(1)


def test_a_delay_counts_while_any_of_its_notifications_is_remembered() -> None:
    memory = rules.SIGNAL_MEMORY_DAYS
    signals = [seen("overdue_notified", TODAY - (memory + 10) * DAY, "pol-1"),
               seen("overdue_notified", TODAY - 10 * DAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(signals, today=TODAY) == D(1)
    assert rules.recent_signal_points(signals, today=TODAY + (memory - 10) * DAY) == D(0)


def test_the_other_kinds_count_each_signal() -> None:
    signals = [seen("court_judgment", TODAY), seen("court_judgment", TODAY),
               seen("protracted_default", TODAY, "pol-1"),
               seen("protracted_default", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(signals, today=TODAY) == D(6)


def test_the_grades_factors_say_what_was_counted() -> None:
    signals = [*(seen("overdue_notified", TODAY, "pol-1") for _ in range(30)),
               seen("court_judgment", TODAY)]  # fmt: skip
    graded = rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1, signals=signals,
                            insolvent_since=None)  # fmt: skip
    [factor] = [f for f in graded.factors if f.factor == "signals"]
    assert (factor.value, factor.points) == ("2", D(2))
    assert "court_judgment 1" in factor.note
    assert "overdue_notified 1 of 30" in factor.note
    assert "once per policy until its arrears are cleared" in factor.note


# ---------------------------------------------------------------- over the API


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def signal(uw: httpx.AsyncClient, buyer_id: str, kind: str, policy_id: str | None = None,
                 on: dt.date = TODAY) -> dict[str, Any]:  # fmt: skip
    body = {"kind": kind, "observed_on": on.isoformat(),
            **({"policy_id": policy_id} if policy_id else {})}  # fmt: skip
    return ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=UW, json=body), 201)


async def buyer_now(uw: httpx.AsyncClient, buyer_id: str) -> dict[str, Any]:
    return ok(await uw.get(f"/v1/buyers/{buyer_id}", headers=UW), 200)


def signals_factor(buyer: dict[str, Any]) -> dict[str, Any] | None:
    return next((f for f in buyer["grade_factors"] if f["factor"] == "signals"), None)


async def test_thirty_notifications_grade_the_buyer_as_one_and_every_one_is_kept(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    per_invoice, all_at_once = await make_buyer(uw), await make_buyer(uw)
    recorded = [await signal(uw, per_invoice["id"], "overdue_notified", policy["id"])
                for _ in range(30)]  # fmt: skip
    await signal(uw, all_at_once["id"], "overdue_notified", policy["id"])

    assert [D(r["points"]) for r in recorded] == [D(1)] + [D(0)] * 29
    assert {r["grade"] for r in recorded} == {per_invoice["grade"] + 1}
    graded = await buyer_now(uw, per_invoice["id"])
    assert graded["grade"] == (await buyer_now(uw, all_at_once["id"]))["grade"]
    factor = signals_factor(graded)
    assert factor is not None and factor["value"] == "1"
    assert "overdue_notified 1 of 30" in factor["note"]
    listed = ok(await uw.get(f"/v1/buyers/{per_invoice['id']}/signals", headers=UW,
                             params={"limit": 100}), 200)  # fmt: skip
    assert len(listed["items"]) == 30


async def test_another_policyholder_and_a_delay_after_cleared_arrears_count_again(
    uw: httpx.AsyncClient,
) -> None:
    mine, theirs = await make_policy(uw), await make_policy(uw)
    buyer = await make_buyer(uw)
    await signal(uw, buyer["id"], "overdue_notified", mine["id"], on=TODAY - 20 * DAY)
    assert (await signal(uw, buyer["id"], "overdue_notified", theirs["id"],
                         on=TODAY - 15 * DAY))["grade"] == buyer["grade"] + 2  # fmt: skip
    await signal(uw, buyer["id"], "arrears_cleared", mine["id"], on=TODAY - 10 * DAY)
    again = await signal(uw, buyer["id"], "overdue_notified", mine["id"])
    assert D(again["points"]) == D(1) and again["grade"] == buyer["grade"] + 3
    assert signals_factor(await buyer_now(uw, buyer["id"]))["value"] == "3"  # type: ignore[index]


async def test_the_whole_book_regrade_counts_the_signals_as_the_one_buyer_path_does(
    uw: httpx.AsyncClient,
) -> None:
    """Per buyer: 30 notifications of one delay; one notification; a delay notified, cleared
    and notified again on one day (two delays); one delay on each of two policies. After the
    country's re-grade each has the grade and factors a re-grade of that buyer alone gives."""
    country = "EC"
    one, other = await make_policy(uw), await make_policy(uw)
    buyers = [await make_buyer(uw, country=country) for _ in range(4)]
    for _ in range(30):
        await signal(uw, buyers[0]["id"], "overdue_notified", one["id"])
    await signal(uw, buyers[1]["id"], "overdue_notified", one["id"])
    for kind in ("overdue_notified", "arrears_cleared", "overdue_notified"):
        await signal(uw, buyers[2]["id"], kind, one["id"])
    for policy in (one, other, one):
        await signal(uw, buyers[3]["id"], "overdue_notified", policy["id"])

    ok(await uw.put(f"/v1/country-risks/{country}", headers=UW, json={"level": 3}), 200)

    by_book = [await buyer_now(uw, b["id"]) for b in buyers]
    assert [signals_factor(b)["value"] for b in by_book] == ["1", "1", "2", "2"]  # type: ignore[index]
    assert by_book[0]["grade"] == by_book[1]["grade"] == buyers[0]["grade"] + 2  # level 3: +1
    for buyer in by_book:  # the same indicators confirmed again: the buyer re-graded alone
        alone = ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                                 json=buyer["indicators"]), 200)  # fmt: skip
        assert (alone["grade"], alone["grade_factors"]) == (buyer["grade"],
                                                            buyer["grade_factors"])  # fmt: skip


async def test_notifications_from_claims_one_per_invoice_grade_the_buyer_as_one_notification(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The closed loop in-process: claims tells underwriting of each notification."""
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    claims = await api.open("claims")
    uw = api("underwriting")
    grades = []
    for batches in ([INVOICES[:1], INVOICES[1:]], [INVOICES]):
        policy, buyer = await insured(uw)
        holder = auth("policyholder", policy["policyholder_id"])
        for invoices in batches:
            ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
                "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
                "invoices": invoices}), 201)  # fmt: skip
        listed = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW), 200)
        assert [s["kind"] for s in listed["items"]] == ["overdue_notified"] * len(batches)
        grades.append((await buyer_now(uw, buyer["id"]))["grade"] - buyer["grade"])
    assert grades == [1, 1]
