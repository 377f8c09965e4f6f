"""Collections settings: the shared ones plus the collection fee and the escalation schedule."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from shared.settings import Settings


class CollectionsSettings(Settings):
    # The collection fee taken from each recovery before it is shared (domain.md: default 10%).
    fee_pct: Decimal = Field(Decimal(10), alias="TCI_COLLECTIONS_FEE_PCT", ge=0, le=100)
    # How far ahead of the day it is made a promise to pay may fall: a buyer promising to pay
    # further out is making no promise a collector can hold it to (a payment plan runs months).
    promise_horizon_days: int = Field(
        365,
        alias="TCI_COLLECTIONS_PROMISE_HORIZON_DAYS",
        description="how many days after the day it is made a promise to pay may fall due",
        ge=1,
    )
    # The rungs on which a case has gone to law (domain.md: legal at 45 days, a lawsuit at 90):
    # reaching one tells underwriting, as a collector's legal filing does (`collection_legal`).
    legal_stages: str = Field(
        "legal,lawsuit",
        alias="TCI_COLLECTIONS_LEGAL_STAGES",
        description="the ladder stages (comma-separated) on which a case has gone to law",
        pattern=r"^[a-z_]+(,[a-z_]+)*$",
    )

    def legal_stage_names(self) -> frozenset[str]:
        return frozenset(self.legal_stages.split(","))

    # How often the escalation ladder is run for today (the daily scheduler; it is idempotent).
    outbox_interval_seconds: float = Field(
        5.0,
        alias="TCI_OUTBOX_INTERVAL_SECONDS",
        description="how often the outbox is delivered to the other services",
        gt=0,
    )
    escalation_interval_seconds: float = Field(
        3600.0,
        alias="TCI_ESCALATION_INTERVAL_SECONDS",
        description="how often the escalation ladder is run for today (idempotent)",
        gt=0,
    )
