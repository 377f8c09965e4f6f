"""The named pieces of the longer rules, each on its own: the decision table's rows, the
indicators of portfolio health, the conditions of coverage, and what a declared payment may be."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from services.underwriting.rules import cash_flow, coverage, credit_limit, grade
from services.underwriting.rules.credit_limit import DEFAULT_DECISION_TABLE as TABLE
from services.underwriting.rules.premium import payment_fault
from shared.money import Money
from tests.underwriting.test_rules import cover_facts as rules_cover_facts
from tests.underwriting.test_rules import facts

D = Decimal
TODAY = dt.date(2026, 11, 23)


def codes(reasons: tuple[credit_limit.Reason, ...]) -> list[str]:
    return [r.code for r in reasons]


# ---------------------------------------------------------------- the decision table's rows


def test_every_refusal_row_that_applies_is_a_reason_in_the_tables_order() -> None:
    assert credit_limit.refusal_reasons(facts(), TABLE) == ()
    everything = facts(legal_form="individual", related_to_policyholder=True, grade=10,
                       sanctioned=True, payment_terms_days=181, country_covered=False,
                       policy_open=False)  # fmt: skip
    assert codes(credit_limit.refusal_reasons(everything, TABLE)) == [
        "buyer_not_insurable", "buyer_related", "buyer_insolvent", "sanctioned",
        "payment_terms_exceeded", "country_not_covered", "policy_inactive",
    ]  # fmt: skip
    assert credit_limit.refusal_reasons(facts(payment_terms_days=180), TABLE) == ()


def test_a_referral_row_applies_from_grade_8_and_from_country_risk_level_4() -> None:
    assert credit_limit.referral_reasons(facts(grade=7, country_risk_level=3), TABLE) == ()
    both = credit_limit.referral_reasons(facts(grade=8, country_risk_level=4), TABLE)
    assert codes(both) == ["high_risk_grade", "high_country_risk"]


def test_an_amount_above_its_grade_bands_ceiling_is_referred_and_no_band_means_no_ceiling() -> None:
    at = facts(grade=5, amount=Money.of("250000", "EUR"))
    above = facts(grade=5, amount=Money.of("250000.01", "EUR"))
    assert credit_limit.above_auto_approval_ceiling(at, TABLE) is None
    reason = credit_limit.above_auto_approval_ceiling(above, TABLE)
    assert reason is not None and reason.code == "above_auto_approval_ceiling"
    # Both amounts are money as money is shown: with the currency's decimals and its code.
    assert reason.message == (
        "250000.01 EUR is above the auto-approval ceiling of 250000.00 EUR for grade 5"
    )
    unbanded = facts(grade=8, amount=Money.of("99000000", "EUR"))
    assert credit_limit.above_auto_approval_ceiling(unbanded, TABLE) is None


def test_each_cap_the_amount_is_above_is_listed_with_its_amount() -> None:
    cap, equity = Money.of("80000", "EUR"), Money.of("500000", "EUR")  # 10% of it: 50,000
    caps = credit_limit.caps_below_amount(facts(single_buyer_cap=cap, equity=equity), TABLE)
    assert [(amount, reason.code) for amount, reason in caps] == [
        (cap, "above_single_buyer_cap"), (Money.of("50000", "EUR"), "above_equity_share"),
    ]  # fmt: skip
    assert credit_limit.caps_below_amount(facts(single_buyer_cap=Money.of("100000", "EUR")),
                                          TABLE) == []  # fmt: skip


# ---------------------------------------------------------------- portfolio health's indicators


def invoice(buyer: str, amount: int, days_past_due: int) -> cash_flow.Invoice:
    due = TODAY - dt.timedelta(days=days_past_due)
    return cash_flow.Invoice(buyer, D(amount), due - dt.timedelta(days=60), due, D(0), None)


def test_dso_change_needs_a_dso_a_year_ago_other_than_zero() -> None:
    assert cash_flow.dso_change(D(60), D(50)) == D("0.2")
    assert cash_flow.dso_change(D(60), None) is None
    assert cash_flow.dso_change(D(60), D(0)) is None
    assert cash_flow.dso_change(None, D(50)) is None


def test_a_dso_risen_from_zero_scores_and_warns_as_a_rise_beyond_every_band() -> None:
    """A year ago nothing was outstanding (DSO 0); today 1,000 is, on sales of 1,000: DSO 365
    has risen beyond any share. The grade scores it as a rise above 20% (2 points, not the half
    point of a figure not known) and portfolio health warns of it; 0 then and 0 now is no rise."""
    risen = grade.Indicators(dso_days=D(365), dso_prior_year_days=D(0))
    [factor] = [f for f in grade.grade_buyer(risen, country_risk_level=1).factors
                if f.factor == "dso_change"]  # fmt: skip
    assert (factor.value, factor.points, factor.note) == (None, D(2), "scored: risen from zero")
    flat = grade.Indicators(dso_days=D(0), dso_prior_year_days=D(0))
    assert flat.dso_change == D(0)
    totals = cash_flow.HealthTotals(
        outstanding=D(1000), outstanding_prior_year=D(0), sales=D(1000),
        sales_prior_year=D(600), overdue=D(0), ageing=(), largest_buyers={},
    )  # fmt: skip
    health = cash_flow.health_from_totals(totals)
    assert (health.dso_days, health.dso_prior_year_days, health.dso_change) == (
        D("365.0"), D("0.0"), None)  # fmt: skip
    [warning] = health.warnings
    assert (warning.code, warning.figure) == ("dso_increase", D("365.0"))
    assert (
        warning.message == "DSO rose from 0 days a year ago to 365.0 days, above 20% year on year"
    )


def test_the_warnings_weigh_the_exact_figures_never_the_rounded_ones_shown() -> None:
    # A year ago DSO was 36,049 / 365,000 × 365 = 36.049 days (shown 36.0); today it is
    # 43,258.80 / 365,000 × 365 = 43.2588 days (shown 43.3): exactly 20% more, not above 20%,
    # though the rounded figures would say 20.28%. What is overdue is 6,488.83 of 43,258.80:
    # 15.00002%, above 15%, though it rounds to 15.00%.
    totals = cash_flow.HealthTotals(
        outstanding=D("43258.80"), outstanding_prior_year=D("36049"), sales=D(365000),
        sales_prior_year=D(365000), overdue=D("6488.83"), ageing=(), largest_buyers={},
    )  # fmt: skip
    health = cash_flow.health_from_totals(totals)
    assert (health.dso_days, health.dso_prior_year_days) == (D("43.3"), D("36.0"))
    assert health.dso_change == D("0.2000") and health.overdue_ratio == D("0.1500")
    assert [w.code for w in health.warnings] == ["overdue_ratio_high"]


def test_only_what_is_more_than_30_days_past_due_is_overdue() -> None:
    invoices = [invoice("a", 300, 30), invoice("b", 100, 31)]
    assert cash_flow.overdue_ratio(invoices, TODAY, D(400), 30) == D("0.25")
    assert cash_flow.overdue_ratio([], TODAY, D(0), 30) is None


def test_ageing_keeps_what_is_not_due_apart_and_its_last_bucket_is_open_ended() -> None:
    invoices = [invoice("a", 1, 0), invoice("a", 10, 1), invoice("b", 100, 60),
                invoice("c", 1000, 61), invoice("c", 10000, 4000)]  # fmt: skip
    aged = cash_flow.ageing(invoices, TODAY, cash_flow.DEFAULT_HEALTH.buckets)
    assert aged == (("not_due", D(1)), ("1-30", D(10)), ("31-60", D(100)), ("61-90", D(1000)),
                    ("91+", D(10000)))  # fmt: skip


def test_concentration_ranks_the_buyers_owing_most_ties_by_buyer_id() -> None:
    owing = {"b": D(200), "a": D(200), "c": D(100)}
    largest, together = cash_flow.concentration(owing, D(500), top_buyers=2)
    assert largest == (("a", D(200), D("0.4")), ("b", D(200), D("0.4")))
    assert together == D("0.8")
    assert cash_flow.concentration({}, D(0), top_buyers=5) == ((), None)


def test_a_current_ratio_warning_is_raised_only_below_its_threshold_for_buyers_owing() -> None:
    ratios = {"a": D("1.19"), "b": D("1.2"), "gone": D("0.1")}
    warned = cash_flow.current_ratio_warnings(["a", "b"], ratios, cash_flow.DEFAULT_HEALTH)
    assert [(w.buyer_id, w.figure) for w in warned] == [("a", D("1.19"))]


# ---------------------------------------------------------------- coverage's conditions


def cover_facts(**overrides: object) -> coverage.CoverageFacts:
    return rules_cover_facts(**{"discretionary_limit": D(20000), **overrides})


def test_each_book_condition_fails_on_its_own_fact() -> None:
    assert all(coverage.book_outcome(cover_facts()))
    failing = {
        "policy_active": cover_facts(shipment_date=dt.date(2028, 1, 1)),
        "country_covered": cover_facts(covered_countries=["FR"]),
        "buyer_insurable": cover_facts(related_to_policyholder=True),
        "not_sanctioned": cover_facts(sanctioned=True),
        "no_stop_shipment": cover_facts(stopped=True),
    }
    for name, f in failing.items():
        names = coverage.CONDITION_NAMES[:5]
        assert [n for n, ok in zip(names, coverage.book_outcome(f), strict=True) if not ok] == [
            name
        ]


def test_the_credit_limits_shorter_terms_bound_the_credit_period_and_the_cap_bounds_it() -> None:
    limit = coverage.limit_that_counts(cover_facts(single_buyer_cap=D(60000)))
    assert limit == (D(60000), "credit_limit", 90, False)
    longer = coverage.limit_that_counts(cover_facts(limit_terms_days=200))
    assert longer.terms == 180
    assert coverage.limit_that_counts(cover_facts(limit_terms_days=None)).terms == 180


def test_without_a_limit_the_discretionary_limit_counts_until_a_decision_supersedes_it() -> None:
    open_ = cover_facts(has_limit=False, limit_amount=None, decided_on=None)
    assert coverage.limit_that_counts(open_) == (D(20000), "discretionary", 180, False)
    decided = cover_facts(has_limit=True, limit_amount=None, decided_on=dt.date(2027, 2, 15))
    assert coverage.limit_that_counts(decided) == (None, None, 180, True)
    insolvent = cover_facts(has_limit=False, limit_amount=None, decided_on=None, buyer_grade=10)
    assert coverage.limit_that_counts(insolvent) == (None, None, 180, False)


def test_a_buyers_limit_on_a_day_is_the_limit_a_check_of_a_shipment_that_day_counts() -> None:
    """The exposure page's facts (`LimitOnDay`, no receivable) give `limit_that_counts` the
    answer the coverage check's facts give."""
    for facts_of_check in (
        cover_facts(single_buyer_cap=D(60000)),
        cover_facts(has_limit=True, limit_amount=D(0)),
        cover_facts(has_limit=False, limit_amount=None, decided_on=None),
        cover_facts(has_limit=True, limit_amount=None, decided_on=dt.date(2027, 2, 15)),
        cover_facts(has_limit=False, limit_amount=None, decided_on=None, buyer_grade=10),
        cover_facts(has_limit=False, limit_amount=None, decided_on=None, whole_turnover=False),
    ):
        on_day = coverage.LimitOnDay(*(getattr(facts_of_check, name)
                                       for name in coverage.LimitOnDay._fields))  # fmt: skip
        assert coverage.limit_that_counts(on_day) == coverage.limit_that_counts(facts_of_check)


def test_the_covered_amount_is_the_receivable_up_to_the_headroom_above_the_exposure() -> None:
    assert coverage.covered_amount(D(30000), D(100000), D(80000)) == D(20000)
    assert coverage.covered_amount(D(30000), D(100000), D(0)) == D(30000)
    assert coverage.covered_amount(D(30000), D(100000), D(120000)) == D(0)


# ---------------------------------------------------------------- a declared payment


def test_a_declared_payment_is_observed_by_today_within_the_amount_and_dated() -> None:
    def fault(paid: str | None, on: dt.date | None) -> tuple[str, str] | None:
        return payment_fault(D(500), None if paid is None else D(paid), on, today=TODAY)

    tomorrow, yesterday = TODAY + dt.timedelta(days=1), TODAY - dt.timedelta(days=1)
    assert fault(None, None) is None and fault("0", None) is None
    assert fault("500", TODAY) is None and fault("100", yesterday) is None
    assert fault("100", tomorrow) == ("paid_on", f"must not be after today ({TODAY})")
    assert fault("0", tomorrow) == ("paid_on", f"must not be after today ({TODAY})")
    assert fault("500.01", yesterday) == ("paid_amount", "must be between zero and the amount")
    assert fault("100", None) == ("paid_on", "must be given when anything was paid")
    assert fault(None, tomorrow) == ("paid_amount", "must be given with the payment date")


# ---------------------------------------------------------------- a limit's history from a day on


def test_the_lowest_amount_from_a_day_on_counts_a_day_no_entry_covers_as_zero() -> None:
    entry, day = credit_limit.HistoryEntry, dt.date(2027, 2, 1)
    withdrawn = [entry(D(0), dt.date(2027, 2, 2), None),
                 entry(D(100), dt.date(2027, 1, 1), dt.date(2027, 2, 2))]  # fmt: skip
    assert credit_limit.lowest_in_force_from(withdrawn, day) == D(0)
    assert credit_limit.lowest_in_force_from(withdrawn[1:], day) == D(0)  # it ends, nothing after
    raised = [entry(D(300), dt.date(2027, 3, 1), None),
              entry(D(100), dt.date(2027, 1, 1), dt.date(2027, 3, 1))]  # fmt: skip
    assert credit_limit.lowest_in_force_from(raised, day) == D(100)
    assert credit_limit.lowest_in_force_from(raised, dt.date(2027, 3, 1)) == D(300)
    assert credit_limit.lowest_in_force_from([entry(D(50), dt.date(2027, 2, 8), None)], day) == 0
    assert credit_limit.lowest_in_force_from([], day) == D(0)


def test_a_history_covers_from_a_day_on_while_any_amount_above_zero_runs_then_or_starts_later(
) -> None:  # fmt: skip
    entry, day = credit_limit.HistoryEntry, dt.date(2027, 2, 1)
    assert credit_limit.covers_from([entry(D(50), dt.date(2027, 2, 8), None)], day)
    assert credit_limit.covers_from([entry(D(0), dt.date(2027, 1, 1), dt.date(2027, 3, 1)),
                                     entry(D(9), dt.date(2027, 3, 1), None)], day)  # fmt: skip
    assert not credit_limit.covers_from([entry(D(50), dt.date(2027, 1, 1), day),
                                         entry(D(0), day, None)], day)  # fmt: skip
    assert not credit_limit.covers_from([], day)
