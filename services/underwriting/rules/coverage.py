"""Discretionary limit, stop-shipment, sanctions and coverage (domain.md, Underwriting): whether a
receivable is covered and for how much.

The live check reads its books in one SQL statement (`repository._coverage_columns`, whose pieces
are small functions named after the rules they state: `_limit_in_force`, `_grade_on`,
`_stopped_on`, `_exposure`, `_unpaid_today`, `_sanctioned`, `_affiliate`; a batch's exposures
`_exposures_of_items`, a running sum over each buyer's ledger); the Python rules here state the
same rules for the exposure page and the limit changes, and
`tests/underwriting/test_coverage_parity.py` (`test_coverage_batch_parity.py` for the batch) runs
the edge cases through both."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, Protocol

from services.underwriting.rules.credit_limit import within_single_buyer_cap
from services.underwriting.rules.grade import DEFAULT_GRADING
from services.underwriting.rules.policy import country_covered, insurable
from shared.calendar import in_period
from shared.money import Money

ZERO = Decimal(0)


def stopped_on(stops: Iterable[tuple[dt.date, dt.date | None]], shipment_date: dt.date) -> bool:
    """Stop-shipment: a shipment after an overdue's notification date, before the arrears are
    cleared, is not covered."""
    return any(
        shipment_date > notified and (cleared is None or shipment_date < cleared)
        for notified, cleared in stops
    )


COVERAGE_REASONS = (
    "policy_inactive", "country_not_covered", "buyer_not_insurable", "sanctioned", "stop_shipment",
    "credit_period_exceeded", "no_limit", "limit_withdrawn", "headroom_exhausted",
    "partially_covered", "discretionary_superseded",
)  # fmt: skip


@dataclass(frozen=True)
class Receivable:
    invoice_number: str
    amount: Decimal
    shipment_date: dt.date
    paid_amount: Decimal
    paid_on: dt.date | None


def unpaid_today(receivable: Receivable, today: dt.date) -> Decimal:
    paid = (
        receivable.paid_amount if receivable.paid_on is None or receivable.paid_on <= today else 0
    )
    return max(ZERO, receivable.amount - paid)


def exposure(
    receivables: Iterable[Receivable],
    *,
    shipment_date: dt.date,
    today: dt.date,
    excluding: str | None = None,
) -> Decimal:
    """Declared receivables shipped on or before the shipment date and unpaid today, the
    receivable being checked excluded."""
    return sum(
        (
            unpaid_today(r, today)
            for r in receivables
            if r.shipment_date <= shipment_date and r.invoice_number != excluding
        ),
        ZERO,
    )


class CoverageFacts(NamedTuple):
    """Everything a coverage check needs, read from the books for one receivable. (Tuples, not
    dataclasses, for the facts and answers: a batch makes 10,000 of each.)"""

    amount: Money
    shipment_date: dt.date
    due_date: dt.date
    policy_start: dt.date
    policy_end: dt.date
    covered_countries: Sequence[str] | None
    max_credit_period_days: int
    indemnity_pct: Decimal
    whole_turnover: bool
    discretionary_limit: Decimal
    buyer_country: str
    buyer_legal_form: str
    buyer_grade: int
    sanctioned: bool
    stopped: bool
    has_limit: bool
    decided_on: dt.date | None
    limit_terms_days: int | None
    limit_amount: Decimal | None
    exposure: Decimal
    related_to_policyholder: bool = False
    single_buyer_cap: Decimal | None = None
    insolvent_grade: int = DEFAULT_GRADING.insolvent_grade


class Condition(NamedTuple):
    name: str
    held: bool


class CoverageAnswer(NamedTuple):
    covered: bool
    fully_covered: bool
    covered_amount: Money
    insured_amount: Money
    indemnity_pct: Decimal
    limit_in_force: Money | None
    limit_source: str | None
    exposure: Money
    reasons: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()


def assess_coverage(facts: CoverageFacts) -> CoverageAnswer:
    """Whether a receivable is covered: the policy is active on the shipment date, the buyer's
    country is covered, the buyer is insurable and not sanctioned, no stop-shipment is in force,
    the credit period is within the policy's maximum and the limit's terms, and a limit (or the
    discretionary limit) is in force on the shipment date. The limit's terms are those of the
    amount in force on the shipment date, the grade that opens the discretionary limit is the
    one in force on it, and no limit counts for more than the single-buyer cap. Covered amount =
    min(amount, max(0, limit − exposure)); insured amount = covered × indemnity percentage.

    Every condition is reported with whether it held; each that failed adds its reason code."""
    currency = facts.amount.currency
    amount = facts.amount.amount
    limit_amount, source, terms, superseded = limit_that_counts(facts)
    held: tuple[bool, ...] = (
        *book_outcome(facts),
        (facts.due_date - facts.shipment_date).days <= terms,  # credit_period_within_terms
        limit_amount is not None and limit_amount > 0,  # limit_in_force
    )
    covered = ZERO
    if all(held):
        covered = covered_amount(amount, limit_amount or ZERO, facts.exposure)
        held = (*held, covered > 0)  # headroom_available
    # An answer's money is rounded once, here, to the currency's minor unit.
    round_ = Money.rounder(currency)
    covered_money = round_(covered)
    return CoverageAnswer(
        covered=covered > 0,
        fully_covered=covered > 0 and covered == amount,
        covered_amount=covered_money,
        insured_amount=round_(covered_money.percent(facts.indemnity_pct).amount),
        indemnity_pct=facts.indemnity_pct,
        limit_in_force=None if limit_amount is None else round_(limit_amount),
        limit_source=source,
        exposure=round_(facts.exposure),
        reasons=_reasons(held, superseded, limit_amount is None, 0 < covered < amount),
        conditions=_conditions(held),
    )


# The names of the conditions, in the order an answer reports them: those read from the books,
# the credit period and the limit, then (when all of those held) the headroom.
CONDITION_NAMES = (
    "policy_active", "country_covered", "buyer_insurable", "not_sanctioned", "no_stop_shipment",
    "credit_period_within_terms", "limit_in_force", "headroom_available",
)  # fmt: skip

# What each condition gives as reason when it fails (in the order reasons are reported: the
# books', the superseded discretionary limit, then the credit period, the limit, the headroom).
_BOOK_REASONS = (
    "policy_inactive", "country_not_covered", "buyer_not_insurable", "sanctioned",
    "stop_shipment",
)  # fmt: skip

# Conditions and reasons, one tuple per outcome: there are a few dozen outcomes and a batch makes
# 10,000 answers.
_CONDITIONS: dict[tuple[bool, ...], tuple[Condition, ...]] = {}
_REASONS: dict[tuple[tuple[bool, ...], bool, bool, bool], tuple[str, ...]] = {}


def _conditions(held: tuple[bool, ...]) -> tuple[Condition, ...]:
    conditions = _CONDITIONS.get(held)
    if conditions is None:
        conditions = _CONDITIONS[held] = tuple(map(Condition, CONDITION_NAMES, held))
    return conditions


def _reasons(
    held: tuple[bool, ...], superseded: bool, no_limit: bool, partial: bool
) -> tuple[str, ...]:
    """The reason codes of an outcome: each failed condition's, in the order reported."""
    key = (held, superseded, no_limit, partial)
    reasons = _REASONS.get(key)
    if reasons is None:
        found = [reason for reason, ok in zip(_BOOK_REASONS, held, strict=False) if not ok]
        if superseded:
            found.append("discretionary_superseded")
        within_terms, in_force = held[5], held[6]
        if not within_terms:
            found.append("credit_period_exceeded")
        if not in_force:
            found.append("no_limit" if no_limit else "limit_withdrawn")
        if len(held) > 7:  # the headroom was looked at
            if not held[7]:
                found.append("headroom_exhausted")
            elif partial:
                found.append("partially_covered")
        reasons = _REASONS[key] = tuple(found)
    return reasons


def book_outcome(facts: CoverageFacts) -> tuple[bool, bool, bool, bool, bool]:
    """The conditions read straight from the books: the policy is active on the shipment date,
    the buyer's country is covered, the buyer is insurable and not sanctioned, and no
    stop-shipment is in force on the shipment date (in the order of `CONDITION_NAMES`)."""
    return (
        in_period(facts.shipment_date, facts.policy_start, facts.policy_end),
        country_covered(facts.buyer_country, facts.covered_countries),
        insurable(facts.buyer_legal_form, facts.related_to_policyholder),
        not facts.sanctioned,
        not facts.stopped,
    )


class LimitFacts(Protocol):
    """What `limit_that_counts` reads: a coverage check's facts (`CoverageFacts`), or a buyer's
    limit on a day without a receivable (`LimitOnDay`: the exposure page's)."""

    @property
    def shipment_date(self) -> dt.date: ...
    @property
    def max_credit_period_days(self) -> int: ...
    @property
    def whole_turnover(self) -> bool: ...
    @property
    def discretionary_limit(self) -> Decimal: ...
    @property
    def buyer_grade(self) -> int: ...
    @property
    def has_limit(self) -> bool: ...
    @property
    def decided_on(self) -> dt.date | None: ...
    @property
    def limit_terms_days(self) -> int | None: ...
    @property
    def limit_amount(self) -> Decimal | None: ...
    @property
    def single_buyer_cap(self) -> Decimal | None: ...
    @property
    def insolvent_grade(self) -> int: ...


class LimitOnDay(NamedTuple):
    """A buyer's limit under a policy on a day (`shipment_date`: a shipment on that day), read
    from the books as a coverage check reads them, for `limit_that_counts`."""

    shipment_date: dt.date
    max_credit_period_days: int
    whole_turnover: bool
    discretionary_limit: Decimal
    buyer_grade: int
    has_limit: bool
    decided_on: dt.date | None
    limit_terms_days: int | None
    limit_amount: Decimal | None
    single_buyer_cap: Decimal | None = None
    insolvent_grade: int = DEFAULT_GRADING.insolvent_grade


class LimitThatCounts(NamedTuple):
    amount: Decimal | None  # None: no limit
    source: str | None  # "credit_limit" or "discretionary"
    terms: int  # the longest credit period the limit allows, in days
    superseded: bool  # the discretionary limit would open, but a limit was decided


def limit_that_counts(facts: LimitFacts) -> LimitThatCounts:
    """The limit a receivable is checked against: the credit limit's amount in force on the
    shipment date, whose payment terms (when shorter) bound the policy's maximum credit period;
    without one, the discretionary limit — open under whole-turnover cover, when it is above
    zero, to a buyer graded below insolvency — unless a limit was decided for the buyer on or
    before the shipment date (it is superseded). No limit counts for more than the single-buyer
    cap."""
    terms = facts.max_credit_period_days
    if facts.has_limit and facts.limit_amount is not None:
        if facts.limit_terms_days is not None:
            terms = min(terms, facts.limit_terms_days)
        capped = within_single_buyer_cap(facts.limit_amount, facts.single_buyer_cap)
        return LimitThatCounts(capped, "credit_limit", terms, False)
    superseded = facts.decided_on is not None and facts.shipment_date >= facts.decided_on
    discretionary_open = (
        facts.whole_turnover
        and facts.discretionary_limit > 0
        and facts.buyer_grade < facts.insolvent_grade
    )
    if discretionary_open and not superseded:
        capped = within_single_buyer_cap(facts.discretionary_limit, facts.single_buyer_cap)
        return LimitThatCounts(capped, "discretionary", terms, False)
    return LimitThatCounts(None, None, terms, discretionary_open and superseded)


def covered_amount(amount: Decimal, limit: Decimal, exposure: Decimal) -> Decimal:
    """Covered amount = min(amount, max(0, limit − exposure)): the receivable, up to the
    headroom the limit leaves above the exposure."""
    return min(amount, max(ZERO, limit - exposure))


def stop_cleared_on(observed_on: dt.date, notified_on: dt.date) -> dt.date:
    """Arrears cleared end a stop-shipment on the day observed, never before its notification."""
    return max(observed_on, notified_on)
