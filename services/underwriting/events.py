"""The events underwriting announces (api.md, "Events and webhooks"): their typed payloads, the
feed's page of them as OpenAPI publishes it, and the feed's route."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from services.underwriting.models import events as tables
from services.underwriting.rules.credit_limit import LimitRequestStatus
from services.underwriting.schemas import CANCELLED_AMOUNTS, DecisionReason, ScheduledAmountRead
from shared.contracts import MoneyModel, Schema, named_enum
from shared.events import Event, EventData
from shared.events_api import events_router

_LimitChangeKind = Literal["new", "increase", "reduction", "halving", "withdrawal", "terms"]
_LimitSource = Literal["request", "external", "change", "signal"]
_GradeCause = Literal["signal", "indicators", "country_risk"]
_DecidedBy = Literal["engine", "underwriter"]
# Published as named enums (one class each in a generated client).
LimitChangeKind = Annotated[_LimitChangeKind, named_enum("LimitChangeKind", _LimitChangeKind)]
LimitSource = Annotated[_LimitSource, named_enum("LimitEntrySource", _LimitSource)]
GradeCause = Annotated[_GradeCause, named_enum("GradeCause", _GradeCause)]
DecidedBy = Annotated[_DecidedBy, named_enum("DecidedBy", _DecidedBy)]


class LimitRequestDecided(EventData):
    """A limit request was decided: by the decision table at once (approved, partially
    approved, refused) or by an underwriter on a referral. A referral is not a decision."""

    event_type = "limit_request.decided"
    request_id: str
    policy_id: str
    buyer_id: str
    status: LimitRequestStatus
    requested_amount: MoneyModel
    decided_amount: MoneyModel | None
    payment_terms_days: int
    reasons: list[DecisionReason]
    decided_by: DecidedBy
    decided_at: dt.datetime
    limit_id: str | None = Field(description="the limit the decided amount is put in force on")


class LimitChanged(EventData):
    """A limit's amount changes from `effective_from` on: a new limit, an increase, a reduction, a
    halving after a downgrade, a withdrawal (to zero), or new payment terms for the same
    amount. `previous_amount` is what was in force on that date (null: nothing)."""

    event_type = "limit.changed"
    limit_id: str
    policy_id: str
    buyer_id: str
    change: LimitChangeKind
    previous_amount: MoneyModel | None
    new_amount: MoneyModel
    effective_from: dt.date
    payment_terms_days: int | None = Field(
        description="the payment terms the amount covers (null: the policy's maximum credit period)"
    )
    reason: str
    source: LimitSource
    cancelled: list[ScheduledAmountRead] = Field(
        default_factory=list, description=CANCELLED_AMOUNTS
    )


class BuyerGradeChanged(EventData):
    """A buyer's grade (1 best … 10 insolvent) changed; heard by the parties holding a limit or a
    limit request on it. The factors behind the grade are never told."""

    event_type = "buyer.grade_changed"
    buyer_id: str
    previous_grade: int
    grade: int
    graded_on: dt.date = Field(description="the date the new grade describes")
    cause: GradeCause


class StopShipmentStarted(EventData):
    """Shipments to the buyer under the policy after `notified_on` are no longer covered."""

    event_type = "stop_shipment.started"
    stop_shipment_id: str
    policy_id: str
    buyer_id: str
    notified_on: dt.date


class StopShipmentCleared(EventData):
    """The stop ended: shipments from `cleared_on` on are covered again."""

    event_type = "stop_shipment.cleared"
    stop_shipment_id: str
    policy_id: str
    buyer_id: str
    notified_on: dt.date
    cleared_on: dt.date


class LimitRequestDecidedEvent(Event):
    type: Literal["limit_request.decided"]
    data: LimitRequestDecided


class LimitChangedEvent(Event):
    type: Literal["limit.changed"]
    data: LimitChanged


class BuyerGradeChangedEvent(Event):
    type: Literal["buyer.grade_changed"]
    data: BuyerGradeChanged


class StopShipmentStartedEvent(Event):
    type: Literal["stop_shipment.started"]
    data: StopShipmentStarted


class StopShipmentClearedEvent(Event):
    type: Literal["stop_shipment.cleared"]
    data: StopShipmentCleared


UnderwritingEvent = Annotated[
    LimitRequestDecidedEvent | LimitChangedEvent | BuyerGradeChangedEvent
    | StopShipmentStartedEvent | StopShipmentClearedEvent,
    Field(discriminator="type"),
]  # fmt: skip
PAYLOADS = (LimitRequestDecided, LimitChanged, BuyerGradeChanged, StopShipmentStarted,
            StopShipmentCleared)  # fmt: skip
EVENT_TYPES = tuple(p.event_type for p in PAYLOADS)
# Each type's event, as a webhook delivers it (OpenAPI's `webhooks`).
EVENTS = (LimitRequestDecidedEvent, LimitChangedEvent, BuyerGradeChangedEvent,
          StopShipmentStartedEvent, StopShipmentClearedEvent)  # fmt: skip


class UnderwritingEventList(Schema):
    items: list[UnderwritingEvent]
    next_cursor: str | None


def limit_change_kind(
    previous: Decimal | None, new: Decimal, *, halving: bool = False
) -> LimitChangeKind:
    """What a change of amount is to the parties: nothing (or zero) before is a new limit, zero
    after a withdrawal, more an increase, less a reduction (a halving after a downgrade), the
    same amount new payment terms."""
    if new == 0:
        return "withdrawal"
    if previous is None or previous == 0:
        return "new"
    if new > previous:
        return "increase"
    if new < previous:
        return "halving" if halving else "reduction"
    return "terms"


router = events_router(tables, UnderwritingEventList, EVENT_TYPES)
