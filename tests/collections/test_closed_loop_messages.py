"""What claims and collections tell underwriting about a buyer's payment behaviour (the closed loop):
which events send a signal, observed on which day, and that underwriting reads each as it is sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import get_args

from services.claims import messages as claims_messages
from services.claims.models import Claim
from services.collections import messages
from services.underwriting.schemas import SignalCreate
from shared.contracts import BuyerSignal, SignalKind

PAID_ON = dt.date(2027, 6, 1)


def a_paid_claim(cause: str) -> Claim:
    return Claim(id="clm-1", policy_id="pol-1", buyer_id="buy-1", policyholder_id="ph-1",
                 currency="EUR", cause=cause, indemnity=D("85000.00"), paid_on=PAID_ON)  # fmt: skip


def received(sent: BuyerSignal) -> SignalCreate:
    return SignalCreate.model_validate(sent.model_dump(mode="json", exclude_none=True))


def test_a_paid_insolvency_claim_signals_a_paid_claim_with_its_policy_on_the_day_paid() -> None:
    sent = claims_messages.paid_claim_signal(a_paid_claim("insolvency"))
    assert sent is not None
    got = received(sent)
    assert (got.kind, got.observed_on, got.policy_id) == ("claim_paid", PAID_ON, "pol-1")
    assert "clm-1" in got.details


def test_a_paid_protracted_default_claim_signals_the_default_confirmed() -> None:
    sent = claims_messages.paid_claim_signal(a_paid_claim("protracted_default"))
    assert sent is not None and received(sent).kind == "protracted_default"


def test_a_paid_political_claim_says_nothing_of_the_buyer() -> None:
    assert claims_messages.paid_claim_signal(a_paid_claim("political")) is None


def test_a_claim_not_paid_sends_no_paid_claim_signal() -> None:
    claim = a_paid_claim("insolvency")
    claim.paid_on = None
    assert claims_messages.paid_claim_signal(claim) is None


def test_a_mandate_signals_a_payment_delay_naming_its_creditor_and_case() -> None:
    got = received(messages.mandate_signal("case-1", "ph-1", PAID_ON))
    assert (got.kind, got.observed_on, got.policy_id) == ("payment_delay", PAID_ON, None)
    assert (got.creditor_id, got.case_id) == ("ph-1", "case-1")


def test_a_cases_first_legal_step_signals_it_went_to_law_on_the_day_it_was_taken() -> None:
    sent = messages.legal_step_signal("case-1", "ph-1", "legal_filing", ["letter", "call"],
                                      PAID_ON)  # fmt: skip
    assert sent is not None
    got = received(sent)
    assert (got.kind, got.observed_on, got.policy_id) == ("collection_legal", PAID_ON, None)
    assert (got.creditor_id, got.case_id) == ("ph-1", "case-1")


def test_a_later_legal_step_or_another_activity_signals_nothing() -> None:
    assert messages.legal_step_signal("case-1", "ph-1", "legal_filing", ["legal_filing"],
                                      PAID_ON) is None  # fmt: skip
    assert messages.legal_step_signal("case-1", "ph-1", "call", [], PAID_ON) is None
    assert messages.legal_step_signal("case-1", "ph-1", "promise_to_pay", [], PAID_ON) is None


def test_a_case_paid_in_full_signals_on_the_day_of_the_payment_that_closed_it() -> None:
    sent = messages.paid_in_full_signal("case-1", "ph-1", True, PAID_ON, others_live=False)
    assert sent is not None
    got = received(sent)
    assert (got.kind, got.observed_on) == ("collection_paid", PAID_ON)
    assert (got.creditor_id, got.case_id) == ("ph-1", "case-1")
    assert messages.paid_in_full_signal("case-1", "ph-1", False, PAID_ON, others_live=False) is None


def test_a_case_paid_in_full_while_another_case_of_its_creditor_still_collects_signals_nothing(
) -> None:  # fmt: skip
    """The creditor's delay on the buyer goes on: only its last case paid in full ends it."""
    assert messages.paid_in_full_signal("case-1", "ph-1", True, PAID_ON, others_live=True) is None


def test_every_kind_the_closed_loop_sends_is_one_underwriting_accepts() -> None:
    sent = {*claims_messages.PAID_CLAIM_SIGNALS.values(), messages.LEGAL_SIGNAL,
            messages.PAID_IN_FULL_SIGNAL}  # fmt: skip
    assert sent <= set(get_args(SignalKind))
