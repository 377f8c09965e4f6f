"""What collections tells underwriting about a buyer, as the `shared.contracts.BuyerSignal` its
receiver reads: a case's payment behaviour feeds the buyer's grade (domain.md, Collections; seed:
根据理赔数据优化客户筛选标准). Pure: rows in, messages out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

from shared.contracts import BuyerSignal, SignalKind

SIGNALS_PATH: Final = "/v1/buyers/{buyer_id}/signals"
# The activity by which a case goes to law (a claim, a lawsuit, a lawyer's letter on file).
LEGAL_ACTIVITY: Final = "legal_filing"
LEGAL_SIGNAL: Final[SignalKind] = "collection_legal"
PAID_IN_FULL_SIGNAL: Final[SignalKind] = "collection_paid"


def legal_step_signal(
    case_id: str, kind: str, earlier_kinds: Iterable[str], occurred_on: dt.date
) -> BuyerSignal | None:
    """A case that goes to law says the buyer would not pay amicably: its first legal step is a
    signal, observed on the day it was taken; later legal steps of the same case say nothing new."""
    if kind != LEGAL_ACTIVITY or LEGAL_ACTIVITY in set(earlier_kinds):
        return None
    return BuyerSignal(kind=LEGAL_SIGNAL, observed_on=occurred_on,
                       details=f"collection case {case_id} went to law")  # fmt: skip


def paid_in_full_signal(case_id: str, closed: bool, received_on: dt.date) -> BuyerSignal | None:
    """A case the buyer has paid in full is a favourable signal, observed on the day of the
    payment that closed it (underwriting weighs it against the delay that opened the case)."""
    if not closed:
        return None
    return BuyerSignal(kind=PAID_IN_FULL_SIGNAL, observed_on=received_on,
                       details=f"collection case {case_id} paid in full")  # fmt: skip
