"""The underwriting rules as pure functions, each threshold on both sides of its edge."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from services.underwriting import rules
from shared.money import Money

D = Decimal
KNOWN = rules.Indicators(current_ratio=D("2.5"), dso_days=D(40), dso_prior_year_days=D(40),
                         overdue_ratio=D("0.01"), litigation_count=0, management_changes_12m=0,
                         equity=D(1_000_000))  # fmt: skip


def points_of(grade: rules.Grade, factor: str) -> Decimal:
    return next(f.points for f in grade.factors if f.factor == factor)


def test_a_sound_buyer_in_a_low_risk_country_is_grade_1() -> None:
    assert rules.grade_buyer(KNOWN, country_risk_level=1).grade == 1


@pytest.mark.parametrize(
    ("field", "value", "factor", "points"),
    [
        ("current_ratio", D("2.0"), "current_ratio", 0), ("current_ratio", D("1.99"), "current_ratio", 1),
        ("current_ratio", D("1.2"), "current_ratio", 1), ("current_ratio", D("1.19"), "current_ratio", 2),
        ("current_ratio", D("0.8"), "current_ratio", 2), ("current_ratio", D("0.79"), "current_ratio", 3),
        ("overdue_ratio", D("0.05"), "overdue_ratio", 0), ("overdue_ratio", D("0.0501"), "overdue_ratio", 1),
        ("overdue_ratio", D("0.15"), "overdue_ratio", 1), ("overdue_ratio", D("0.1501"), "overdue_ratio", 2),
        ("overdue_ratio", D("0.30"), "overdue_ratio", 2), ("overdue_ratio", D("0.3001"), "overdue_ratio", 3),
        ("litigation_count", 0, "litigation_count", 0), ("litigation_count", 1, "litigation_count", 1),
        ("litigation_count", 2, "litigation_count", 1), ("litigation_count", 3, "litigation_count", 2),
        ("management_changes_12m", 1, "management_changes_12m", 0),
        ("management_changes_12m", 2, "management_changes_12m", 1),
        ("equity", D("0.01"), "equity", 0), ("equity", D(0), "equity", 2),
        ("dso_days", D(44), "dso_change", 0), ("dso_days", D("44.4"), "dso_change", 1),
        ("dso_days", D(48), "dso_change", 1), ("dso_days", D("48.4"), "dso_change", 2),
    ],
)  # fmt: skip
def test_each_factor_scores_on_both_sides_of_its_edge(
    field: str, value: Decimal, factor: str, points: int
) -> None:
    grade = rules.grade_buyer(replace(KNOWN, **{field: value}), country_risk_level=1)
    assert points_of(grade, factor) == points
    assert grade.grade == 1 + points


@pytest.mark.parametrize(("level", "points"), [(1, 0), (2, 1), (3, 2), (4, 3)])
def test_country_risk_adds_its_points(level: int, points: int) -> None:
    assert rules.grade_buyer(KNOWN, country_risk_level=level).grade == 1 + points


def test_unknown_indicators_weigh_half_a_point_each_and_the_grade_rounds_down() -> None:
    grade = rules.grade_buyer(rules.Indicators(), country_risk_level=2)
    assert grade.points == D("4.0")  # six unknown × 0.5 + country level 2
    assert grade.grade == 5
    one_unknown = rules.grade_buyer(replace(KNOWN, current_ratio=None), country_risk_level=1)
    assert one_unknown.points == D("0.5") and one_unknown.grade == 1


def test_the_grade_is_capped_at_9_and_10_only_on_insolvency() -> None:
    worst = rules.Indicators(current_ratio=D("0.1"), dso_days=D(100), dso_prior_year_days=D(10),
                             overdue_ratio=D("0.9"), litigation_count=9,
                             management_changes_12m=5, equity=D(-1))  # fmt: skip
    assert rules.grade_buyer(worst, country_risk_level=4).grade == 9
    assert rules.grade_buyer(KNOWN, country_risk_level=1, insolvent=True).grade == 10


def test_recent_signals_add_points_and_old_ones_do_not() -> None:
    today = dt.date(2026, 11, 23)
    signals = [("court_judgment", today), ("payment_delay", today - dt.timedelta(days=400))]
    assert rules.recent_signal_points(signals, today=today) == D(1)


def facts(**overrides: object) -> rules.RequestFacts:
    base = dict(amount=Money.of("100000", "EUR"), payment_terms_days=90,
                max_credit_period_days=180, legal_form="company", related_to_policyholder=False,
                grade=2, sanctioned=False, country_risk_level=2, country_covered=True,
                policy_open=True, single_buyer_cap=None, equity=None)  # fmt: skip
    base.update(overrides)
    return rules.RequestFacts(**base)  # type: ignore[arg-type]


def codes(decision: rules.LimitDecision) -> set[str]:
    return {r.code for r in decision.reasons}


def test_a_grade_2_buyer_within_the_ceiling_is_approved() -> None:
    decision = rules.decide_limit_request(facts())
    assert decision.status == rules.APPROVED and decision.decided_amount == Money.of(
        "100000", "EUR"
    )


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"legal_form": "individual"}, "buyer_not_insurable"),
     ({"related_to_policyholder": True}, "buyer_related"),
     ({"grade": 10}, "buyer_insolvent"), ({"sanctioned": True}, "sanctioned"),
     ({"payment_terms_days": 181}, "payment_terms_exceeded")],
)  # fmt: skip
def test_refusals_come_first(overrides: dict[str, object], code: str) -> None:
    decision = rules.decide_limit_request(facts(**{"grade": 9, **overrides}))
    assert decision.status == rules.REFUSED and code in codes(decision)


def test_payment_terms_equal_to_the_maximum_are_within_it() -> None:
    assert rules.decide_limit_request(facts(payment_terms_days=180)).status == rules.APPROVED


@pytest.mark.parametrize(("grade", "status"), [(7, rules.APPROVED), (8, rules.REFERRED),
                                               (9, rules.REFERRED)])  # fmt: skip
def test_grades_8_and_9_are_referred(grade: int, status: str) -> None:
    assert rules.decide_limit_request(facts(amount=Money.of("1000", "EUR"), grade=grade)).status \
        == status  # fmt: skip


@pytest.mark.parametrize(
    ("grade", "at", "above"),
    [(3, "1000000", "1000000.01"), (5, "250000", "250000.01"), (7, "50000", "50000.01")],
)
def test_amounts_above_the_grade_ceiling_are_referred(grade: int, at: str, above: str) -> None:
    assert rules.decide_limit_request(facts(grade=grade, amount=Money.of(at, "EUR"))).status \
        == rules.APPROVED  # fmt: skip
    decision = rules.decide_limit_request(facts(grade=grade, amount=Money.of(above, "EUR")))
    assert decision.status == rules.REFERRED
    assert codes(decision) == {"above_auto_approval_ceiling"}


def test_country_risk_4_is_referred() -> None:
    assert rules.decide_limit_request(facts(country_risk_level=4)).status == rules.REFERRED


def test_partial_approval_at_the_lower_of_cap_and_equity_share() -> None:
    decision = rules.decide_limit_request(
        facts(single_buyer_cap=Money.of("80000", "EUR"), equity=Money.of("600000", "EUR"))
    )
    assert decision.status == rules.PARTIAL
    assert decision.decided_amount == Money.of("60000", "EUR")
    assert codes(decision) == {"above_single_buyer_cap", "above_equity_share"}
    at_share = rules.decide_limit_request(facts(equity=Money.of("1000000", "EUR")))
    assert at_share.status == rules.APPROVED


def test_the_equity_share_names_no_figure_and_equity_not_positive_is_said_so() -> None:
    """A policyholder reads the reasons: the buyer's equity (a factor) is never quoted."""
    partial = rules.decide_limit_request(facts(equity=Money.of("123456.70", "EUR")))
    assert partial.decided_amount == Money.of("12345.67", "EUR")
    assert "12345.67" not in partial.reasons[0].message
    assert "123456" not in partial.reasons[0].message
    for equity in ("0", "-1000"):
        refused = rules.decide_limit_request(facts(equity=Money.of(equity, "EUR")))
        assert refused.status == rules.REFUSED
        assert codes(refused) == {"above_equity_share"}
        assert "zero or negative" in refused.reasons[0].message
    # A positive equity whose share rounds to nothing is not said to be zero or negative.
    tiny = rules.decide_limit_request(facts(equity=Money.of("0.04", "EUR")))
    assert tiny.status == rules.REFUSED and codes(tiny) == {"above_equity_share"}
    assert "zero or negative" not in tiny.reasons[0].message


def test_equity_known_in_another_currency_is_weighed_by_an_underwriter() -> None:
    """No conversion: the engine cannot compare the request with the share of it, so it refers
    the request rather than approve it as if the equity were unknown."""
    assert rules.equity_currency_elsewhere(D(1_000_000), "USD", "EUR") == "USD"
    assert rules.equity_currency_elsewhere(D(1_000_000), "EUR", "EUR") is None
    assert rules.equity_currency_elsewhere(None, "USD", "EUR") is None
    decision = rules.decide_limit_request(facts(equity_currency_elsewhere="USD"))
    assert decision.status == rules.REFERRED
    assert codes(decision) == {"equity_in_other_currency"}
    assert "USD" in decision.reasons[0].message


def test_a_reduction_never_applies_before_tomorrow_but_an_increase_may_apply_today() -> None:
    today = dt.date(2026, 11, 23)
    assert rules.change_effective_from(current=D(100), new_amount=D(50), requested=today,
                                       today=today, notice_days=30)[1] is False  # fmt: skip
    assert rules.change_effective_from(
        current=D(100), new_amount=D(50), requested=None, today=today, notice_days=30
    ) == (dt.date(2026, 12, 23), True)
    assert rules.change_effective_from(
        current=D(100), new_amount=D(150), requested=None, today=today, notice_days=30
    ) == (today, True)


def test_a_reductions_default_date_is_tomorrow_at_the_earliest_whatever_the_notice_period() -> None:
    today = dt.date(2026, 11, 23)
    assert rules.change_effective_from(
        current=D(100), new_amount=D(50), requested=None, today=today, notice_days=0
    ) == (dt.date(2026, 11, 24), True)


def test_insolvency_withdraws_from_the_day_after_observation_or_after_today() -> None:
    today = dt.date(2026, 11, 23)
    assert rules.insolvency_withdrawal_date(dt.date(2026, 11, 1), today) == dt.date(2026, 11, 24)
    assert rules.insolvency_withdrawal_date(dt.date(2026, 12, 1), today) == dt.date(2026, 12, 2)


def test_stop_shipment_covers_shipments_after_the_notification_until_cleared() -> None:
    stops = [(dt.date(2027, 3, 10), dt.date(2027, 4, 1))]
    assert not rules.stopped_on(stops, dt.date(2027, 3, 10))
    assert rules.stopped_on(stops, dt.date(2027, 3, 11))
    assert not rules.stopped_on(stops, dt.date(2027, 4, 1))


def cover_facts(**overrides: object) -> rules.CoverageFacts:
    base = dict(amount=Money.of("30000", "EUR"), shipment_date=dt.date(2027, 2, 15),
                due_date=dt.date(2027, 5, 15), policy_start=dt.date(2027, 1, 1),
                policy_end=dt.date(2027, 12, 31), covered_countries=None,
                max_credit_period_days=180, indemnity_pct=D(90), whole_turnover=True,
                discretionary_limit=D(0), buyer_country="DE", buyer_legal_form="company",
                buyer_grade=2, sanctioned=False, stopped=False, has_limit=True,
                decided_on=dt.date(2027, 1, 1), limit_terms_days=90, limit_amount=D(100000),
                exposure=D(0))  # fmt: skip
    base.update(overrides)
    return rules.CoverageFacts(**base)  # type: ignore[arg-type]


def cover(**overrides: object) -> rules.CoverageAnswer:
    return rules.assess_coverage(cover_facts(**overrides))


def test_covered_amount_is_the_amount_within_headroom_times_the_indemnity() -> None:
    answer = cover(exposure=D(80000))
    assert answer.covered_amount == Money.of("20000", "EUR")
    assert answer.insured_amount == Money.of("18000", "EUR")
    assert answer.reasons == ("partially_covered",) and not answer.fully_covered
    exhausted = cover(exposure=D(100000))
    assert exhausted.reasons == ("headroom_exhausted",) and not exhausted.covered
    held = {c.name: c.held for c in exhausted.conditions}
    assert held["headroom_available"] is False and held["limit_in_force"] is True
    assert {c.name: c.held for c in answer.conditions}["headroom_available"] is True


def test_the_policy_is_active_on_its_first_and_last_day_only() -> None:
    assert cover(shipment_date=dt.date(2027, 1, 1), due_date=dt.date(2027, 3, 1)).covered
    late = cover(shipment_date=dt.date(2028, 1, 1), due_date=dt.date(2028, 2, 1))
    assert "policy_inactive" in late.reasons and not late.covered


def test_credit_period_equal_to_the_limit_terms_is_within_them() -> None:
    assert cover(due_date=dt.date(2027, 5, 16)).covered  # 90 days
    assert "credit_period_exceeded" in cover(due_date=dt.date(2027, 5, 17)).reasons


def test_discretionary_limit_applies_until_a_decision_supersedes_it() -> None:
    no_decision = cover(has_limit=False, limit_amount=None, decided_on=None,
                        discretionary_limit=D(20000))  # fmt: skip
    assert no_decision.limit_source == "discretionary"
    assert no_decision.covered_amount == Money.of("20000", "EUR")
    refused = cover(has_limit=True, limit_amount=None, decided_on=dt.date(2027, 2, 1),
                    discretionary_limit=D(20000))  # fmt: skip
    assert set(refused.reasons) == {"discretionary_superseded", "no_limit"}
    named = cover(has_limit=False, limit_amount=None, decided_on=None,
                  discretionary_limit=D(20000), whole_turnover=False)  # fmt: skip
    assert named.reasons == ("no_limit",)


def test_a_withdrawn_limit_is_named_as_such() -> None:
    assert "limit_withdrawn" in cover(limit_amount=D(0)).reasons


def test_portfolio_health_warns_on_overdue_ratio_above_15_percent() -> None:
    today = dt.date(2026, 11, 23)
    invoices = [
        rules.Invoice("b1", D(840), today - dt.timedelta(days=100), today - dt.timedelta(days=10),
                      D(0), None),
        rules.Invoice("b2", D(160), today - dt.timedelta(days=100), today - dt.timedelta(days=31),
                      D(0), None),
    ]  # fmt: skip
    health = rules.portfolio_health(invoices, today=today)
    assert health.overdue_ratio == D("0.16")
    assert [w.code for w in health.warnings] == ["overdue_ratio_high"]
    assert dict(health.ageing)["1-30"] == D(840) and dict(health.ageing)["31-60"] == D(160)
    exactly = rules.portfolio_health(
        [replace(invoices[0], amount=D(850)), replace(invoices[1], amount=D(150))], today=today
    )
    assert exactly.overdue_ratio == D("0.15") and exactly.warnings == ()
    # Just above: warned, and the figure shown never reads as the threshold it passed.
    barely = rules.portfolio_health(
        [replace(invoices[0], amount=D("84999.99")), replace(invoices[1], amount=D("15000.01"))],
        today=today,
    )
    [warning] = barely.warnings
    assert warning.figure > warning.threshold == D("0.15")
    assert warning.figure == D("0.1500001") and "15.00001%" in warning.message


def test_portfolio_health_warns_per_buyer_still_owing_with_a_current_ratio_below_1_2() -> None:
    today = dt.date(2026, 11, 23)
    owing = [rules.Invoice(b, D(100), today - dt.timedelta(days=20), today + dt.timedelta(days=40),
                           D(0), None) for b in ("weak", "edge", "strong")]  # fmt: skip
    paid = rules.Invoice("paid-up", D(100), today - dt.timedelta(days=90),
                         today - dt.timedelta(days=30), D(100), today - dt.timedelta(days=31))  # fmt: skip
    ratios = {"weak": D("1.19"), "edge": D("1.2"), "strong": D("2.5"), "paid-up": D("0.3")}
    health = rules.portfolio_health([*owing, paid], today=today, current_ratios=ratios)
    assert [(w.code, w.buyer_id, w.figure) for w in health.warnings] == [
        ("buyer_current_ratio_low", "weak", D("1.19"))
    ]


def test_a_decision_supersedes_the_discretionary_limit_from_its_own_date() -> None:
    def on(day: dt.date) -> rules.CoverageAnswer:
        return cover(has_limit=False, limit_amount=None, discretionary_limit=D(20000),
                     decided_on=dt.date(2027, 2, 15), shipment_date=day,
                     due_date=day + dt.timedelta(days=60))  # fmt: skip

    assert on(dt.date(2027, 2, 14)).limit_source == "discretionary"
    assert on(dt.date(2027, 2, 15)).reasons == ("discretionary_superseded", "no_limit")


def test_only_companies_are_insurable_and_grade_10_has_no_discretionary_cover() -> None:
    for form in ("individual", "public_entity"):
        answer = cover(buyer_legal_form=form)
        assert "buyer_not_insurable" in answer.reasons and not answer.covered
    assert cover(buyer_legal_form="company").covered

    def discretionary(grade: int) -> rules.CoverageAnswer:
        return cover(has_limit=False, limit_amount=None, decided_on=None,
                     discretionary_limit=D(20000), buyer_grade=grade)  # fmt: skip

    assert discretionary(9).limit_source == "discretionary" and discretionary(9).covered
    assert discretionary(10).limit_source is None
    assert discretionary(10).reasons == ("no_limit",)


def test_an_affiliate_of_the_policyholder_is_not_insurable() -> None:
    related = cover(related_to_policyholder=True)
    assert not related.covered and related.reasons == ("buyer_not_insurable",)
    assert {c.name: c.held for c in related.conditions}["buyer_insurable"] is False


def test_an_underwriters_figures_decide_a_declaration_of_any_indicator_they_give() -> None:
    declared = {"current_ratio": "0.31", "equity": {"amount": "-1000.00", "currency": "EUR"}}
    assert rules.declaration_decided(declared, {"current_ratio", "equity", "dso_days"})
    assert rules.declaration_decided(declared, {"current_ratio", "equity"})
    assert rules.declaration_decided(declared, {"equity"})  # confirmed, it would undo equity
    assert not rules.declaration_decided(declared, {"dso_days"})


def test_a_limit_with_a_downgrade_cut_still_to_come_is_not_halved_again() -> None:
    today = dt.date(2027, 6, 10)
    later, earlier, much_later = dt.date(2027, 7, 10), dt.date(2027, 6, 1), dt.date(2027, 9, 1)
    first, second = dt.datetime(2027, 5, 1, tzinfo=dt.UTC), dt.datetime(2027, 6, 9, tzinfo=dt.UTC)

    def amount(source: str, since: dt.date, value: str, at: dt.datetime = first) -> Any:
        return rules.WrittenAmount(source, since, Decimal(value), at)

    granted = amount("request", dt.date(2027, 1, 1), "1000001")
    assert not rules.halvings_to_come([granted], today)
    assert rules.halvings_to_come([granted, amount("signal", later, "500001")], today) == {first}
    # a cut in force already, a withdrawal to come (insolvency), an underwriter's own change
    assert not rules.halvings_to_come([granted, amount("signal", earlier, "500001")], today)
    assert not rules.halvings_to_come([granted, amount("signal", later, "0")], today)
    assert not rules.halvings_to_come([granted, amount("change", later, "400000")], today)
    # a halving in force already, whose half of a later amount starts later: not to come
    applied = [amount("signal", earlier, "500001"), amount("signal", much_later, "750000")]
    assert not rules.halvings_to_come(applied, today)
    pending = amount("signal", later, "250001", second)
    assert rules.halvings_to_come([*applied, pending], today) == {second}
    assert not rules.halved_again(pending, None, later, frozenset({second}))
    assert rules.halved_again(applied[1], None, later, frozenset({second}))
    assert rules.halved_again(granted, None, later, frozenset({first}))
