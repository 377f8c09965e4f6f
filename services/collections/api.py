"""Collections routes."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.collections.rules import LADDERS

router = APIRouter(prefix="/v1", tags=["collections"])


class Rung(BaseModel):
    days_past_due: int
    stage: str


class Ladder(BaseModel):
    name: str
    rungs: list[Rung]


class LadderList(BaseModel):
    items: list[Ladder]
    next_cursor: str | None = None


@router.get("/ladders", response_model=LadderList)
async def list_ladders() -> LadderList:
    """The escalation ladders a policy or a case can climb."""
    return LadderList(
        items=[
            Ladder(name=name, rungs=[Rung(days_past_due=d, stage=s) for d, s in rungs])
            for name, rungs in LADDERS.items()
        ]
    )
