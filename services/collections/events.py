"""The events collections announces (api.md, "Events and webhooks"): their typed payloads, the feed's
page of them as OpenAPI publishes it, and the feed's route."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from services.collections.models import events as tables
from services.collections.rules import CaseStatus
from shared.contracts import MoneyModel, Schema, named_enum
from shared.events import Event, EventData
from shared.events_api import events_router


class CaseStageChanged(EventData):
    """A case's place in its collection changed: opened on its first rung (`previous_stage`
    null), moved up its escalation ladder, held by a dispute or opened again when it is
    resolved (the stage stays, the status moves)."""

    event_type = "case.stage_changed"
    case_id: str
    claim_id: str | None
    creditor_id: str
    buyer_id: str
    ladder: str
    previous_stage: str | None
    stage: str
    previous_status: CaseStatus | None
    status: CaseStatus
    days_past_due: int | None = Field(description="the days past due that moved it up a rung")
    changed_on: dt.date
    reason: str


class RecoveryShares(Schema):
    fee: MoneyModel
    insurer: MoneyModel
    policyholder: MoneyModel


class CasePaymentRecorded(EventData):
    """The debtor paid: the payment, credited oldest invoice first, shared between the collection
    fee, the insurer (a paid claim's case) and the policyholder. A payment a mandate recorded
    that a paid claim's indemnity did not deduct is shared again when the claim takes the case
    over: announced again (the same `payment_id`) with `reshared_after_claim` true, its new
    `allocation`, the one it replaces in `previous_allocation`, and the case's outstanding now."""

    event_type = "case.payment_recorded"
    case_id: str
    claim_id: str | None
    creditor_id: str
    payment_id: str
    amount: MoneyModel
    received_on: dt.date
    allocation: RecoveryShares
    outstanding_after: MoneyModel
    reshared_after_claim: bool = False
    previous_allocation: RecoveryShares | None = None


_ClosedReason = Literal["paid_in_full", "settled_by_claim", "collected_by_another_case"]
ClosedReason = Annotated[_ClosedReason, named_enum("CaseClosedReason", _ClosedReason)]


class CaseClosed(EventData):
    """The case was closed: nothing is outstanding. `reason`: the debtor paid it in full
    (`paid_in_full`); a paid claim's takeover left it owing nothing (`settled_by_claim`); the
    case a paid claim took over collects its debt from now on (`collected_by_another_case`)."""

    event_type = "case.closed"
    case_id: str
    claim_id: str | None
    creditor_id: str
    closed_on: dt.date
    reason: ClosedReason
    recovered: MoneyModel


class CaseStageChangedEvent(Event):
    type: Literal["case.stage_changed"]
    data: CaseStageChanged


class CasePaymentRecordedEvent(Event):
    type: Literal["case.payment_recorded"]
    data: CasePaymentRecorded


class CaseClosedEvent(Event):
    type: Literal["case.closed"]
    data: CaseClosed


CollectionsEvent = Annotated[
    CaseStageChangedEvent | CasePaymentRecordedEvent | CaseClosedEvent,
    Field(discriminator="type"),
]
EVENT_TYPES = (CaseStageChanged.event_type, CasePaymentRecorded.event_type, CaseClosed.event_type)
# Each type's event, as a webhook delivers it (OpenAPI's `webhooks`).
EVENTS = (CaseStageChangedEvent, CasePaymentRecordedEvent, CaseClosedEvent)


class CollectionsEventList(Schema):
    items: list[CollectionsEvent]
    next_cursor: str | None


router = events_router(tables, CollectionsEventList, EVENT_TYPES)
