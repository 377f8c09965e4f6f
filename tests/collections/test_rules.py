"""Collections rules, pure: the case's status and the acts that move it, climbing a ladder never
down, a payment's bookkeeping, and what an opening case signals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from services.collections import rules
from services.collections.rules import CaseAct, CaseStatus

LADDER = ((15, "reminder_letter"), (30, "phone_collection"), (45, "legal"))
AS_OF = dt.date(2027, 3, 10)


def test_a_case_never_climbs_down_its_ladder() -> None:
    # 49 days past due opened it on `legal`; paid down to 9 days, it stays there.
    assert rules.climb(LADDER, "legal", 9) is None
    assert rules.climb(LADDER, "phone_collection", 30) is None  # already on the rung
    assert rules.climb(LADDER, "reminder_letter", 30) == "phone_collection"
    assert rules.climb(LADDER, "new", 400) == "legal"  # straight to the highest rung reached


def test_the_daily_run_moves_each_case_up_its_own_ladder_only_when_a_higher_rung_is_reached() -> (
    None
):
    ladders = {"reminder": list(LADDER), "legal": [(30, "amicable"), (60, "lawyer_letter")]}
    standing = [
        rules.StandingCase("up", "reminder", "new", AS_OF - dt.timedelta(days=30)),
        rules.StandingCase("stays", "reminder", "legal", AS_OF - dt.timedelta(days=20)),
        rules.StandingCase("paid", "reminder", "new", None),
        rules.StandingCase("other", "legal", "amicable", AS_OF - dt.timedelta(days=60)),
    ]
    assert rules.escalations(standing, ladders, AS_OF) == [
        rules.Move("up", "new", "phone_collection", 30),
        rules.Move("other", "amicable", "lawyer_letter", 60),
    ]


def test_a_dispute_holds_the_case_and_its_resolution_opens_it_again() -> None:
    held = rules.status_after("open", rules.act_of_activity("dispute"))
    assert held is CaseStatus.ON_HOLD
    assert rules.status_after(held, rules.act_of_activity("dispute")) is CaseStatus.ON_HOLD
    assert rules.status_after(held, rules.act_of_activity("dispute_resolved")) is CaseStatus.OPEN
    assert rules.status_after(held, rules.act_of_activity("call")) is CaseStatus.ON_HOLD


def test_a_case_holds_until_the_last_open_dispute_is_resolved() -> None:
    held = CaseStatus.ON_HOLD
    assert rules.status_after(held, rules.act_of_activity(
        "dispute_resolved", disputes_left_open=1)) is CaseStatus.ON_HOLD  # fmt: skip
    assert rules.status_after(held, rules.act_of_activity(
        "dispute_resolved", disputes_left_open=0)) is CaseStatus.OPEN  # fmt: skip


def logged(*acts: tuple[str, str] | tuple[str, str, str | None]) -> list[rules.LoggedActivity]:
    return [rules.LoggedActivity(a[0], a[1], AS_OF, *a[2:]) for a in acts]


def test_disputes_are_told_apart_by_the_activity_that_raised_them() -> None:
    book = logged(("d1", "dispute"), ("c", "call"), ("d2", "dispute"),
                  ("r1", "dispute_resolved", "d1"))  # fmt: skip
    assert [d.activity_id for d in rules.open_disputes(book)] == ["d2"]
    assert rules.dispute_resolved(book, None).activity_id == "d2"  # the only one open
    assert rules.dispute_resolved(book, "d2").activity_id == "d2"


def test_a_resolution_recorded_before_disputes_were_named_resolved_every_open_one() -> None:
    """It opened the case again (as it did then), so nothing it left was open."""
    book = logged(("d1", "dispute"), ("d2", "dispute"), ("r", "dispute_resolved", None),
                  ("d3", "dispute"))  # fmt: skip
    assert [d.activity_id for d in rules.open_disputes(book)] == ["d3"]


@pytest.mark.parametrize(("named", "problem"), [
    (None, rules.DISPUTE_NOT_NAMED),  # two open: which one?
    ("d0", rules.DISPUTE_ALREADY_RESOLVED),
    ("c", rules.NOT_A_DISPUTE),  # a call is not a dispute
    ("act_unknown", rules.NOT_A_DISPUTE),
])  # fmt: skip
def test_a_resolution_names_an_open_dispute_of_the_case(named: str | None, problem: str) -> None:
    book = logged(("d0", "dispute"), ("r0", "dispute_resolved", "d0"), ("d1", "dispute"),
                  ("c", "call"), ("d2", "dispute"))  # fmt: skip
    with pytest.raises(rules.ResolutionRefused) as refused:
        rules.dispute_resolved(book, named)
    assert (refused.value.problem, refused.value.open_ids) == (problem, ["d1", "d2"])


def test_with_no_dispute_open_there_is_none_to_resolve() -> None:
    with pytest.raises(rules.ResolutionRefused) as refused:
        rules.dispute_resolved(logged(("c", "call")), None)
    assert refused.value.problem == rules.NO_OPEN_DISPUTE


def test_a_promise_to_pay_is_for_at_most_what_is_owed() -> None:
    assert rules.may_promise(D("500.00"), D("500.00"))
    assert not rules.may_promise(D("100000"), D("500.00"))


def promise(ident: str, made: int, due: int, amount: str) -> rules.PromiseMade:
    """A promise made and due so many days after AS_OF."""
    return rules.PromiseMade(ident, AS_OF + dt.timedelta(days=made),
                             AS_OF + dt.timedelta(days=due), D(amount))  # fmt: skip


def paid(on: int, amount: str) -> rules.PaymentReceived:
    return rules.PaymentReceived(AS_OF + dt.timedelta(days=on), D(amount))


def test_promises_still_open_add_up_against_what_is_owed() -> None:
    """1,000 owed and 600 promised for the 20th: another 400 may be promised, 400.01 may not."""
    still_open = rules.open_promises([promise("p1", 0, 10, "600")], AS_OF)
    assert still_open == [rules.OpenPromise("p1", AS_OF + dt.timedelta(days=10), D(600))]
    assert rules.may_promise(D(400), D(1000), still_open)
    assert not rules.may_promise(D("400.01"), D(1000), still_open)
    assert rules.promisable(D(1000), still_open) == D(400)


def test_a_promise_is_open_until_its_day_has_passed_or_it_is_kept() -> None:
    book = [promise("due-today", 0, 5, "100"), promise("broken", 0, 4, "100")]
    assert [p.activity_id for p in rules.open_promises(book, AS_OF + dt.timedelta(days=5))] == [
        "due-today"]  # fmt: skip
    kept = [promise("p1", 0, 10, "600"), paid(3, "250"), paid(4, "350")]
    assert rules.open_promises(kept, AS_OF + dt.timedelta(days=4)) == []
    part = [promise("p1", 0, 10, "600"), paid(3, "250")]
    assert [p.unkept for p in rules.open_promises(part, AS_OF + dt.timedelta(days=4))] == [D(350)]


def test_a_payment_keeps_only_the_promises_made_before_it_and_due_on_or_after_it() -> None:
    """A payment recorded before the promise, received before the day it was made, or received
    after its day does not keep it; one payment keeps the earliest due promise first."""
    book = [paid(0, "100"), promise("p1", 1, 10, "300"), paid(0, "50"),
            promise("p2", 1, 5, "200"), paid(2, "250")]  # fmt: skip
    still_open = rules.open_promises(book, AS_OF + dt.timedelta(days=2))
    # 250 on day 2: 200 keeps p2 (due first), 50 goes towards p1.
    assert still_open == [rules.OpenPromise("p1", AS_OF + dt.timedelta(days=10), D(250))]
    late = [promise("p3", 0, 1, "100"), paid(2, "100"), promise("p4", 0, 9, "100")]
    assert [p.activity_id for p in rules.open_promises(late, AS_OF + dt.timedelta(days=2))] == [
        "p4"]  # fmt: skip


def test_a_case_that_closes_owing_nothing_resolves_its_open_disputes_as_moot() -> None:
    book = logged(("d0", "dispute"), ("r0", "dispute_resolved", "d0"), ("d1", "dispute"),
                  ("d2", "dispute"))  # fmt: skip
    later = AS_OF + dt.timedelta(days=3)
    assert rules.disputes_mooted(book, later) == [("d1", later), ("d2", later)]
    # A dispute raised after the payment that closed the case is moot from the day it was raised.
    assert rules.disputes_mooted(book, AS_OF - dt.timedelta(days=1)) == [("d1", AS_OF),
                                                                         ("d2", AS_OF)]  # fmt: skip
    assert rules.disputes_mooted(logged(("d0", "dispute"), ("r0", "dispute_resolved")), AS_OF) == []


def test_only_a_held_case_has_a_dispute_to_resolve() -> None:
    with pytest.raises(rules.ActRefused) as refused:
        rules.status_after("open", CaseAct.RESOLVE_DISPUTE)
    assert refused.value.problem == rules.NO_OPEN_DISPUTE == "no-open-dispute"


@pytest.mark.parametrize("act", list(CaseAct))
def test_a_closed_case_takes_no_more_activities_or_payments(act: CaseAct) -> None:
    with pytest.raises(rules.ActRefused) as refused:
        rules.status_after("closed", act)
    assert refused.value.problem == rules.CASE_CLOSED == "case-closed"
    assert not rules.takes_acts("closed") and rules.takes_acts("on_hold")


@pytest.mark.parametrize("status", ["open", "on_hold"])
def test_a_payment_leaving_nothing_outstanding_closes_the_case_even_on_hold(status: str) -> None:
    assert rules.status_after(status, rules.act_of_payment(D("0.00"))) is CaseStatus.CLOSED
    assert rules.status_after(status, rules.act_of_payment(D("0.01"))) == status


def test_only_paying_in_full_closes_a_case_and_only_open_cases_climb() -> None:
    closing = {act for act, moves in rules.TRANSITIONS.items()
               if CaseStatus.CLOSED in moves.values()}  # fmt: skip
    assert closing == {CaseAct.PAY_IN_FULL}
    assert {CaseStatus.OPEN} == rules.CLIMBING
    assert {CaseStatus.OPEN, CaseStatus.ON_HOLD} == rules.LIVE


def test_a_payment_is_booked_oldest_first_with_what_the_case_still_owes_after_each_credit() -> None:
    invoices = [rules.OpenInvoice("N-2", dt.date(2027, 2, 20), D(600)),
                rules.OpenInvoice("N-1", dt.date(2027, 2, 15), D(400)),
                rules.OpenInvoice("N-0", dt.date(2027, 2, 1), D(0))]  # fmt: skip
    assert rules.book_payment(invoices, D(500)) == [
        rules.Credit("N-1", D(400), D(600)),
        rules.Credit("N-2", D(100), D(500)),
    ]
    assert rules.book_payment(invoices, D(1000))[-1].outstanding_after == 0


def test_more_than_is_outstanding_is_an_overpayment() -> None:
    invoices = [rules.OpenInvoice("N-1", dt.date(2027, 2, 15), D("400.00"))]
    with pytest.raises(rules.Overpayment) as over:
        rules.book_payment(invoices, D("400.01"))
    assert over.value.outstanding == D("400.00")


def test_days_past_due_count_from_the_oldest_invoice_not_paid_in_full() -> None:
    invoices = [rules.OpenInvoice("OLD", dt.date(2027, 1, 20), D(0)),
                rules.OpenInvoice("NEW", dt.date(2027, 3, 1), D(100))]  # fmt: skip
    assert rules.oldest_unpaid_due(invoices) == dt.date(2027, 3, 1)
    assert rules.days_past_due(rules.oldest_unpaid_due(invoices), AS_OF) == 9
    assert rules.outstanding(invoices) == D(100)
    assert rules.oldest_unpaid_due([rules.OpenInvoice("PAID", dt.date(2027, 1, 1), D(0))]) is None


def test_a_mandate_signals_a_payment_delay_and_a_paid_claims_case_signals_nothing() -> None:
    assert rules.signal_on_opening(None, days_past_due=1) == "payment_delay"
    assert rules.signal_on_opening("clm_1", days_past_due=1) is None


def test_the_insurer_share_is_the_indemnity_paid_over_the_whole_unpaid_debt_exactly() -> None:
    share = rules.indemnity_share(D("85000.00"), D("120000.00"))
    assert share == rules.InsurerShare(D("85000.00"), D("120000.00"))
    assert share is not None and share.pct(4) == D("70.8333")
    assert rules.indemnity_share(D("120000.01"), D("120000.00")) is None
    assert rules.indemnity_share(D("-1"), D("120000.00")) is None
    assert rules.InsurerShare.stored("85000.00", "120000.00") == share
    assert rules.InsurerShare.stored(None, None) is None
