"""A mandate taken over by a paid claim, pure: the case then owes what the claim left unpaid less
what the mandate recovered beyond what the claim counted (an invoice the claim settled owes
nothing, and what was credited to it goes to the next invoice); what the claim did not count is
found payment by payment and shared again as a recovery after the claim, the parts adding up."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from services.collections import rules
from services.collections.rules import CaseStatus
from shared.money import Money

APRIL, MAY, JUNE = dt.date(2027, 4, 30), dt.date(2027, 5, 19), dt.date(2027, 6, 1)
FEE = D(10)
SHARE = rules.InsurerShare(D("76000.00"), D("90000.00"))


def booked(number: str, due: dt.date, amount: str, paid: str) -> rules.BookedInvoice:
    return rules.BookedInvoice(number, due, D(amount), D(paid))


def claimed(unpaid: str, counted: str | None) -> rules.ClaimedInvoice:
    return rules.ClaimedInvoice(D(unpaid), None if counted is None else D(counted))


def test_without_what_the_claim_counted_the_mandate_falls_only_by_the_claims_reductions() -> None:
    """A message sent before claims said what it counted: all the mandate recovered was counted,
    the case falls by what the claim's unpaid falls short of its outstanding (a credit note of
    4,000), never more, and nothing is shared again."""
    taken = rules.take_over([booked("INV-1", APRIL, "80000", "30000"),
                             booked("INV-2", MAY, "40000", "0")],
                            {"INV-1": claimed("46000", None), "INV-2": claimed("40000", None)})  # fmt: skip
    assert taken.amounts == {"INV-1": D("76000"), "INV-2": D("40000")}
    assert taken.paid == {"INV-1": D("30000"), "INV-2": D("0")}
    assert taken.reduced == {"INV-1": D("4000")}
    assert taken.uncounted == {}


def test_what_the_mandate_recovered_beyond_what_the_claim_counted_is_recovered_after_it() -> None:
    """The claim counted 30,000 and left 50,000 unpaid; the mandate has 39,000: 9,000 was
    recovered after the claim, and the buyer owes 41,000 on INV-1 (nothing is reduced)."""
    taken = rules.take_over([booked("INV-1", APRIL, "80000", "39000")],
                            {"INV-1": claimed("50000", "30000")})  # fmt: skip
    assert (taken.amounts, taken.paid, taken.reduced) == ({"INV-1": D("80000")},
                                                          {"INV-1": D("39000")}, {})  # fmt: skip
    assert taken.counted == {"INV-1": D("30000")} and taken.uncounted == {"INV-1": D("9000")}


def test_a_credit_note_and_a_later_recovery_on_one_invoice_are_both_seen() -> None:
    """Counted 30,000, a credit note of 4,000 (unpaid 46,000), then 48,000 recovered after the
    claim: INV-1 owes 76,000 and the mandate has credited 78,000 to it, so 2,000 goes to INV-2."""
    taken = rules.take_over([booked("INV-1", APRIL, "80000", "78000"),
                             booked("INV-2", MAY, "40000", "0")],
                            {"INV-1": claimed("46000", "30000"), "INV-2": claimed("40000", "0")})  # fmt: skip
    assert taken.amounts == {"INV-1": D("76000"), "INV-2": D("40000")}
    assert taken.paid == {"INV-1": D("76000"), "INV-2": D("2000")}
    assert taken.reduced == {"INV-1": D("4000")} and taken.uncounted == {"INV-1": D("48000")}


def test_an_invoice_the_claim_settled_owes_nothing_and_its_credit_goes_to_the_next() -> None:
    taken = rules.take_over([booked("INV-1", APRIL, "80000", "10000"),
                             booked("INV-2", MAY, "40000", "0"),
                             booked("OTHER", JUNE, "500", "0")],
                            {"INV-1": claimed("0", "0"), "INV-2": claimed("40000", "0")})  # fmt: skip
    assert taken.amounts == {"INV-1": D("0"), "INV-2": D("40000"), "OTHER": D("500")}
    assert taken.paid == {"INV-1": D("0"), "INV-2": D("10000"), "OTHER": D("0")}
    assert taken.reduced == {"INV-1": D("80000")} and taken.uncounted == {"INV-1": D("10000")}


def test_recovered_beyond_all_that_is_owed_the_reductions_give_way_oldest_first() -> None:
    """The claim settled both invoices, yet the buyer paid 150 on them (100 then 50, oldest
    first): nothing is owed, and the reductions give way oldest first, so that each invoice
    keeps what was credited to it."""
    taken = rules.take_over([booked("INV-1", APRIL, "100", "100"),
                             booked("INV-2", MAY, "100", "50")],
                            {"INV-1": claimed("0", "0"), "INV-2": claimed("0", "0")})  # fmt: skip
    assert sum(taken.amounts.values()) - sum(taken.paid.values()) == 0
    assert sum(taken.paid.values()) == D("150")
    assert taken.paid == {"INV-1": D("100"), "INV-2": D("50")}
    assert taken.reduced == {"INV-2": D("50")}
    assert taken.uncounted == {"INV-1": D("100"), "INV-2": D("50")}


def test_each_payment_recorded_after_the_claim_counted_is_found_in_the_order_recorded() -> None:
    payments = [rules.BookedPayment("p1", [("INV-1", D("30000"))]),
                rules.BookedPayment("p2", [("INV-1", D("9000"))])]  # fmt: skip
    assert rules.recovered_after_claim(payments, {"INV-1": D("30000")}) == {"p2": D("9000")}


def test_a_payment_straddling_what_the_claim_counted_is_after_it_for_the_rest_only() -> None:
    """Counted 30,000 on INV-1: p2 credits 15,000 to INV-1 (10,000 beyond) and 5,000 to INV-2
    (nothing counted); a credit to an invoice outside the claim is none of the insurer's."""
    payments = [rules.BookedPayment("p1", [("INV-1", D("20000"))]),
                rules.BookedPayment("p2", [("INV-1", D("15000")), ("INV-2", D("5000"))]),
                rules.BookedPayment("p3", [("OTHER", D("100"))])]  # fmt: skip
    counted = {"INV-1": D("30000"), "INV-2": D("0")}
    assert rules.recovered_after_claim(payments, counted) == {"p2": D("10000")}


def test_a_whole_payment_recovered_after_the_claim_is_split_as_a_subrogation_case_splits_it() -> (
    None
):
    """9,000: fee 900, insurer 8,100 × 76,000 / 90,000 = 6,840, policyholder 1,260."""
    payment = Money(D("9000.00"), "EUR")
    again = rules.share_recovered_after_claim(payment, Money(D("900.00"), "EUR"), D("9000.00"),
                                              fee_pct=FEE, share=SHARE)  # fmt: skip
    assert again == rules.share_recovery(payment, fee_pct=FEE, share=SHARE)
    assert (again.fee.amount, again.insurer.amount, again.policyholder.amount) == (
        D("900.00"), D("6840.00"), D("1260.00"))  # fmt: skip


def test_a_payment_shared_again_keeps_its_fee_and_its_parts_add_up_to_the_cent() -> None:
    for cents in [*range(1, 300), 3333333, 99999999]:
        amount = D(cents).scaleb(-2)
        payment = Money(amount, "EUR")
        fee = rules.share_recovery(payment, fee_pct=FEE, share=None).fee
        for part in {amount, (amount / 3).quantize(D("0.01")), D("0.01")}:
            if not 0 < part <= amount:
                continue
            again = rules.share_recovered_after_claim(payment, fee, part, fee_pct=FEE,
                                                      share=SHARE)  # fmt: skip
            assert again.fee == fee and again.insurer.amount >= 0
            assert again.fee + again.insurer + again.policyholder == payment


def test_the_claim_takes_over_the_oldest_live_mandate_else_a_closed_one_that_recovered_after() -> (
    None
):
    closed_after = rules.Mandate("closed-after", "closed", True)
    closed_before = rules.Mandate("closed-before", "closed", False)
    held = rules.Mandate("held", "on_hold", False)
    assert rules.mandate_to_take_over([closed_after, held]) == "held"
    assert rules.mandate_to_take_over([closed_before, closed_after]) == "closed-after"
    assert rules.mandate_to_take_over([closed_before]) is None


def test_a_mandate_taken_over_owing_nothing_is_closed_and_one_owing_collects() -> None:
    assert rules.status_after_takeover(D(0), disputes_open=0) is CaseStatus.CLOSED
    assert rules.status_after_takeover(D(0), disputes_open=1) is CaseStatus.CLOSED
    assert rules.status_after_takeover(D("0.01"), disputes_open=0) is CaseStatus.OPEN


def test_a_mandate_taken_over_owing_something_holds_while_a_dispute_is_open() -> None:
    """Whatever status it had (a closed mandate that opens again included), a dispute raised on
    it and not resolved holds it."""
    assert rules.status_after_takeover(D("0.01"), disputes_open=1) is CaseStatus.ON_HOLD
    assert rules.status_after_takeover(D(5), disputes_open=2) is CaseStatus.ON_HOLD


def test_payments_shared_again_in_sequence_share_their_total_recovered_after_the_claim() -> None:
    """Nineteen payments of 1,000.01 shared again one after another, each knowing what the
    earlier ones were given: the insurer has the part of their 19,000.19 shared once (17,100.17
    × 76,000 / 90,000 = 14,440.14), not nineteen times 760.01 (14,440.19); each keeps its fee."""
    payment, fee = Money(D("1000.01"), "EUR"), Money(D("100.00"), "EUR")
    earlier = rules.Shared.nothing("EUR")
    insurer = D("0.00")
    for _ in range(19):
        again = rules.share_recovered_after_claim(payment, fee, payment.amount, fee_pct=FEE,
                                                  share=SHARE, earlier=earlier)  # fmt: skip
        assert again.fee == fee and again.fee + again.insurer + again.policyholder == payment
        earlier = earlier.plus(payment, again)
        insurer += again.insurer.amount
    assert insurer == D("14440.14") == rules.share_recovery(
        Money(D("19000.19"), "EUR"), fee_pct=FEE, share=SHARE).insurer.amount  # fmt: skip
