"""Business dates: today in the business time zone, inclusive deadlines, working days per country."""

from __future__ import annotations

import datetime as dt
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


@lru_cache(maxsize=256)
def _country_calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=[year - 1, year, year + 1])


def is_working_day(day: dt.date, country: str) -> bool:
    """A weekday that is not a public holiday, or an official weekend working day (CN's swaps)."""
    return bool(_country_calendar(country, day.year).is_working_day(day))


def add_working_days(anchor: dt.date, count: int, country: str) -> dt.date:
    """The `count`-th working day after `anchor`; counting starts on the next working day."""
    if count < 0:
        raise ValueError("count must not be negative")
    day = anchor
    remaining = count
    while remaining > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, country):
            remaining -= 1
    return day
