"""Policy and Buyer (domain.md, Underwriting: Policy, Buyer): which countries a policy covers and
which buyers are insurable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence


def country_covered(country: str, covered_countries: Sequence[str] | None) -> bool:
    """A policy covers the buyer countries it lists; a policy that lists none covers all."""
    return covered_countries is None or country in covered_countries


def insurable(legal_form: str, related_to_policyholder: bool) -> bool:
    """Only companies are insurable, and not an affiliate of the policyholder."""
    return legal_form == "company" and not related_to_policyholder


def policy_open(today: dt.date, end_date: dt.date) -> bool:
    """A policy takes limit requests until its end date."""
    return today <= end_date
