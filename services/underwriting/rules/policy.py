"""Policy and Buyer (domain.md, Underwriting: Policy, Buyer): which countries a policy covers and
which buyers are insurable, and what identifies a buyer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from shared.text import folded


def registration_key(registration_number: str) -> str:
    """A buyer is one company per country and registration number as its registry knows it, however
    it was written: compatibility forms folded (NFKC: a full-width "ＨＲＢ１２３" is "HRB123"),
    every white space and invisible character dropped ("HRB 123", " hrb123 " and "HRB\u00a0123"
    are "HRB123"), letters in upper case. Punctuation is kept ("HRB-123" stays apart from
    "HRB123"): registries print it, and dropping it could join two numbers they tell apart."""
    return "".join(c for c in folded(registration_number).upper() if not c.isspace())


def country_covered(country: str, covered_countries: Sequence[str] | None) -> bool:
    """A policy covers the buyer countries it lists; a policy that lists none covers all."""
    return covered_countries is None or country in covered_countries


def declaration_decided(declared: Collection[str], entered: Collection[str]) -> bool:
    """A policyholder's pending declaration of indicators is decided by an underwriter's own
    figures (superseded) when they give any indicator it declares: confirmed later as a whole,
    it would put back an older figure over the underwriter's. One that declares none of them
    stays pending, as declared, for an underwriter to confirm or supersede."""
    return not set(declared).isdisjoint(entered)


def first_repeated(items: Sequence[str]) -> tuple[int, str] | None:
    """The first item a list names again (its position there and the item), if any."""
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item in seen:
            return index, item
        seen.add(item)
    return None


def insurable(legal_form: str, related_to_policyholder: bool) -> bool:
    """Only companies are insurable, and not an affiliate of the policyholder."""
    return legal_form == "company" and not related_to_policyholder


def policy_open(day: dt.date, end_date: dt.date) -> bool:
    """Whether `day` is by the policy's end date: a policy takes limit requests and limit changes
    until then, and a person's amount for a limit takes effect by then (after it, nothing is
    covered any more). A date before the policy starts is usual: limits are granted ahead of a
    policy and cover its shipments from its start."""
    return day <= end_date
