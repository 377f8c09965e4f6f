"""Money, business dates and countries: the pure shared rules."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shared.calendar import add_working_days, days_after, in_history, in_period, in_time, today
from shared.countries import CountryError, country_code
from shared.money import CurrencyMismatch, Money, MoneyError, shown, split


def test_money_adds_within_one_currency_and_refuses_to_mix() -> None:
    assert Money.of("10.50", "EUR") + Money.of("0.50", "EUR") == Money.of("11.00", "EUR")
    with pytest.raises(CurrencyMismatch):
        _ = Money.of("1", "EUR") + Money.of("1", "USD")
    with pytest.raises(CurrencyMismatch):
        _ = Money.of("1", "EUR") < Money.of("1", "USD")


def test_money_refuses_more_decimals_than_the_minor_unit_and_floats() -> None:
    with pytest.raises(MoneyError):
        Money.of("1.001", "EUR")
    with pytest.raises(MoneyError):
        Money.of("1.5", "JPY")
    assert Money.of("1.001", "KWD").amount == Decimal("1.001")
    with pytest.raises(MoneyError):
        Money.of(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money.of("1", "ABC")


def test_a_message_quotes_a_value_as_it_was_sent_blanks_and_all() -> None:
    assert shown(" 5") == '" 5"' and shown("5 ") == '"5 "'
    assert shown(Decimal("10.001")) == '"10.001"'
    assert shown(" " + "9" * 50, width=5) == '" 9999…"'
    with pytest.raises(MoneyError, match=r'^" 5" is not a decimal amount'):
        Money.of(" 5", "EUR")


def test_rounding_is_half_up_once_at_the_end() -> None:
    assert Money(Decimal("0.125"), "EUR").rounded() == Money.of("0.13", "EUR")
    assert Money(Decimal("2.5"), "JPY").rounded().formatted() == "3"
    assert Money.of("85000", "EUR").formatted() == "85000.00"
    with pytest.raises(MoneyError):
        Money(Decimal("0.125"), "EUR").formatted()


def test_a_split_adds_back_up_to_the_total() -> None:
    parts = split(Money.of("100.00", "EUR"), [Decimal(1), Decimal(1), Decimal(1)])
    assert [p.formatted() for p in parts] == ["33.34", "33.33", "33.33"]
    parts = split(Money.of("0.05", "EUR"), [Decimal("0.9"), Decimal("0.1")])
    assert sum(p.amount for p in parts) == Decimal("0.05")


def test_fifteen_working_days_after_2026_09_28_in_china_is_2026_10_23() -> None:
    assert add_working_days(dt.date(2026, 9, 28), 15, "CN") == dt.date(2026, 10, 23)


def test_working_days_count_from_the_next_working_day() -> None:
    # Friday + 1 working day in Germany is the next Monday.
    assert add_working_days(dt.date(2026, 11, 20), 1, "DE") == dt.date(2026, 11, 23)
    # China's official weekend working day (Saturday 2026-10-10) counts.
    assert add_working_days(dt.date(2026, 10, 9), 1, "CN") == dt.date(2026, 10, 10)


def test_deadlines_are_inclusive_and_histories_half_open() -> None:
    anchor = dt.date(2026, 1, 1)
    assert days_after(anchor, 30) == dt.date(2026, 1, 31)
    assert in_time(dt.date(2026, 1, 31), days_after(anchor, 30))
    assert not in_time(dt.date(2026, 2, 1), days_after(anchor, 30))
    assert in_period(dt.date(2026, 12, 31), dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert in_history(dt.date(2026, 3, 1), dt.date(2026, 3, 1), None)
    assert not in_history(dt.date(2026, 3, 1), dt.date(2026, 1, 1), dt.date(2026, 3, 1))


def test_today_is_the_date_in_the_business_time_zone() -> None:
    late_utc = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC)
    assert today("Asia/Shanghai", now=late_utc) == dt.date(2026, 11, 24)
    assert today("UTC", now=late_utc) == dt.date(2026, 11, 23)


def test_countries_are_iso_3166_alpha_2() -> None:
    assert country_code("cn") == "CN"
    for bad in ("XX", "CHN", "", "C"):
        with pytest.raises(CountryError):
            country_code(bad)
