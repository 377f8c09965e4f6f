"""What collections tells underwriting about a buyer, as the `shared.contracts.BuyerSignal` its
receiver reads: a case's payment behaviour feeds the buyer's grade (domain.md, Collections; seed:
根据理赔数据优化客户筛选标准). Each signal names the case's creditor and the case: the grade
counts one creditor's delay on the buyer once while it lasts, however many cases it is split
into. Pure: rows in, messages out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

from services.collections.rules import MANDATE_SIGNAL
from shared.contracts import BuyerSignal, SignalKind

SIGNALS_PATH: Final = "/v1/buyers/{buyer_id}/signals"
# The activity by which a case goes to law (a claim, a lawsuit, a lawyer's letter on file).
LEGAL_ACTIVITY: Final = "legal_filing"
LEGAL_SIGNAL: Final[SignalKind] = "collection_legal"
PAID_IN_FULL_SIGNAL: Final[SignalKind] = "collection_paid"


def mandate_signal(case_id: str, creditor_id: str, opened_on: dt.date) -> BuyerSignal:
    """A mandate is a payment delay of the buyer to its creditor, observed on the day it opened
    (a paid claim's case sends none: the claim itself sent one)."""
    return BuyerSignal(kind=MANDATE_SIGNAL, observed_on=opened_on, creditor_id=creditor_id,
                       case_id=case_id,
                       details=f"collection case {case_id} opened for {creditor_id}")  # fmt: skip


def legal_step_signal(
    case_id: str, creditor_id: str, kind: str, earlier_kinds: Iterable[str], occurred_on: dt.date
) -> BuyerSignal | None:
    """A case that goes to law says the buyer would not pay amicably: its first legal step is a
    signal, observed on the day it was taken; later legal steps of the same case say nothing new."""
    if kind != LEGAL_ACTIVITY or LEGAL_ACTIVITY in set(earlier_kinds):
        return None
    return BuyerSignal(kind=LEGAL_SIGNAL, observed_on=occurred_on, creditor_id=creditor_id,
                       case_id=case_id,
                       details=f"collection case {case_id} went to law")  # fmt: skip


def legal_rung_signal(
    case_id: str, creditor_id: str, stage: str, reached_on: dt.date
) -> BuyerSignal:
    """A case its ladder has put on a legal rung has gone to law, as a legal filing says
    (`legal_step_signal`): observed on the day it reached the rung."""
    return BuyerSignal(kind=LEGAL_SIGNAL, observed_on=reached_on, creditor_id=creditor_id,
                       case_id=case_id,
                       details=f"collection case {case_id} reached the {stage} rung")  # fmt: skip


def paid_in_full_signal(
    case_id: str, creditor_id: str, closed: bool, received_on: dt.date, *, others_live: bool
) -> BuyerSignal | None:
    """The buyer has paid its creditor's delay: the payment closed the case and no other case of
    the creditor on the buyer still collects (`others_live`: the delay goes on). A favourable
    signal, observed on the day of that payment, which ends the creditor's delay for the grade
    and is weighed against it."""
    if not closed or others_live:
        return None
    return BuyerSignal(kind=PAID_IN_FULL_SIGNAL, observed_on=received_on, creditor_id=creditor_id,
                       case_id=case_id,
                       details=f"collection case {case_id} paid in full")  # fmt: skip
