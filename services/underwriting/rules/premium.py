"""Declarations and premium (domain.md, Underwriting: Declarations and premium): which declared
turnover bears premium, and the premium."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from services.underwriting.rules.policy import country_covered, insurable
from shared.money import Money

ZERO = Decimal(0)


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
) -> bool:
    """Turnover bears premium when it is shipped to an insurable buyer in a covered country:
    only companies are insurable, and neither an affiliate of the policyholder nor a sanctioned
    buyer (or one in a sanctioned country) is."""
    return (
        insurable(legal_form, related_to_policyholder)
        and not sanctioned
        and country_covered(country, covered_countries)
    )


class TurnoverLine(NamedTuple):
    """The turnover declared on one buyer in a period, and what decides whether it bears premium."""

    amount: Decimal
    invoices: int
    legal_form: str
    country: str
    sanctioned: bool
    related_to_policyholder: bool


class InsurableTurnover(NamedTuple):
    amount: Decimal
    invoices_counted: int
    invoices_excluded: int


def insurable_turnover(
    lines: Iterable[TurnoverLine], covered_countries: Sequence[str] | None
) -> InsurableTurnover:
    """The declared turnover that bears premium (shipped to insurable buyers in covered
    countries), with how many invoices it counts and how many it leaves out."""
    total, counted, excluded = ZERO, 0, 0
    for line in lines:
        if bears_premium(
            legal_form=line.legal_form, country=line.country, covered_countries=covered_countries,
            sanctioned=line.sanctioned, related_to_policyholder=line.related_to_policyholder,
        ):  # fmt: skip
            total, counted = total + line.amount, counted + line.invoices
        else:
            excluded += line.invoices
    return InsurableTurnover(total, counted, excluded)
