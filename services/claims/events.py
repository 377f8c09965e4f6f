"""The events claims announces (api.md, "Events and webhooks"): their typed payloads, the feed's page
of them as OpenAPI publishes it, and the feed's route."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from services.claims.models import events as tables
from services.claims.rules import ClaimStatus
from shared.contracts import MoneyModel, Schema
from shared.events import Event, EventData
from shared.events_api import events_router


class ClaimStatusChanged(EventData):
    """A claim moved in its lifecycle: filed (`previous_status` null), its file complete, held by
    a dispute and resumed, assessed, approved or rejected, paid, or lapsed with documents
    missing."""

    event_type = "claim.status_changed"
    claim_id: str
    policy_id: str
    buyer_id: str
    cause: str
    previous_status: ClaimStatus | None
    status: ClaimStatus
    held_status: ClaimStatus | None = Field(
        description="while the claim is on hold, the status it resumes when its disputes are "
        "settled"
    )
    changed_on: dt.date
    reason: str | None = Field(description="why, when the change has a reason (a decision's)")
    indemnity: MoneyModel | None = Field(description="the indemnity assessed, once assessed")
    decision_due: dt.date | None
    documents_due: dt.date


class ClaimPaid(EventData):
    """An approved claim was paid its indemnity (once); its debt passes to collections."""

    event_type = "claim.paid"
    claim_id: str
    policy_id: str
    buyer_id: str
    amount: MoneyModel
    paid_on: dt.date


class ClaimStatusChangedEvent(Event):
    type: Literal["claim.status_changed"]
    data: ClaimStatusChanged


class ClaimPaidEvent(Event):
    type: Literal["claim.paid"]
    data: ClaimPaid


ClaimsEvent = Annotated[ClaimStatusChangedEvent | ClaimPaidEvent, Field(discriminator="type")]
EVENT_TYPES = (ClaimStatusChanged.event_type, ClaimPaid.event_type)
# Each type's event, as a webhook delivers it (OpenAPI's `webhooks`).
EVENTS = (ClaimStatusChangedEvent, ClaimPaidEvent)


class ClaimsEventList(Schema):
    items: list[ClaimsEvent]
    next_cursor: str | None


router = events_router(tables, ClaimsEventList, EVENT_TYPES)
