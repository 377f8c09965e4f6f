"""Declarations and premium (domain.md, Underwriting: Declarations and premium): what a declared
payment may be, which declared turnover bears premium, and the premium."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from services.underwriting.rules.policy import country_covered, insurable
from shared.money import Money

ZERO = Decimal(0)


def payment_fault(
    amount: Decimal, paid_amount: Decimal | None, paid_on: dt.date | None, *, today: dt.date
) -> tuple[str, str] | None:
    """A declared payment is what the buyer paid on the invoice and the day it paid it: between
    zero and the invoice's amount, dated when anything was paid, and never after today (a payment
    is observed, not foreseen); a date comes with its amount. The field at fault and why, or None
    (a payment before shipment is an advance, not a fault)."""
    if paid_amount is not None:
        if paid_amount < 0 or paid_amount > amount:
            return "paid_amount", "must be between zero and the amount"
        if paid_amount > 0 and paid_on is None:
            return "paid_on", "must be given when anything was paid"
    if paid_on is not None:
        if paid_amount is None:
            return "paid_amount", "must be given with the payment date"
        if paid_on > today:
            return "paid_on", f"must not be after today ({today.isoformat()})"
    return None


def earliest_declared_day(policy_start: dt.date, history_days: int) -> dt.date:
    """The earliest day a declaration under a policy may name: its start less the history the
    cash-flow indicators read (`HealthThresholds.history_days`: DSO year on year reads the sales
    of the year before a year ago), so that a book declared when the policy starts has its
    prior-year figures. Nothing of the policy reads further back."""
    return policy_start - dt.timedelta(days=history_days)


def declared_credit_days(max_credit_period_days: int, at_most: int) -> int:
    """The longest credit period a declared invoice may have: the policy's maximum, or
    `at_most` (a setting) when that is longer; the cover's own terms are judged by the
    coverage check, not by the declaration."""
    return max(max_credit_period_days, at_most)


def invoice_dates_fault(
    shipment_date: dt.date,
    due_date: dt.date,
    paid_on: dt.date | None,
    *,
    today: dt.date,
    earliest: dt.date,
    credit_days_at_most: int,
) -> tuple[str, str] | None:
    """A declared invoice is a sale on credit already made, on the policy's terms: shipped by
    today (a declaration reports receivables, it does not foresee them) and not before
    `earliest` (`earliest_declared_day`); due (on or after shipment, checked before this) within
    `credit_days_at_most` of its shipment (`declared_credit_days`: a sale on longer terms than
    the cover allows is still a receivable of the book, uncovered); paid, if at all, not before
    `earliest` either. The field at fault and why, naming the bound, or None."""
    if shipment_date > today:
        return (
            "shipment_date",
            f"must not be after today ({today.isoformat()}): a receivable "
            "is declared once the goods are shipped",
        )
    if shipment_date < earliest:
        return (
            "shipment_date",
            f"must not be before {earliest.isoformat()} (the policy's start "
            "less the history its cash-flow indicators read)",
        )
    if (due_date - shipment_date).days > credit_days_at_most:
        latest_due = shipment_date + dt.timedelta(days=credit_days_at_most)
        return (
            "due_date",
            f"must not be after {latest_due.isoformat()}: within "
            f"{credit_days_at_most} days of the shipment date",
        )
    if paid_on is not None and paid_on < earliest:
        return (
            "paid_on",
            f"must not be before {earliest.isoformat()} (the policy's start less "
            "the history its cash-flow indicators read)",
        )
    return None


def premium(turnover: Money, rate_pct: Decimal) -> Money:
    """Premium = insured turnover × premium rate, rounded once."""
    return turnover.percent(rate_pct).rounded()


def bears_premium(
    *,
    legal_form: str,
    country: str,
    covered_countries: Sequence[str] | None,
    sanctioned: bool,
    related_to_policyholder: bool,
    shipped_while_active: bool,
) -> bool:
    """Turnover bears premium when it is shipped while the policy is active (the insured
    turnover: what is shipped before it starts or after it ends is not insured, whatever period
    the premium is asked for) to an insurable buyer in a covered country: only companies are
    insurable, and neither an affiliate of the policyholder nor a sanctioned buyer (or one in a
    sanctioned country) is."""
    return (
        shipped_while_active
        and insurable(legal_form, related_to_policyholder)
        and not sanctioned
        and country_covered(country, covered_countries)
    )


class TurnoverLine(NamedTuple):
    """The turnover declared on one buyer in a period, and what decides whether it bears premium
    (`shipped_while_active`: shipped between the policy's start and end dates, both included)."""

    amount: Decimal
    invoices: int
    legal_form: str
    country: str
    sanctioned: bool
    related_to_policyholder: bool
    shipped_while_active: bool = True


class InsurableTurnover(NamedTuple):
    amount: Decimal
    invoices_counted: int
    invoices_excluded: int


def insurable_turnover(
    lines: Iterable[TurnoverLine], covered_countries: Sequence[str] | None
) -> InsurableTurnover:
    """The declared turnover that bears premium (shipped while the policy is active, to
    insurable buyers in covered countries), with how many invoices it counts and how many it
    leaves out."""
    total, counted, excluded = ZERO, 0, 0
    for line in lines:
        if bears_premium(
            legal_form=line.legal_form, country=line.country, covered_countries=covered_countries,
            sanctioned=line.sanctioned, related_to_policyholder=line.related_to_policyholder,
            shipped_while_active=line.shipped_while_active,
        ):  # fmt: skip
            total, counted = total + line.amount, counted + line.invoices
        else:
            excluded += line.invoices
    return InsurableTurnover(total, counted, excluded)
