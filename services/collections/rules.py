"""Collection rules: the escalation ladders as data, and the rung a case stands on."""

from __future__ import annotations

from collections.abc import Mapping

# A ladder is a list of (days past the oldest due date, stage), lowest first.
LADDERS: Mapping[str, tuple[tuple[int, str], ...]] = {
    "reminder_15_30_45": ((15, "reminder_letter"), (30, "phone_collection"), (45, "legal")),
    "legal_30_60_90": ((30, "amicable"), (60, "lawyer_letter"), (90, "lawsuit")),
}
FIRST_STAGE = "new"


def stage_on(ladder: tuple[tuple[int, str], ...], days_past_due: int) -> str:
    """The highest rung the days past due reach (on the rung's day the case is on it)."""
    stage = FIRST_STAGE
    for day, name in ladder:
        if days_past_due >= day:
            stage = name
    return stage
