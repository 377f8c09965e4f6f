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
from shared.contracts import UNDERWRITER_SIGNAL_KINDS
from tests.builders import make_buyer, make_policy, ok, request_limit
from tests.claims.test_api import INVOICES, insured
from tests.conftest import auth, unique

UW = auth("underwriter")
# The closed loop's kinds come from claims and collections, with a service token.
SERVICE = auth("service")
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
    # The later notification weighs through its day + the memory, the last day included.
    assert rules.recent_signal_points(signals, today=TODAY + (memory - 10) * DAY) == D(1)
    assert rules.recent_signal_points(signals, today=TODAY + (memory - 9) * DAY) == D(0)


def test_the_other_kinds_and_a_delay_naming_neither_policy_nor_creditor_count_each_signal() -> None:
    signals = [seen("court_judgment", TODAY), seen("court_judgment", TODAY),
               seen("protracted_default", TODAY), seen("protracted_default", TODAY),
               seen("payment_delay", TODAY), seen("payment_delay", TODAY),
               seen("claim_paid", TODAY, "pol-1"), seen("claim_paid", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(signals, today=TODAY) == D(12)


def owed(kind: str, on: dt.date, creditor: str) -> rules.ObservedSignal:
    return rules.ObservedSignal(kind, on, None, creditor)


def test_a_creditors_delay_split_into_three_cases_weighs_what_one_case_of_its_three_invoices_weighs(
) -> None:  # fmt: skip
    three_cases = [owed("payment_delay", TODAY - n * DAY, "ph-1") for n in range(3)]
    one_case = [owed("payment_delay", TODAY, "ph-1")]
    assert rules.recent_signal_points(three_cases, today=TODAY) == D(1)
    assert rules.recent_signal_points(one_case, today=TODAY) == D(1)
    to_law = [*three_cases, *(owed("collection_legal", TODAY, "ph-1") for _ in range(3))]
    assert rules.recent_signal_points(to_law, today=TODAY) == D(2)


def test_another_creditor_counts_again_and_so_does_a_delay_after_the_creditors_cases_were_paid(
) -> None:  # fmt: skip
    two_creditors = [owed("payment_delay", TODAY, "ph-1"), owed("payment_delay", TODAY, "ph-2")]
    assert rules.recent_signal_points(two_creditors, today=TODAY) == D(2)
    # Paid (−1) ends the delay; a mandate after it is a new delay (+1). Paid by another
    # creditor, or arrears cleared on a policy, end nothing of this creditor's.
    paid_then_again = [owed("payment_delay", TODAY - 20 * DAY, "ph-1"),
                       owed("collection_paid", TODAY - 10 * DAY, "ph-1"),
                       owed("payment_delay", TODAY, "ph-1")]  # fmt: skip
    assert rules.recent_signal_points(paid_then_again, today=TODAY) == D(1)
    others_ended = [owed("payment_delay", TODAY - 20 * DAY, "ph-1"),
                    owed("collection_paid", TODAY - 10 * DAY, "ph-2"),
                    seen("arrears_cleared", TODAY - 10 * DAY, "pol-1"),
                    owed("payment_delay", TODAY, "ph-1")]  # fmt: skip
    # ph-2 had no delay to end: its cases paid offset nothing (it was 1 − 1).
    assert rules.recent_signal_points(others_ended, today=TODAY) == D(1)
    assert [counts for _, counts in rules.counted_signals(others_ended)] == [
        True,
        False,
        False,
        False,
    ]
    assert rules.counted_signals(others_ended)[-1][1] is False


def test_cases_paid_in_full_offset_only_a_delay_their_creditor_reported() -> None:
    """A subrogation case's debt (or a claim's) was never a creditor's reported delay: the
    buyer paying it takes nothing off the policy's default (it made a 6 a 5)."""
    defaulted = [seen("payment_delay", TODAY - 40 * DAY, "pol-1"),
                 seen("protracted_default", TODAY - 30 * DAY, "pol-1"),
                 owed("collection_paid", TODAY - 5 * DAY, "ph-1")]  # fmt: skip
    assert rules.recent_signal_points(defaulted, today=TODAY) == D(3)
    assert rules.points_when_recorded(defaulted[-1], defaulted[:-1]) == D(0)
    reported = [owed("payment_delay", TODAY - 20 * DAY, "ph-1"),
                owed("collection_legal", TODAY - 15 * DAY, "ph-1"),
                owed("collection_paid", TODAY - 5 * DAY, "ph-1")]  # fmt: skip
    assert rules.recent_signal_points(reported, today=TODAY) == D(1)  # 1 + 1 − 1
    assert rules.points_when_recorded(reported[-1], reported[:-1]) == D(-1)


def test_the_claims_of_one_default_under_a_policy_weigh_as_one_until_its_arrears_are_cleared(
) -> None:  # fmt: skip
    """Filed (a payment delay, +1) and paid (a protracted default, +2), per claim: two claims
    of one invoice each weigh what one claim of the two invoices weighs."""
    one_claim = [seen("payment_delay", TODAY - 30 * DAY, "pol-1"),
                 seen("protracted_default", TODAY - 20 * DAY, "pol-1")]  # fmt: skip
    two_claims = [*one_claim, seen("payment_delay", TODAY - 29 * DAY, "pol-1"),
                  seen("protracted_default", TODAY - 19 * DAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(one_claim, today=TODAY) == D(3)
    assert rules.recent_signal_points(two_claims, today=TODAY) == D(3)
    another_policy = [*two_claims, seen("payment_delay", TODAY, "pol-2"),
                      seen("protracted_default", TODAY, "pol-2")]  # fmt: skip
    assert rules.recent_signal_points(another_policy, today=TODAY) == D(6)
    after_cleared = [*two_claims, seen("arrears_cleared", TODAY - 10 * DAY, "pol-1"),
                     seen("payment_delay", TODAY, "pol-1"),
                     seen("protracted_default", TODAY, "pol-1")]  # fmt: skip
    assert rules.recent_signal_points(after_cleared, today=TODAY) == D(6)


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


def test_the_grades_factors_say_how_many_of_a_creditors_cases_were_counted() -> None:
    signals = [owed("payment_delay", TODAY, "ph-1") for _ in range(3)]
    graded = rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1, signals=signals,
                            insolvent_since=None)  # fmt: skip
    [factor] = [f for f in graded.factors if f.factor == "signals"]
    assert (factor.value, factor.points) == ("1", D(1))
    assert "payment_delay 1 of 3" in factor.note
    assert "once per creditor until its collection cases are paid" in factor.note


# ---------------------------------------------------------------- over the API


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def signal(uw: httpx.AsyncClient, buyer_id: str, kind: str, policy_id: str | None = None,
                 on: dt.date = TODAY, **named: str) -> dict[str, Any]:  # fmt: skip
    body = {"kind": kind, "observed_on": on.isoformat(),
            **({"policy_id": policy_id} if policy_id else {}), **named}  # fmt: skip
    # What collections reports (a creditor's, a case's) comes with a service token.
    by_collections = bool({"creditor_id", "case_id"} & named.keys())
    sender = UW if kind in UNDERWRITER_SIGNAL_KINDS and not by_collections else SERVICE
    return ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=sender, json=body), 201)


async def with_stake(uw: httpx.AsyncClient, creditor: str, *buyers: dict[str, Any]) -> None:
    """The creditor holds a limit on each buyer under a policy of its own: its collection
    signals on them weigh (`rules.signal_weighs`)."""
    policy = await make_policy(uw, creditor)
    for buyer in buyers:
        await request_limit(uw, policy, buyer["id"], "10000")


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


async def test_three_cases_of_one_creditor_grade_the_buyer_as_one_case_and_name_creditor_and_case(
    uw: httpx.AsyncClient,
) -> None:
    """Collections' signals name the creditor and the case; staff read them back."""
    three_cases, one_case = await make_buyer(uw), await make_buyer(uw)
    creditor = unique("ph")
    await with_stake(uw, creditor, three_cases, one_case)
    recorded = [await signal(uw, three_cases["id"], "payment_delay", creditor_id=creditor,
                             case_id=f"case-{n}") for n in range(3)]  # fmt: skip
    await signal(uw, one_case["id"], "payment_delay", creditor_id=creditor, case_id="case-9")

    assert [D(r["points"]) for r in recorded] == [D(1), D(0), D(0)]
    assert [(r["creditor_id"], r["case_id"]) for r in recorded] == [
        (creditor, "case-0"), (creditor, "case-1"), (creditor, "case-2")]  # fmt: skip
    graded = await buyer_now(uw, three_cases["id"])
    assert graded["grade"] == (await buyer_now(uw, one_case["id"]))["grade"]
    assert graded["grade"] == three_cases["grade"] + 1
    assert "payment_delay 1 of 3" in signals_factor(graded)["note"]  # type: ignore[index]
    listed = ok(await uw.get(f"/v1/buyers/{three_cases['id']}/signals", headers=UW), 200)
    assert sorted(s["case_id"] for s in listed["items"]) == ["case-0", "case-1", "case-2"]
    assert {s["creditor_id"] for s in listed["items"]} == {creditor}
    # Paid (−1): the creditor's delay ends; a new mandate after it is a new delay.
    paid = await signal(uw, three_cases["id"], "collection_paid", creditor_id=creditor)
    again = await signal(uw, three_cases["id"], "payment_delay", creditor_id=creditor)
    assert (D(paid["points"]), D(again["points"])) == (D(-1), D(1))
    assert again["grade"] == three_cases["grade"] + 1


async def test_two_protracted_default_claims_under_one_policy_grade_the_buyer_as_one_claim(
    uw: httpx.AsyncClient,
) -> None:
    """As claims sends them: filed (a payment delay under the policy), paid (a protracted
    default under the policy), per claim."""
    policy = await make_policy(uw)
    two_claims, one_claim = await make_buyer(uw), await make_buyer(uw)
    sent = [await signal(uw, two_claims["id"], kind, policy["id"])
            for kind in ("payment_delay", "payment_delay", "protracted_default",
                         "protracted_default")]  # fmt: skip
    for kind in ("payment_delay", "protracted_default"):
        await signal(uw, one_claim["id"], kind, policy["id"])

    assert [D(r["points"]) for r in sent] == [D(1), D(0), D(2), D(0)]
    graded = await buyer_now(uw, two_claims["id"])
    assert graded["grade"] == (await buyer_now(uw, one_claim["id"]))["grade"]
    assert graded["grade"] == two_claims["grade"] + 3


async def test_the_whole_book_regrade_counts_creditors_and_claims_delays_as_the_one_buyer_path(
    uw: httpx.AsyncClient,
) -> None:
    """Per buyer: three cases of one creditor; one case each of two creditors; three cases of a
    creditor, paid, then a fourth; two claims of one default under a policy, and a third after
    its arrears were cleared; a payment delay naming neither policy nor creditor, twice. After
    the country's re-grade each has the grade and factors a re-grade of that buyer alone
    gives."""
    country = "GY"  # a country of its own: its level moves once, so its book is re-graded
    policy = await make_policy(uw)
    buyers = [await make_buyer(uw, country=country) for _ in range(5)]
    ph1, ph2 = unique("ph"), unique("ph")
    await with_stake(uw, ph1, *buyers[:3])
    await with_stake(uw, ph2, buyers[1])
    for n in range(3):
        await signal(uw, buyers[0]["id"], "payment_delay", creditor_id=ph1, case_id=f"c{n}")
    for creditor in (ph1, ph2):
        await signal(uw, buyers[1]["id"], "payment_delay", creditor_id=creditor)
    for n in range(3):
        await signal(uw, buyers[2]["id"], "payment_delay", creditor_id=ph1, case_id=f"c{n}")
    await signal(uw, buyers[2]["id"], "collection_legal", creditor_id=ph1, case_id="c0")
    await signal(uw, buyers[2]["id"], "collection_paid", creditor_id=ph1, case_id="c2")
    await signal(uw, buyers[2]["id"], "payment_delay", creditor_id=ph1, case_id="c3")
    for kind in ("payment_delay", "payment_delay", "protracted_default", "protracted_default",
                 "arrears_cleared", "payment_delay"):  # fmt: skip
        await signal(uw, buyers[3]["id"], kind, policy["id"])
    for _ in range(2):
        await signal(uw, buyers[4]["id"], "payment_delay")

    risk = ok(await uw.put(f"/v1/country-risks/{country}", headers=UW, json={"level": 3}), 200)

    assert risk["buyers_regraded"] == len(buyers)
    by_book = [await buyer_now(uw, b["id"]) for b in buyers]
    assert [signals_factor(b)["value"] for b in by_book] == ["1", "2", "2", "4", "2"]  # type: ignore[index]
    for buyer in by_book:  # the same indicators confirmed again: the buyer re-graded alone
        alone = ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                                 json=buyer["indicators"]), 200)  # fmt: skip
        assert (alone["grade"], alone["grade_factors"]) == (buyer["grade"],
                                                            buyer["grade_factors"])  # fmt: skip
