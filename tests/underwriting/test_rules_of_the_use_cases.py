"""Rules that used to be decided inside the use cases, now pure functions in `rules`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.underwriting import rules
from services.underwriting.config import UnderwritingSettings

D = Decimal
TODAY = dt.date(2027, 1, 10)


def test_an_insolvency_filing_withdraws_every_limit_whatever_the_grade() -> None:
    effect = rules.signal_effect("insolvency_filing", grade_before=3, grade_after=10)
    assert effect == rules.SignalEffect(rules.LimitAction.WITHDRAW, None)


def test_a_signal_that_brings_a_buyer_newly_to_grade_8_halves_its_limits_and_not_again() -> None:
    assert rules.signal_effect("court_judgment", grade_before=7, grade_after=8).limits == "halve"
    assert rules.signal_effect("payment_delay", grade_before=8, grade_after=9).limits == "none"
    assert rules.signal_effect("payment_delay", grade_before=6, grade_after=7).limits == "none"


def test_an_overdue_notified_stops_shipments_and_arrears_cleared_lift_the_stop() -> None:
    assert rules.signal_effect("overdue_notified", grade_before=3, grade_after=4).stop_shipment
    assert (
        rules.signal_effect("arrears_cleared", grade_before=4, grade_after=3).stop_shipment is False
    )
    assert (
        rules.signal_effect("registry_change", grade_before=3, grade_after=3).stop_shipment is None
    )


def test_the_halving_grade_is_its_own_knob_with_the_referral_grades_default() -> None:
    settings = UnderwritingSettings()
    assert settings.halve_from_grade == settings.refer_from_grade == 8
    assert rules.reaches_halving_grade(6, 7, halve_from_grade=7)
    assert not rules.reaches_halving_grade(6, 7)
    assert not rules.reaches_halving_grade(7, 10)  # insolvency withdraws, it does not halve


def test_a_downgrade_halves_after_the_notice_period_and_never_before_tomorrow() -> None:
    assert rules.halving_effective_from(TODAY, 30) == dt.date(2027, 2, 9)
    assert rules.halving_effective_from(TODAY, 0) == dt.date(2027, 1, 11)


def test_the_settings_defaults_are_the_rules_defaults() -> None:
    settings = UnderwritingSettings()
    assert settings.decision_table() == rules.DEFAULT_DECISION_TABLE
    assert settings.health_thresholds() == rules.DEFAULT_HEALTH


def test_a_management_change_counts_one_more_and_other_signals_leave_indicators_alone() -> None:
    assert rules.indicators_after_signal("management_change", {"management_changes_12m": 1}) == {
        "management_changes_12m": 2}  # fmt: skip
    assert rules.indicators_after_signal("court_judgment", {"x": 1}) == {"x": 1}


def test_a_management_change_on_a_count_not_known_never_makes_the_grade_better() -> None:
    # Two indicators not known (1 point): grade 2 in a level-1 country. Counting the change as a
    # known single change (0 points) took half a point off: grade 1 after an adverse signal.
    known = {"current_ratio": Decimal("2.5"), "dso_days": Decimal(40),
             "dso_prior_year_days": Decimal(40), "overdue_ratio": Decimal("0.01"),
             "equity": Decimal(1_000_000)}  # fmt: skip
    after = rules.indicators_after_signal("management_change", known)
    assert after == known
    before_grade = rules.grade_buyer(rules.Indicators(**known), country_risk_level=1).grade
    after_grade = rules.grade_buyer(rules.Indicators(**after), country_risk_level=1).grade
    assert before_grade == 2
    assert after_grade >= before_grade


def test_a_buyer_is_insolvent_from_the_earliest_insolvency_filing_in_any_order() -> None:
    first = dt.date(2027, 1, 5)
    assert rules.insolvent_since_after_signal("insolvency_filing", TODAY, None) == TODAY
    assert rules.insolvent_since_after_signal("insolvency_filing", TODAY, first) == first
    # Heard of later, an earlier filing moves the insolvency back to its day.
    assert rules.insolvent_since_after_signal("insolvency_filing", first, TODAY) == first
    assert rules.insolvent_since_after_signal("court_judgment", TODAY, None) is None


def test_the_confirmed_current_ratio_counts_else_the_declared_one() -> None:
    assert rules.current_ratio_that_counts({"current_ratio": "1.1"}, {"current_ratio": "2"}) == D(
        "1.1")  # fmt: skip
    assert rules.current_ratio_that_counts({}, {"current_ratio": "0.9"}) == D("0.9")
    assert rules.current_ratio_that_counts(None, None) is None


def test_insurable_turnover_counts_insurable_buyers_in_covered_countries_only() -> None:
    line = rules.TurnoverLine(D(1000), 2, "company", "DE", False, False)
    lines = [line, line._replace(country="FR"), line._replace(legal_form="individual"),
             line._replace(sanctioned=True), line._replace(related_to_policyholder=True)]  # fmt: skip
    assert rules.insurable_turnover(lines, ["DE"]) == rules.InsurableTurnover(D(1000), 2, 8)
    assert rules.insurable_turnover(lines, None) == rules.InsurableTurnover(D(2000), 4, 6)


def test_the_terms_of_the_amount_in_force_count_else_of_the_last_before_else_the_first() -> None:
    history = [rules.HistoryEntry(D(1), dt.date(2027, 2, 1), None, 60),
               rules.HistoryEntry(D(1), dt.date(2027, 1, 1), dt.date(2027, 2, 1), 90)]  # fmt: skip
    assert rules.terms_on(history, dt.date(2027, 1, 15)) == 90
    assert rules.terms_on(history, dt.date(2027, 3, 1)) == 60
    assert rules.terms_on(history, dt.date(2026, 12, 1)) == 90
    assert rules.terms_on([], TODAY) is None


def test_a_new_amount_ends_the_running_entry_and_supersedes_those_not_yet_started() -> None:
    change = dt.date(2027, 2, 1)
    assert rules.entry_after_change(dt.date(2027, 1, 1), None, change) == (False, change)
    assert rules.entry_after_change(dt.date(2027, 3, 1), None, change) == (True, None)
    assert rules.entry_after_change(change, None, change) == (True, None)
    ended = dt.date(2027, 1, 15)
    assert rules.entry_after_change(dt.date(2027, 1, 1), ended, change) == (False, ended)


def test_an_underwriter_approves_up_to_the_request_and_a_partial_approval_is_below_it() -> None:
    decide = rules.underwriter_decision
    assert decide("approve", requested=D(100), amount=None).status == rules.APPROVED
    assert decide("approve", requested=D(100), amount=D(60)).status == rules.PARTIAL
    assert decide("refuse", requested=D(100), amount=None).decided == 0
    for decision, amount in (("partially_approve", None), ("partially_approve", D(100)),
                             ("approve", D(101)), ("approve", D(0)),
                             ("refuse", D(60))):  # fmt: skip
        with pytest.raises(rules.DecisionRefused):
            decide(decision, requested=D(100), amount=amount)


def test_the_equity_caps_a_request_only_when_known_in_the_policys_currency() -> None:
    assert rules.equity_that_counts(D(10), "EUR", "EUR") is not None
    assert rules.equity_that_counts(D(10), "USD", "EUR") is None
    assert rules.equity_that_counts(None, "EUR", "EUR") is None


def test_arrears_cleared_end_a_stop_never_before_its_notification() -> None:
    assert rules.stop_cleared_on(dt.date(2027, 1, 3), dt.date(2027, 1, 5)) == dt.date(2027, 1, 5)
    assert rules.stop_cleared_on(TODAY, dt.date(2027, 1, 5)) == TODAY
