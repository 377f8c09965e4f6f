"""The claims rules as pure functions: deadlines on both sides of their edge, the filing window, the
documents, exclusions and every step of the indemnity sum."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from services.claims import rules

DAY = dt.date


def facts(
    number: str, amount: str, shipped: dt.date, limit: str, **kw: object
) -> rules.InvoiceFacts:
    invoice = rules.ClaimInvoice(number, D(amount), shipped, shipped + dt.timedelta(days=60))
    base: dict[str, object] = {"covered_on_shipment": True, "not_covered_reasons": (),
                               "limit_in_force": D(limit), "sanctioned": False,
                               "notified_late": False, "dispute": None}  # fmt: skip
    return rules.InvoiceFacts(invoice=invoice, **{**base, **kw})  # type: ignore[arg-type]


def terms(**kw: str | None) -> rules.IndemnityTerms:
    values: dict[str, str | None] = {"indemnity_pct": "90", "deductible": "0",
                                     "claim_threshold": "0", "single_buyer_cap_left": None,
                                     "max_liability_left": "10000000", **kw}  # fmt: skip
    return rules.IndemnityTerms(**{k: None if v is None else D(v) for k, v in values.items()})  # type: ignore[arg-type]


def test_the_domain_example_pays_85000() -> None:
    result = rules.indemnity(
        [facts("A", "80000", DAY(2027, 1, 10), "100000"),
         facts("B", "40000", DAY(2027, 2, 10), "100000")],
        reductions=D(0), terms=terms(deductible="5000"), currency="EUR",
    )  # fmt: skip
    assert [line.covered for line in result.lines] == [D(80000), D(20000)]
    assert [s.amount for s in result.steps] == [D(0), D(100000), D(90000), D(85000), D(85000),
                                                D("85000.00")]  # fmt: skip
    assert result.amount.amount == D("85000.00") and result.unpaid_total == D(120000)


def test_reductions_go_to_the_oldest_invoice_first_and_excluded_ones_use_no_limit() -> None:
    result = rules.indemnity(
        [facts("LATE", "30000", DAY(2027, 1, 1), "50000", notified_late=True),
         facts("OLD", "40000", DAY(2027, 1, 5), "50000"),
         facts("NEW", "40000", DAY(2027, 2, 1), "50000")],
        reductions=D(35000), terms=terms(), currency="EUR",
    )  # fmt: skip
    by = {line.number: line for line in result.lines}
    assert (by["LATE"].reduction, by["OLD"].reduction, by["NEW"].reduction) == (
        D(30000),
        D(5000),
        D(0),
    )
    assert by["LATE"].exclusions == ("notified_late",) and by["LATE"].covered == 0
    assert (by["OLD"].covered, by["NEW"].covered) == (D(35000), D(15000))
    assert result.insured_loss == D(50000)


def test_each_invoice_uses_the_limit_of_its_own_shipment_date() -> None:
    result = rules.indemnity(
        [facts("A", "30000", DAY(2027, 2, 15), "100000"),
         facts("B", "60000", DAY(2027, 3, 1), "40000")],
        reductions=D(0), terms=terms(), currency="EUR",
    )  # fmt: skip
    assert [line.covered for line in result.lines] == [D(30000), D(10000)]


def used(number: str, unpaid: str, shipped: dt.date, limit: str) -> rules.UsedLine:
    return rules.UsedLine(shipped, shipped + dt.timedelta(days=90), number, D(limit), D(unpaid))


def test_other_claims_use_the_limit_before_this_claim_s_invoices() -> None:
    """Limit 100,000, 80,000 of it covered by another live claim's earlier shipment: an 80,000
    invoice covers the 20,000 left, and the step names the claim."""
    other = rules.LimitUse("clm_a", D(80000), (used("A", "80000", DAY(2027, 3, 1), "100000"),))
    result = rules.indemnity([facts("B", "80000", DAY(2027, 3, 2), "100000")], reductions=D(0),
                             terms=terms(), currency="EUR", limit_used=[other])  # fmt: skip
    assert [line.covered for line in result.lines] == [D(20000)]
    assert result.amount.amount == D("18000.00")
    assert "claim clm_a 80000.00" in result.steps[1].note


def _split(first: list[rules.UsedLine], second: list[rules.UsedLine]) -> tuple[D, D]:
    """Two claims, the first approved (or paid) before the second was claimed: what each covers
    of the limit."""
    a = rules.limit_entitlement(first, [])
    promised = rules.LimitUse("clm_a", a, tuple(first), committed=True)
    return a, rules.limit_entitlement(second, [promised])


@pytest.mark.parametrize("later_first", [True, False])
def test_claims_split_in_any_order_cover_what_one_claim_would(later_first: bool) -> None:
    """A limit of 200,000 cut to 100,000 between two shipments (150,000, then 100,000): one claim
    covers 150,000 (the second shipment found the limit used); split in two claims, assessed in
    either order, they cover 150,000 too. Raised between them (100,000, then 200,000): 200,000."""
    x = used("X", "150000", DAY(2027, 1, 10), "200000")
    y = used("Y", "100000", DAY(2027, 3, 20), "100000")
    assert rules.limit_entitlement([x, y], []) == D(150000)
    first, second = ([y], [x]) if later_first else ([x], [y])
    assert sum(_split(first, second)) == D(150000)
    # Both live, neither approved: each covers its part of the one claim, in either order.
    assessed = rules.LimitUse("clm_a", D(100000), (y,)), rules.LimitUse("clm_b", D(150000), (x,))
    assert rules.limit_entitlement([x], [assessed[0]]) == D(150000)
    assert rules.limit_entitlement([y], [assessed[1]]) == D(0)
    x = used("X", "100000", DAY(2027, 1, 10), "100000")
    y = used("Y", "100000", DAY(2027, 3, 20), "200000")
    assert rules.limit_entitlement([x, y], []) == D(200000)
    first, second = ([y], [x]) if later_first else ([x], [y])
    assert sum(_split(first, second)) == D(200000)


def test_live_claims_share_the_limit_in_shipment_order_whichever_is_assessed_first() -> None:
    """Limit 100,000; X1 80,000 shipped before X2 40,000, in two claims: X1 covers 80,000 and X2
    the 20,000 left, whichever is assessed first (the other's assessment, taken alone, counted
    the whole of its own invoices)."""
    x1 = used("X1", "80000", DAY(2027, 1, 10), "100000")
    x2 = used("X2", "40000", DAY(2027, 1, 30), "100000")
    alone_1 = rules.LimitUse("clm_1", D(80000), (x1,))
    alone_2 = rules.LimitUse("clm_2", D(40000), (x2,))
    assert rules.limit_entitlement([x1], [alone_2]) == D(80000)
    assert rules.limit_entitlement([x2], [alone_1]) == D(20000)


def test_a_claim_approved_keeps_what_it_was_promised_and_the_earlier_shipments_cover_the_rest() -> (
    None
):
    """X2 (40,000, shipped later) approved for all of it before X1 (80,000) was claimed: its
    40,000 is promised, so X1 covers the 60,000 the limit leaves; a claim approved before the
    limit was raised keeps its cover and takes none of the raise."""
    x1 = used("X1", "80000", DAY(2027, 1, 10), "100000")
    x2 = used("X2", "40000", DAY(2027, 1, 30), "100000")
    promised = rules.LimitUse("clm_2", D(40000), (x2._replace(covered=D(40000)),), committed=True)
    assert rules.limit_entitlement([x1], [promised]) == D(60000)
    # X1 approved at 60,000; X3 (shipped between them, 30,000) is claimed next: nothing left.
    first = rules.LimitUse("clm_1", D(60000), (x1._replace(covered=D(60000)),), committed=True)
    x3 = used("X3", "30000", DAY(2027, 1, 20), "100000")
    assert rules.limit_entitlement([x3], [first, promised]) == D(0)
    # Raised to 150,000 for X4's shipment after them all: X4 covers the 50,000 of the raise.
    x4 = used("X4", "70000", DAY(2027, 2, 10), "150000")
    assert rules.limit_entitlement([x4], [first, promised]) == D(50000)


def test_what_an_approved_claim_left_unused_goes_to_the_live_claims_never_above_the_limit() -> None:
    """X1 (80,000) approved for 50,000 only (a claim since rejected took the rest then): X2
    (40,000) and X3 (30,000), both live, share the 50,000 the limit leaves in shipment order."""
    x1 = used("X1", "80000", DAY(2027, 1, 10), "100000")
    x2 = used("X2", "40000", DAY(2027, 1, 20), "100000")
    x3 = used("X3", "30000", DAY(2027, 1, 30), "100000")
    promised = rules.LimitUse("clm_1", D(50000), (x1._replace(covered=D(50000)),), committed=True)
    live_2, live_3 = rules.LimitUse("clm_2", D(0), (x2,)), rules.LimitUse("clm_3", D(0), (x3,))
    assert rules.limit_entitlement([x2], [promised, live_3]) == D(40000)
    assert rules.limit_entitlement([x3], [promised, live_2]) == D(10000)


def test_a_shipment_made_when_an_approved_claim_used_the_whole_limit_covers_nothing() -> None:
    """Limit 50,000, raised to 150,000 between the second and third shipments. The first claim
    (I1, 50,000) is approved at 50,000: I2, shipped while that used the whole 50,000, covers
    nothing; I3, shipped after the raise, covers 100,000, in whatever order I2 and I3 are
    claimed and assessed (as one claim of the three: 150,000)."""
    i1 = used("I1", "50000", DAY(2027, 1, 10), "50000")
    i2 = used("I2", "50000", DAY(2027, 1, 25), "50000")
    i3 = used("I3", "100000", DAY(2027, 2, 15), "150000")
    assert rules.limit_entitlement([i1, i2, i3], []) == D(150000)
    first = rules.LimitUse("clm_1", D(50000), (i1._replace(covered=D(50000)),), committed=True)
    assert rules.limit_entitlement([i2], [first]) == D(0)
    assert rules.limit_entitlement([i3], [first]) == D(100000)
    second, third = rules.LimitUse("clm_2", D(0), (i2,)), rules.LimitUse("clm_3", D(0), (i3,))
    assert rules.limit_entitlement([i2], [first, third]) == D(0)
    assert rules.limit_entitlement([i3], [first, second]) == D(100000)


def test_the_limit_another_claim_left_is_taken_the_latest_shipments_first() -> None:
    other = rules.LimitUse("clm_a", D(70000), (used("A", "70000", DAY(2027, 1, 1), "100000"),))
    result = rules.indemnity(
        [facts("B", "20000", DAY(2027, 2, 1), "100000"),
         facts("C", "20000", DAY(2027, 3, 1), "100000")],
        reductions=D(0), terms=terms(), currency="EUR", limit_used=[other],
    )  # fmt: skip
    assert [line.covered for line in result.lines] == [D(20000), D(10000)]
    assert "10000.00 less for this claim" in result.steps[1].note


def test_an_invoice_settled_for_the_buyer_is_not_passed_to_collections() -> None:
    unpaid = {"D1": D(1000), "D2": D(2000), "LATE": D(500), "PAID": D(0)}
    due = dict.fromkeys(unpaid, DAY(2027, 1, 1))
    not_owed = {n for n, excluded in (("D1", ["dispute_settled_for_buyer"]),
                                      ("LATE", ["notified_late"]))
                if not rules.owed_by_buyer(excluded)}  # fmt: skip
    assert [i.number for i in rules.subrogated_invoices(unpaid, due, not_owed)] == ["D2", "LATE"]
    assert rules.settled_invoices(unpaid, not_owed) == ["D1", "PAID"]


@pytest.mark.parametrize(("threshold", "expected"), [("10000", "0.00"), ("9999.99", "9000.00")])
def test_nothing_is_paid_at_or_below_the_claim_threshold(threshold: str, expected: str) -> None:
    result = rules.indemnity([facts("A", "10000", DAY(2027, 1, 1), "50000")], reductions=D(0),
                             terms=terms(claim_threshold=threshold), currency="EUR")  # fmt: skip
    assert result.amount.amount == D(expected)


def test_the_deductible_never_makes_it_negative_and_caps_apply_last() -> None:
    small = rules.indemnity([facts("A", "1000", DAY(2027, 1, 1), "50000")], reductions=D(0),
                            terms=terms(deductible="5000"), currency="EUR")  # fmt: skip
    assert small.amount.amount == 0
    capped = rules.indemnity([facts("A", "50000", DAY(2027, 1, 1), "50000")], reductions=D(0),
                             terms=terms(single_buyer_cap_left="30000",
                                         max_liability_left="20000.555"), currency="EUR")  # fmt: skip
    assert capped.amount.amount == D("20000.56")  # capped, then rounded once, half-up
    assert "maximum liability" in capped.steps[4].note


def test_the_cap_a_claim_is_held_to_is_shown_in_the_currency_s_minor_unit() -> None:
    """What is left of a cap, as the database sums it (at its column's scale), is named in the
    step's note as money: 10000.00 EUR, 10000 JPY, never 10000.0000."""
    for currency, left, shown in (("EUR", "10000.0000", "10000.00"), ("JPY", "10.0000", "10")):
        capped = rules.indemnity([facts("A", "50000", DAY(2027, 1, 1), "50000")], reductions=D(0),
                                 terms=terms(max_liability_left=left, single_buyer_cap_left=left),
                                 currency=currency)  # fmt: skip
        assert capped.steps[4].note == (
            f"capped by the maximum liability left for the policy year ({shown})"
        )


def test_exclusions_are_named() -> None:
    f = facts("A", "1", DAY(2027, 1, 1), "1", covered_on_shipment=False, sanctioned=True,
              not_covered_reasons=("buyer_not_insurable", "sanctioned"), dispute="buyer",
              currency_matches=False)  # fmt: skip
    assert rules.exclusions_of(f) == ["exchange_rate_loss", "sanctioned_buyer",
                                      "buyer_not_insurable", "not_covered_on_shipment_date",
                                      "dispute_settled_for_buyer"]  # fmt: skip
    assert rules.exclusions_of(facts("B", "1", DAY(2027, 1, 1), "1", dispute="policyholder")) == []


def test_insolvency_window_is_knowledge_date_plus_30_inclusive() -> None:
    window = rules.filing_window("insolvency", event_date=DAY(2027, 6, 1),
                                 oldest_due_date=DAY(2027, 1, 1), filing_days=30,
                                 protracted_wait_days=180)  # fmt: skip
    assert (window.opens, window.closes) == (DAY(2027, 6, 1), DAY(2027, 7, 1))
    assert window.verdict(DAY(2027, 7, 1)) == "open"
    assert window.verdict(DAY(2027, 7, 2)) == "time_barred"
    assert window.verdict(DAY(2027, 5, 31)) == "too_early"


def test_protracted_default_opens_180_days_after_the_oldest_due_date() -> None:
    window = rules.filing_window("protracted_default", event_date=None,
                                 oldest_due_date=DAY(2027, 1, 1), filing_days=30,
                                 protracted_wait_days=180)  # fmt: skip
    assert window.opens == DAY(2027, 6, 30)
    assert window.verdict(DAY(2027, 6, 29)) == "too_early"
    assert window.verdict(DAY(2027, 6, 30)) == "open"
    assert window.closes == DAY(2027, 7, 30) and window.verdict(DAY(2027, 7, 31)) == "time_barred"


def test_notification_and_extension_edges() -> None:
    due = DAY(2027, 1, 31)
    assert not rules.notified_late(due, DAY(2027, 4, 1), 60)  # due + 60 = 1 April
    assert rules.notified_late(due, DAY(2027, 4, 2), 60)
    assert rules.extension_allowed(due, DAY(2027, 4, 1), 60)
    assert not rules.extension_allowed(due, DAY(2027, 4, 2), 60)
    assert not rules.extension_allowed(due, due, 60)
    # Extended once to 1 March, it may move again only up to 60 days after 31 January.
    moved = DAY(2027, 3, 1)
    assert rules.extension_allowed(moved, DAY(2027, 4, 1), 60, original_due_date=due)
    assert not rules.extension_allowed(moved, DAY(2027, 4, 2), 60, original_due_date=due)


def test_documents_lapse_and_the_decision_date() -> None:
    assert rules.missing_documents("insolvency", ["invoice", "trade_contract"]) == [
        "proof_of_delivery",
        "ageing_report",
        "statement_of_account",
        "insolvency_proof",
    ]
    assert "collection_evidence" in rules.required_documents("protracted_default")
    due = rules.documents_due(DAY(2027, 6, 1), 30)
    assert not rules.lapsed(due, DAY(2027, 7, 1), ["invoice"])
    assert rules.lapsed(due, DAY(2027, 7, 2), ["invoice"])
    assert not rules.lapsed(due, DAY(2027, 7, 2), [])
    assert rules.decision_due(DAY(2026, 9, 28), 15, "CN") == DAY(2026, 10, 23)


def test_policy_years_and_the_insurer_share() -> None:
    assert rules.policy_year(DAY(2026, 3, 1), DAY(2027, 2, 28)) == (
        DAY(2026, 3, 1),
        DAY(2027, 3, 1),
    )
    assert rules.policy_year(DAY(2024, 2, 29), DAY(2025, 3, 1)) == (
        DAY(2025, 2, 28),
        DAY(2026, 2, 28),
    )


@pytest.mark.parametrize(("content", "kind", "matches"), [
    (b"%PDF-1.7 ...", "application/pdf", True), (b"MZ\x90", "application/pdf", False),
    (b"\x89PNG\r\n\x1a\n...", "image/png", True), (b"\xff\xd8\xff\xe0", "image/jpeg", True),
    (b"PK\x03\x04...", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", True),
    (b"number;amount\nA;1", "text/csv", True), (b"a\x00b", "text/plain", False),
    (b"\xff\xfe", "text/plain", False), (b"%PDF-", "application/x-msdownload", False),
])  # fmt: skip
def test_a_document_must_be_what_its_type_says(content: bytes, kind: str, matches: bool) -> None:
    assert rules.content_matches_type(content, kind) is matches


def test_a_claim_wide_exclusion_excludes_every_invoice_whatever_its_cover_when_shipped() -> None:
    result = rules.indemnity(
        [facts("A", "80000", DAY(2027, 1, 10), "100000"),
         facts("B", "40000", DAY(2027, 2, 10), "100000", notified_late=True)],
        reductions=D(0), terms=terms(), currency="EUR", claim_exclusions=["nuclear_risk"],
    )  # fmt: skip
    assert [line.exclusions for line in result.lines] == [("nuclear_risk",),
                                                          ("notified_late", "nuclear_risk")]  # fmt: skip
    assert [line.covered for line in result.lines] == [D(0), D(0)]
    assert result.insured_loss == 0 and result.amount.amount == 0


def test_the_amount_notified_is_the_most_notified_in_time_and_the_dates_the_first_and_original() -> (
    None
):
    """A later notification naming more, after the deadline, does not raise what was notified in
    time; an extension's later due date is not the original; arrears cleared say nothing owed."""

    def row(kind: str, amount: str, due: str, on: str) -> rules.NotifiedRow:
        return rules.NotifiedRow(kind, D(amount), dt.date(2027, 3, 1), dt.date.fromisoformat(due),
                                 dt.date.fromisoformat(on), dt.date(2027, 6, 14))  # fmt: skip

    said = rules.notified_facts([row("overdue", "1000", "2027-04-15", "2027-05-01"),
                                 row("overdue", "2000", "2027-04-15", "2027-06-14"),
                                 row("overdue", "90000", "2027-05-20", "2027-06-15")])  # fmt: skip
    assert said == rules.Notified(dt.date(2027, 3, 1), dt.date(2027, 4, 15), D("2000"))
    assert (
        rules.notified_facts([row("arrears_cleared", "1000", "2027-04-15", "2027-05-01")]) is None
    )
    claimed = rules.ClaimInvoice("H1", D("2000"), dt.date(2027, 3, 1), dt.date(2027, 5, 20))
    assert rules.differs_from_notification(claimed, said) == ()
    moved = claimed._replace(shipment_date=dt.date(2027, 2, 1), due_date=dt.date(2027, 4, 1),
                             amount=D("2000.01"))  # fmt: skip
    assert rules.differs_from_notification(moved, said) == ("shipment_date", "due_date", "amount")
