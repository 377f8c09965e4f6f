"""Claims settings: the shared ones plus the claims desk's own."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class ClaimsSettings(Settings):
    # The decision is due within this many working days of the file being complete (seed: 15).
    decision_working_days: int = Field(15, alias="TCI_CLAIMS_DECISION_WORKING_DAYS", ge=1)
    max_document_bytes: int = Field(
        10 * 1024 * 1024,
        alias="TCI_CLAIMS_MAX_DOCUMENT_BYTES",
        description="the largest claim document accepted",
        ge=1,
    )
    document_types: frozenset[str] = Field(
        frozenset({
            "application/pdf", "image/png", "image/jpeg", "image/tiff", "text/plain", "text/csv",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel", "application/msword",
        }),
        alias="TCI_CLAIMS_DOCUMENT_TYPES", description="the media types a claim document may have (a JSON list)",
    )  # fmt: skip
    lapse_sweep_interval_seconds: float = Field(
        3600.0,
        alias="TCI_CLAIMS_LAPSE_SWEEP_INTERVAL_SECONDS",
        description="how often claims whose documents came too late are lapsed",
        gt=0,
    )
    outbox_interval_seconds: float = Field(
        5.0,
        alias="TCI_OUTBOX_INTERVAL_SECONDS",
        description="how often the outbox is delivered to the other services",
        gt=0,
    )
