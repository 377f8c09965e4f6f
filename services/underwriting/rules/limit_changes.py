"""Limit changes (domain.md, Underwriting: Limit changes): when an increase, a reduction or a
withdrawal takes effect, and what a signal does to a buyer's limits and shipments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from services.underwriting.rules.grade import DEFAULT_GRADING
from services.underwriting.rules.policy import insurable, policy_open
from shared.calendar import days_after
from shared.money import Money

# A buyer newly at this grade or worse (but not insolvent) has its limits halved after the notice
# period. Its own knob: the decision table's referral grade has the same default, not the same role.
DEFAULT_HALVE_FROM_GRADE = 8
# The source of the limit changes a signal or a re-grade makes (a halving, a withdrawal).
SIGNAL_SOURCE = "signal"


def is_reduction(current: Decimal | None, new_amount: Decimal) -> bool:
    """A change is a reduction (or a withdrawal) when it lowers the amount in force."""
    return current is not None and new_amount < current


def earliest_reduction_date(today: dt.date) -> dt.date:
    """A reduction or withdrawal never applies to shipments before tomorrow."""
    return today + dt.timedelta(days=1)


def change_effective_from(
    *,
    current: Decimal | None,
    new_amount: Decimal,
    requested: dt.date | None,
    today: dt.date,
    notice_days: int,
) -> tuple[dt.date, bool]:
    """When a change takes effect, and whether that date is allowed. An increase may take
    effect today; a reduction or withdrawal only on or after tomorrow, by default after the
    reduction notice period (and never before tomorrow, even with no notice period)."""
    reduction = is_reduction(current, new_amount)
    if requested is None and reduction:
        return max(days_after(today, notice_days), earliest_reduction_date(today)), True
    if requested is None:
        return today, True
    if reduction:
        return requested, requested >= earliest_reduction_date(today)
    return requested, requested >= today


def raises_an_uncovered_buyers_limit(
    *, uncovered: bool, in_force: Decimal | None, new_amount: Decimal
) -> bool:
    """A buyer the insurer does not cover (`why_not_covered`: insolvency withdraws every limit
    on it; a sanctioned or uninsurable buyer is never covered): a person may still lower its
    limit, never raise it above what is in force on the change's date (`in_force`: the lowest
    amount in force from that date on, `lowest_in_force_from`, as the new amount stands on each
    of those days and would otherwise undo the withdrawal that follows it)."""
    return uncovered and new_amount > (in_force or Decimal(0))


def why_not_covered(
    *, insolvent: bool, sanctioned: bool, legal_form: str, related_to_policyholder: bool
) -> str | None:
    """Why no limit on the buyer may be granted or raised by anyone (the decision table's first
    row): insolvent, sanctioned (it or its country), or not insurable; None when it may be."""
    if insolvent:
        return "the buyer is insolvent"
    if sanctioned:
        return "the buyer or its country is sanctioned"
    if not insurable(legal_form, related_to_policyholder):
        return (
            "the buyer is not insurable ("
            + (
                "related to the policyholder"
                if related_to_policyholder
                else _with_article(legal_form.replace("_", " "))
            )
            + ")"
        )
    return None


def _with_article(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def insolvency_withdrawal_date(observed_on: dt.date, today: dt.date) -> dt.date:
    """Insolvency withdraws limits from the day after it was observed, or after today if later."""
    return max(observed_on, today) + dt.timedelta(days=1)


def halved(amount: Decimal, currency: str) -> Money:
    """Half of a limit, rounded half-up to the minor unit."""
    return Money(amount / 2, currency).rounded()


def halving_effective_from(today: dt.date, notice_days: int) -> dt.date:
    """A downgrade halves a limit after the policy's reduction notice period, and never before
    tomorrow."""
    return max(today + dt.timedelta(days=notice_days), earliest_reduction_date(today))


def reaches_halving_grade(
    before: int,
    after: int,
    *,
    halve_from_grade: int = DEFAULT_HALVE_FROM_GRADE,
    insolvent_grade: int = DEFAULT_GRADING.insolvent_grade,
) -> bool:
    """A buyer newly at grade 8–9 (from below 8, and not insolvent) has its limits halved; one
    already there is not halved again."""
    return halve_from_grade <= after < insolvent_grade and before < halve_from_grade


def halves(amount: Decimal, effective_to: dt.date | None, halving_from: dt.date) -> bool:
    """Whether a halving from `halving_from` halves an amount of the limit's history: every
    amount above zero in force on that date or later is halved — the one running then from that
    date on, and each one scheduled to start later (a raise, a limit recorded from a later date)
    from its own start — so that the downgrade is not undone by an amount already on its way."""
    return amount > 0 and (effective_to is None or effective_to > halving_from)


def halved_from(effective_from: dt.date, halving_from: dt.date) -> dt.date:
    """When the half of an amount the halving halves (`halves`) takes effect: on the halving's
    date, or on the amount's own start if later."""
    return max(effective_from, halving_from)


class WrittenAmount(NamedTuple):
    """An amount of a limit's history in force (not superseded) as the halving reads it: who
    made it (`source`), when it starts, how much, and when it was written."""

    source: str
    effective_from: dt.date
    amount: Decimal
    written_at: dt.datetime


def halvings_to_come(amounts: Iterable[WrittenAmount], today: dt.date) -> frozenset[dt.datetime]:
    """When each downgrade's halving of a limit that has not applied yet was written. The
    amounts above zero a signal wrote at one time (`source` "signal") are the halves of one
    halving (`halves`: the amount running on its date, and each one scheduled later, from its own
    start); it applies on the earliest of their dates. Until then its halves are a cut still to
    come, which another move into grade 8–9 does not halve again (a country rated down, up and
    down again halves once, not three times: `halved_again`); once it applies, the halves it
    scheduled later are that downgrade's cut already made, and a new downgrade halves them as it
    halves the amount then in force. Withdrawals (to zero) are no halving."""
    first: dict[dt.datetime, dt.date] = {}
    for source, effective_from, amount, written_at in amounts:
        if source == SIGNAL_SOURCE and amount > 0:
            first[written_at] = min(effective_from, first.get(written_at, effective_from))
    return frozenset(written for written, starts in first.items() if starts > today)


def halved_again(
    amount: WrittenAmount, effective_to: dt.date | None, halving_from: dt.date,
    to_come: frozenset[dt.datetime],
) -> bool:  # fmt: skip
    """Whether a new downgrade's halving from `halving_from` halves an amount of the limit's
    history: one it `halves`, unless the amount is a half of a halving still to come
    (`halvings_to_come`) — that downgrade's cut, not to be compounded before it applies. Any
    other amount (one in force, a raise or a limit recorded later by a person) is halved."""
    if amount.source == SIGNAL_SOURCE and amount.written_at in to_come:
        return False
    return halves(amount.amount, effective_to, halving_from)


def halving_lapses(halving_from: dt.date, policy_end: dt.date) -> bool:
    """A downgrade's halving dated after the policy's end (a policy ending within the reduction
    notice period) would never take effect: the limit covers no shipment after the end, so it
    lapses with the policy at its amount, and nothing is written (`rules.policy_open`, the rule of
    a person's dates)."""
    return not policy_open(halving_from, policy_end)


LAPSES_WITH_POLICY = "policy_ends_within_notice_period"


def lapsing_message(halving_from: dt.date, policy_end: dt.date, notice_days: int) -> str:
    """Why a downgrade left a limit at its amount (`halving_lapses`), in a sentence."""
    return (
        f"not halved: the policy ends on {policy_end.isoformat()}, before the halving would "
        f"apply after the {notice_days}-day notice period (from {halving_from.isoformat()}), so "
        "it would never take effect; the limit lapses with the policy"
    )


def entry_after_change(
    effective_from: dt.date, effective_to: dt.date | None, change_from: dt.date
) -> tuple[bool, dt.date | None]:
    """What a new amount from `change_from` does to an entry of the history: an entry that had
    not started by then is superseded (True; kept for audit), one running on that date ends
    there; (superseded, its effective_to)."""
    if effective_from >= change_from:
        return True, effective_to
    if effective_to is None or effective_to > change_from:
        return False, change_from
    return False, effective_to


class LimitAction(StrEnum):
    """What a signal does to every limit on its buyer."""

    NONE = "none"
    WITHDRAW = "withdraw"
    HALVE = "halve"


@dataclass(frozen=True)
class SignalEffect:
    limits: LimitAction
    # True: shipments under the signal's policy stop; False: the stops are cleared; None: neither.
    stop_shipment: bool | None


def signal_effect(
    kind: str,
    *,
    grade_before: int,
    grade_after: int,
    halve_from_grade: int = DEFAULT_HALVE_FROM_GRADE,
    insolvent_grade: int = DEFAULT_GRADING.insolvent_grade,
) -> SignalEffect:
    """What a signal does: an insolvency filing withdraws every limit on the buyer; any signal
    that brings the buyer newly to grade 8–9 halves them; an overdue notified stops shipments
    under its policy until the arrears are cleared."""
    if kind == "insolvency_filing":
        limits = LimitAction.WITHDRAW
    elif reaches_halving_grade(
        grade_before, grade_after, halve_from_grade=halve_from_grade,
        insolvent_grade=insolvent_grade,
    ):  # fmt: skip
        limits = LimitAction.HALVE
    else:
        limits = LimitAction.NONE
    stop = {"overdue_notified": True, "arrears_cleared": False}.get(kind)
    return SignalEffect(limits, stop)
