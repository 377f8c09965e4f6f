"""A claim's lifecycle as a table: which act moves which status where, and the problem each refusal
answers; the named sets the queries use; and the rules the use cases ask (signals, lateness, cover on
the shipment date, disputes, caps at approval and payment, what payment hands to collections)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from services.claims import rules
from services.claims.rules import Act, ClaimState, ClaimStatus, Refusal

S = ClaimStatus
DAY = dt.date


def test_the_last_missing_document_puts_a_pending_claim_under_review() -> None:
    assert rules.after(ClaimState(S.DOCUMENTS_PENDING), Act.COMPLETE_FILE) == ClaimState(
        S.UNDER_REVIEW
    )


def test_a_file_completed_while_on_hold_resumes_under_review_once_the_dispute_is_settled() -> None:
    held = rules.after(ClaimState(S.DOCUMENTS_PENDING), Act.RAISE_DISPUTE)
    assert held == ClaimState(S.ON_HOLD, S.DOCUMENTS_PENDING)
    complete = rules.after(held, Act.COMPLETE_FILE)
    assert complete == ClaimState(S.ON_HOLD, S.UNDER_REVIEW)
    assert rules.after(complete, Act.SETTLE_DISPUTES) == ClaimState(S.UNDER_REVIEW)


def test_a_dispute_on_an_assessed_claim_holds_it_under_review_as_its_assessment_no_longer_stands() -> (
    None
):
    held = rules.after(ClaimState(S.ASSESSED), Act.RAISE_DISPUTE)
    assert held == ClaimState(S.ON_HOLD, S.UNDER_REVIEW)
    assert rules.after(held, Act.RAISE_DISPUTE) == held  # a second dispute holds it as it is
    assert rules.after(held, Act.SETTLE_DISPUTES) == ClaimState(S.UNDER_REVIEW)


def test_a_claim_awaiting_documents_lapses_on_hold_or_not_and_one_under_review_does_not() -> None:
    assert rules.after(ClaimState(S.DOCUMENTS_PENDING), Act.LAPSE) == ClaimState(S.LAPSED)
    on_hold = ClaimState(S.ON_HOLD, S.DOCUMENTS_PENDING)
    assert rules.after(on_hold, Act.LAPSE) == ClaimState(S.LAPSED)
    assert rules.after(ClaimState(S.UNDER_REVIEW), Act.LAPSE) == ClaimState(S.UNDER_REVIEW)
    assert not ClaimState(S.ON_HOLD, S.UNDER_REVIEW).awaits_documents()


def test_an_assessed_claim_is_approved_then_paid_and_any_undecided_one_may_be_rejected() -> None:
    approved = rules.after(rules.after(ClaimState(S.UNDER_REVIEW), Act.ASSESS), Act.APPROVE)
    assert rules.after(approved, Act.PAY) == ClaimState(S.PAID)
    for status in (S.DOCUMENTS_PENDING, S.UNDER_REVIEW, S.ASSESSED):
        assert rules.after(ClaimState(status), Act.REJECT).status == S.REJECTED
    rejected_on_hold = rules.after(ClaimState(S.ON_HOLD, S.UNDER_REVIEW), Act.REJECT)
    assert rejected_on_hold.status == S.REJECTED


@pytest.mark.parametrize(("status", "act", "refusal"), [
    (S.PAID, Act.ADD_DOCUMENT, Refusal.ALREADY_DECIDED),
    (S.LAPSED, Act.ADD_DOCUMENT, Refusal.CLAIM_LAPSED),
    (S.LAPSED, Act.RAISE_DISPUTE, Refusal.ALREADY_DECIDED),
    (S.REJECTED, Act.RAISE_DISPUTE, Refusal.ALREADY_DECIDED),
    (S.APPROVED, Act.ASSESS, Refusal.ALREADY_DECIDED),
    (S.ON_HOLD, Act.ASSESS, Refusal.CLAIM_ON_HOLD),
    (S.LAPSED, Act.ASSESS, Refusal.CLAIM_LAPSED),
    (S.DOCUMENTS_PENDING, Act.ASSESS, Refusal.DOCUMENTS_MISSING),
    (S.REJECTED, Act.APPROVE, Refusal.ALREADY_DECIDED),
    (S.LAPSED, Act.REJECT, Refusal.CLAIM_LAPSED),
    (S.UNDER_REVIEW, Act.APPROVE, Refusal.NOT_ASSESSED),
    (S.ON_HOLD, Act.APPROVE, Refusal.CLAIM_ON_HOLD),  # the dispute, not the assessment
    (S.PAID, Act.PAY, Refusal.ALREADY_PAID),
    (S.ASSESSED, Act.PAY, Refusal.NOT_APPROVED),
    (S.REJECTED, Act.PAY, Refusal.NOT_APPROVED),
])  # fmt: skip
def test_an_act_the_status_does_not_allow_is_refused_with_the_problem_the_api_answers(
    status: ClaimStatus, act: Act, refusal: Refusal
) -> None:
    with pytest.raises(rules.Refused) as refused:
        rules.after(ClaimState(status), act)
    assert refused.value.refusal is refusal and refused.value.status == status


def test_every_move_of_the_table_goes_from_a_status_the_act_does_not_refuse() -> None:
    for act, moves in rules.TRANSITIONS.items():
        for status in moves:
            assert rules.refusal_of(act, status) is None, (act, status)


def test_approved_and_paid_claims_count_against_the_caps_and_rejected_or_lapsed_ones_free_invoices() -> (
    None
):
    assert {S.APPROVED, S.PAID} == rules.COUNTS_AGAINST_CAPS
    assert rules.COUNTS_AGAINST_CAPS <= rules.LIVE
    assert {s for s in S if rules.frees_invoices(s)} == {S.REJECTED, S.LAPSED}


# ---------------------------------------------------------------- what the use cases ask


def test_arrears_paid_end_the_stop_shipment_an_overdue_starts_it_and_an_early_extension_says_nothing() -> (
    None
):
    today = DAY(2027, 3, 1)
    assert rules.notification_signal("arrears_cleared", [today], today) == "arrears_cleared"
    assert rules.notification_signal("overdue", [DAY(2027, 2, 28)], today) == "overdue_notified"
    assert rules.notification_signal("extension_request", [today], today) is None
    # Arrears cleared while another notified invoice is still in arrears: the stop stays.
    assert rules.notification_signal("arrears_cleared", [today], today, arrears_left=True) is None


def test_an_invoice_is_in_arrears_from_its_notification_past_due_until_it_is_cleared() -> None:
    due, early = DAY(2027, 2, 28), DAY(2027, 2, 1)
    made = [("overdue", "A", due, DAY(2027, 3, 1)), ("overdue", "B", due, DAY(2027, 3, 1)),
            ("extension_request", "C", due, early),  # asked ahead of its due date: no arrears
            ("arrears_cleared", "A", due, DAY(2027, 3, 5))]  # fmt: skip
    assert rules.arrears_outstanding(made) == {"B"}
    assert (
        rules.arrears_outstanding([*made, ("arrears_cleared", "B", due, DAY(2027, 3, 6))]) == set()
    )
    again = [*made, ("repayment_plan", "A", due, DAY(2027, 3, 9))]  # in arrears once more
    assert rules.arrears_outstanding(again) == {"A", "B"}


def test_a_protracted_default_signals_on_filing_an_insolvency_only_once_approved() -> None:
    filed, known, approved = DAY(2027, 5, 1), DAY(2027, 4, 20), DAY(2027, 6, 3)
    assert rules.filing_signal("protracted_default", filed) == ("payment_delay", filed)
    assert rules.filing_signal("insolvency", filed) is None  # the policyholder's statement
    assert rules.filing_signal("political", filed) is None
    # Approved on its proof, the insolvency is observed on the day it became known.
    assert rules.approval_signal("insolvency", known, approved) == ("insolvency_filing", known)
    assert rules.approval_signal("insolvency", None, approved) == ("insolvency_filing", approved)
    assert rules.approval_signal("protracted_default", None, approved) is None
    assert rules.approval_signal("political", known, approved) is None


def test_an_invoice_first_notified_late_counts_as_late_and_one_never_notified_by_its_deadline() -> (
    None
):
    due = DAY(2027, 1, 31)
    assert rules.counts_as_late(True, DAY(2027, 2, 1), due, 60) is True
    assert rules.counts_as_late(False, DAY(2027, 9, 1), due, 60) is False
    assert rules.counts_as_late(None, rules.notification_deadline(due, 60), due, 60) is False
    assert rules.counts_as_late(
        None, rules.notification_deadline(due, 60) + dt.timedelta(1), due, 60
    )


def test_cover_on_the_shipment_date_ignores_todays_headroom_and_partial_cover() -> None:
    assert rules.covered_on_shipment({"limit_in_force": True, "headroom_available": False})
    assert not rules.covered_on_shipment({"limit_in_force": False, "headroom_available": True})
    assert rules.shipment_reasons(["headroom_exhausted", "sanctioned", "partially_covered"]) == (
        "sanctioned",
    )


def test_an_invoice_counts_only_when_every_dispute_on_it_was_settled_for_the_policyholder() -> None:
    outcomes = rules.dispute_outcomes(
        [(["A", "B"], "buyer"), (["B"], None), (["C"], "policyholder"), (["A", "D"], "policyholder"),
         (["D"], "buyer"), (["E"], None), (["E"], "policyholder")]
    )  # fmt: skip
    assert outcomes == {"A": "buyer", "B": "open", "C": "policyholder", "D": "buyer", "E": "open"}


def test_nuclear_risk_and_war_without_political_cover_exclude_the_whole_claim() -> None:
    assert rules.claim_exclusions(nuclear_related=True, war_related=True,
                                  political_risk_cover=False) == [
        "nuclear_risk", "war_without_political_cover"]  # fmt: skip
    assert rules.claim_exclusions(nuclear_related=False, war_related=True,
                                  political_risk_cover=True) == []  # fmt: skip


def test_a_political_loss_is_indemnified_at_the_political_percentage() -> None:
    assert rules.indemnity_pct_for("political", D(90), D(85)) == D(85)
    assert rules.indemnity_pct_for("insolvency", D(90), D(85)) == D(90)


def test_a_protracted_default_is_lost_when_its_waiting_period_has_run_others_when_known() -> None:
    window = rules.FilingWindow(opens=DAY(2027, 7, 1), closes=DAY(2027, 12, 28))
    assert rules.loss_date("protracted_default", window, None) == DAY(2027, 7, 1)
    assert rules.loss_date("insolvency", window, DAY(2027, 6, 2)) == DAY(2027, 6, 2)


def test_caps_left_short_of_the_indemnity_outdate_an_approval_and_refuse_a_payment() -> None:
    assert rules.caps_refusal(D(100), D(100), paying=False) is None
    assert rules.caps_refusal(None, D(0), paying=True) is None
    assert rules.caps_refusal(D("100.01"), D(100), paying=False) is Refusal.ASSESSMENT_OUTDATED
    assert rules.caps_refusal(D("100.01"), D(100), paying=True) is Refusal.CAPS_EXCEEDED


def test_payment_hands_collections_only_the_invoices_still_unpaid_with_their_due_dates() -> None:
    owed = rules.subrogated_invoices(
        {"A": D(0), "B": D("40000.00")}, {"A": DAY(2027, 1, 1), "B": DAY(2027, 2, 1)}
    )
    assert owed == [rules.SubrogatedInvoice("B", D("40000.00"), DAY(2027, 2, 1))]


def test_a_claim_awaiting_documents_has_lapsed_once_its_grace_period_ended_with_some_missing() -> (
    None
):
    due, pending = DAY(2027, 3, 1), ClaimState(S.DOCUMENTS_PENDING)
    assert not rules.lapsed_now(pending, due, due, "political", [])
    assert rules.lapsed_now(pending, due, due + dt.timedelta(1), "political", [])
    every = rules.required_documents("political")
    assert not rules.lapsed_now(pending, due, due + dt.timedelta(1), "political", every)
    assert not rules.lapsed_now(
        ClaimState(S.UNDER_REVIEW), due, due + dt.timedelta(9), "political", []
    )
