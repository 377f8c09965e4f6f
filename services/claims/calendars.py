"""Calendar use cases (api.md, Added on 2026-11-23: Calendars): the working calendars every
working-day deadline reads, as the `holidays` package has them and as staff corrected them."""

from __future__ import annotations

import datetime as dt

from services.claims import repository as repo
from services.claims import rules, views
from services.claims.models import CalendarDay
from services.claims.schemas import CalendarDayRead, CalendarDaysRead, CalendarDayWrite
from services.claims.service import Context
from shared.calendar import CalendarError, check_year, is_working_day, package_days
from shared.countries import CountryError, country_code
from shared.db import utcnow
from shared.problems import invalid, not_found


def _calendar_country(country: str) -> str:
    try:
        return country_code(country)
    except CountryError as exc:
        raise invalid(["path", "country"], str(exc)) from None


def _calendar_year(year: int, loc: list[str | int]) -> int:
    try:
        return check_year(year)
    except CalendarError as exc:
        raise invalid(loc, str(exc)) from None


async def calendar_days(ctx: Context, country: str, year: int | None) -> CalendarDaysRead:
    """The holidays and weekend working days of a country's year in force (this year by
    default): the `holidays` package's, with the days staff corrected in their place."""
    country = _calendar_country(country)
    year = _calendar_year(ctx.today.year if year is None else year, ["query", "year"])
    days = {d.day: CalendarDayRead(country=country, date=d.day, working=d.working,
                                   source="holidays", name=d.name)
            for d in package_days(country, year)}  # fmt: skip
    corrected = await repo.calendar_days_in(
        ctx.session, country, dt.date(year, 1, 1), dt.date(year, 12, 31)
    )
    for day in corrected:
        known = days.get(day.day)
        days[day.day] = views.staff_day(day, known.name if known else None,
                                        to_staff=ctx.caller.is_staff)  # fmt: skip
    return CalendarDaysRead(country=country, year=year, items=[days[d] for d in sorted(days)])


async def calendar_day(ctx: Context, country: str, day: dt.date) -> CalendarDayRead:
    """One day as the calendar has it in force."""
    country = _calendar_country(country)
    _calendar_year(day.year, ["path", "date"])
    for read in (await calendar_days(ctx, country, day.year)).items:
        if read.date == day:
            return read
    return CalendarDayRead(country=country, date=day, working=is_working_day(day, country),
                           source="holidays")  # fmt: skip


async def set_calendar_day(
    ctx: Context, country: str, day: dt.date, change: CalendarDayWrite
) -> tuple[CalendarDayRead, bool]:
    """Staff correct one day of a country's calendar (working or not, and why): the day as it now
    stands, and whether the correction is new (a second one for the day replaces the first)."""
    country = _calendar_country(country)
    _calendar_year(day.year, ["path", "date"])
    values = {"country": country, "day": day, "working": change.working, "reason": change.reason,
              "set_by": ctx.caller.subject, "set_at": utcnow()}  # fmt: skip
    created = await repo.add_calendar_day(ctx.session, values)
    if not created:
        await repo.change_calendar_day(ctx.session, values)
    names = {d.day: d.name for d in package_days(country, day.year)}
    await _redate_decisions(ctx, country, day)
    await ctx.session.commit()
    return views.staff_day(CalendarDay(**values), names.get(day), to_staff=True), created


async def remove_calendar_day(ctx: Context, country: str, day: dt.date) -> None:
    """Withdraw a correction: the `holidays` package's calendar holds for that day again."""
    country = _calendar_country(country)
    _calendar_year(day.year, ["path", "date"])
    if not await repo.remove_calendar_day(ctx.session, country, day):
        raise not_found("calendar correction", f"{country}/{day.isoformat()}")
    await _redate_decisions(ctx, country, day)
    await ctx.session.commit()


async def _redate_decisions(ctx: Context, country: str, day: dt.date) -> None:
    """Every working-day deadline reads the corrected calendar (api.md): the claims on this
    country's calendar whose decision is still to come and whose count of working days passes
    over the corrected day take their decision due again, from the day their file was complete."""
    for claim in await repo.claims_deciding_over(ctx.session, day):
        if claim.terms["claims_calendar_country"] != country or claim.complete_on is None:
            continue
        corrections = await repo.calendar_corrections(ctx.session, country, claim.complete_on)
        claim.decision_due = rules.decision_due(
            claim.complete_on, ctx.settings.decision_working_days, country, corrections
        )
