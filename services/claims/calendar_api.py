"""Calendar routes (api.md, Added on 2026-11-23: Calendars): the working calendars every
working-day deadline reads, as the `holidays` package has them and as staff corrected them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import WithJsonSchema

from services.claims import calendars as uc
from services.claims.api import context
from services.claims.schemas import CalendarDayRead, CalendarDaysRead, CalendarDayWrite
from shared.auth import Caller, CallerDep, require
from shared.calendar import FIRST_YEAR, LAST_YEAR
from shared.contracts import CountryCode, Date
from shared.db import SessionDep
from shared.problems import created_responses, problem_responses

router = APIRouter(prefix="/v1/calendars", tags=["calendars"])

Staff = Annotated[Caller, Depends(require("underwriter", "claims_handler", "collector"))]
CountryPath = Annotated[
    CountryCode, Path(min_length=2, max_length=2, examples=["CN"], description="ISO 3166-1 alpha-2")
]
# A day of a calendar, its year within those calendars are kept for (published as the rule).
_YEARS = "|".join(str(year) for year in range(FIRST_YEAR, LAST_YEAR + 1))
DatePath = Annotated[
    Date,
    Path(examples=["2027-02-20"]),
    WithJsonSchema({"type": "string", "format": "date",
                    "pattern": rf"^({_YEARS})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"}),
]  # fmt: skip
READ = problem_responses(401, 422)
WRITE = problem_responses(401, 403, 422)


def _day_url(day: CalendarDayRead) -> str:
    return f"/v1/calendars/{day.country}/days/{day.date.isoformat()}"


@router.get("/{country}/days", response_model=CalendarDaysRead, responses=READ)
async def list_days(
    country: CountryPath, request: Request, session: SessionDep, caller: CallerDep,
    year: Annotated[int | None, Query(ge=FIRST_YEAR, le=LAST_YEAR)] = None,
) -> CalendarDaysRead:  # fmt: skip
    """The holidays and weekend working days in force in a year (default: this year), each marked
    as from the `holidays` package or set by staff."""
    return await uc.calendar_days(context(request, session, caller, {}), country, year)


@router.get("/{country}/days/{date}", response_model=CalendarDayRead, responses=READ)
async def get_day(
    country: CountryPath, date: DatePath, request: Request, session: SessionDep, caller: CallerDep
) -> CalendarDayRead:
    """One day as the calendar has it in force (a plain day: working on weekdays)."""
    return await uc.calendar_day(context(request, session, caller, {}), country, date)


@router.put(
    "/{country}/days/{date}",
    response_model=CalendarDayRead,
    responses={
        **WRITE,
        201: {
            **created_responses("the day had no correction: created")[201],
            "model": CalendarDayRead,
        },
    },
)
async def set_day(
    country: CountryPath, date: DatePath, body: CalendarDayWrite, request: Request,
    session: SessionDep, caller: Staff,
) -> Response:  # fmt: skip
    """Correct one day (staff): working or not, and why. 201 with `Location` when the day had no
    correction yet, 200 when one is replaced. Every working-day deadline computed from now on
    reads it."""
    day, created = await uc.set_calendar_day(context(request, session, caller, {}), country, date,
                                             body)  # fmt: skip
    if created:
        return Response(day.model_dump_json(), status_code=201, media_type="application/json",
                        headers={"Location": _day_url(day)})  # fmt: skip
    return Response(day.model_dump_json(), media_type="application/json")


@router.delete(
    "/{country}/days/{date}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_day(
    country: CountryPath, date: DatePath, request: Request, session: SessionDep, caller: Staff
) -> Response:
    """Withdraw a day's correction (staff): the `holidays` package holds for it again; 404 when
    the day has none."""
    await uc.remove_calendar_day(context(request, session, caller, {}), country, date)
    return Response(status_code=204)
