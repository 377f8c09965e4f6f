"""Business dates: today in the business time zone, inclusive deadlines, working days per country."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

DEFAULT_BUSINESS_TZ = "Asia/Shanghai"


def today(business_tz: str = DEFAULT_BUSINESS_TZ, *, now: dt.datetime | None = None) -> dt.date:
    """Today's calendar date in the business time zone."""
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    return moment.astimezone(ZoneInfo(business_tz)).date()


def days_after(anchor: dt.date, days: int) -> dt.date:
    """The deadline `days` calendar days after `anchor` (an act on that date is still in time)."""
    return anchor + dt.timedelta(days=days)


def in_time(act: dt.date, deadline: dt.date) -> bool:
    """Deadlines are inclusive: an act on the deadline is in time."""
    return act <= deadline


def in_period(day: dt.date, start: dt.date, end: dt.date) -> bool:
    """A closed period: `start ≤ day ≤ end` (a policy's active dates)."""
    return start <= day <= end


def in_history(day: dt.date, effective_from: dt.date, effective_to: dt.date | None) -> bool:
    """A half-open history entry `[effective_from, effective_to)`; no end means open-ended."""
    return effective_from <= day and (effective_to is None or day < effective_to)


# The years a calendar can be listed or corrected for (the `holidays` package covers them).
FIRST_YEAR = 2000
LAST_YEAR = 2100

Corrections = Mapping[dt.date, bool]
"""A country's days as staff corrected them: date → working (True) or not (False)."""


class CalendarError(ValueError):
    """A year outside the calendars kept."""


@dataclass(frozen=True)
class PackageDay:
    """A day the `holidays` package sets apart: a holiday, or an official weekend working day."""

    day: dt.date
    working: bool
    name: str


def check_year(year: int) -> int:
    """The year, if calendars are kept for it; CalendarError otherwise."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarError(f"the year must be from {FIRST_YEAR} to {LAST_YEAR}")
    return year


@lru_cache(maxsize=256)
def _country_calendar(country: str, year: int) -> holidays.HolidayBase:
    try:
        return holidays.country_holidays(country, years=[year - 1, year, year + 1])
    except NotImplementedError:  # a country the package does not know: weekends only
        return holidays.HolidayBase(years=[year - 1, year, year + 1])


def package_days(country: str, year: int) -> list[PackageDay]:
    """The holidays and weekend working days of `country` in `year` as the `holidays` package
    knows them, by date."""
    calendar = _country_calendar(country, year)
    days = [PackageDay(day, False, str(name)) for day, name in calendar.items() if day.year == year]
    workdays: set[dt.date] = getattr(calendar, "weekend_workdays", set())
    days += [PackageDay(day, True, "weekend working day") for day in workdays if day.year == year]
    return sorted(days, key=lambda d: d.day)


def is_working_day(day: dt.date, country: str, corrections: Corrections | None = None) -> bool:
    """A weekday that is not a public holiday, or an official weekend working day (CN's swaps);
    a day staff corrected is what they set."""
    corrected = corrections.get(day) if corrections else None
    if corrected is not None:
        return corrected
    return bool(_country_calendar(country, day.year).is_working_day(day))


def add_working_days(
    anchor: dt.date, count: int, country: str, corrections: Corrections | None = None
) -> dt.date:
    """The `count`-th working day after `anchor`; counting starts on the next working day; the
    days staff corrected count as they set them."""
    if count < 0:
        raise ValueError("count must not be negative")
    day = anchor
    remaining = count
    while remaining > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, country, corrections):
            remaining -= 1
    return day
