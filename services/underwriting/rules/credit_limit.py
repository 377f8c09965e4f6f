"""Credit limit (domain.md, Underwriting: Credit limit): the decision table that answers a
request, the underwriter's decision on a referral, the single-buyer cap and the history of
amounts, each with its payment terms."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.underwriting.rules.grade import DEFAULT_GRADING
from services.underwriting.rules.limit_changes import earliest_reduction_date
from shared.calendar import in_history
from shared.money import Money, min_money

APPROVED, PARTIAL, REFUSED, REFERRED = "approved", "partially_approved", "refused", "referred"


@dataclass(frozen=True)
class DecisionTable:
    """domain.md's default decision table; the first matching row wins."""

    refer_from_grade: int = 8
    insolvent_grade: int = DEFAULT_GRADING.insolvent_grade
    refer_country_level: int = 4
    # (highest grade of the band, auto-approval ceiling in policy currency units)
    ceilings: tuple[tuple[int, Decimal], ...] = (
        (3, Decimal(1_000_000)),
        (5, Decimal(250_000)),
        (7, Decimal(50_000)),
    )
    equity_share_pct: Decimal = Decimal(10)

    def ceiling(self, grade: int) -> Decimal | None:
        for highest, amount in self.ceilings:
            if grade <= highest:
                return amount
        return None


DEFAULT_DECISION_TABLE = DecisionTable()


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True)
class RequestFacts:
    amount: Money
    payment_terms_days: int
    max_credit_period_days: int
    legal_form: str
    related_to_policyholder: bool
    grade: int
    sanctioned: bool
    country_risk_level: int
    country_covered: bool
    policy_open: bool
    single_buyer_cap: Money | None
    equity: Money | None


@dataclass(frozen=True)
class LimitDecision:
    status: str
    decided_amount: Money | None
    reasons: tuple[Reason, ...]


def decide_limit_request(
    facts: RequestFacts, table: DecisionTable = DEFAULT_DECISION_TABLE
) -> LimitDecision:
    """The engine's answer to a credit-limit request: refused, referred, partially approved or
    approved, by the first matching row of the decision table, with every reason that applied."""
    refusals: list[Reason] = []
    if facts.legal_form != "company":
        refusals.append(
            Reason(
                "buyer_not_insurable", f"a buyer of legal form {facts.legal_form} is not insurable"
            )
        )
    if facts.related_to_policyholder:
        refusals.append(
            Reason("buyer_related", "a buyer related to the policyholder is not insurable")
        )
    if facts.grade >= table.insolvent_grade:
        refusals.append(Reason("buyer_insolvent", "the buyer is insolvent (grade 10)"))
    if facts.sanctioned:
        refusals.append(Reason("sanctioned", "the buyer or its country is sanctioned"))
    if facts.payment_terms_days > facts.max_credit_period_days:
        refusals.append(
            Reason(
                "payment_terms_exceeded",
                f"payment terms of {facts.payment_terms_days} days exceed the policy's maximum credit "
                f"period of {facts.max_credit_period_days} days",
            )
        )
    if not facts.country_covered:
        refusals.append(
            Reason("country_not_covered", "the buyer's country is not covered by the policy")
        )
    if not facts.policy_open:
        refusals.append(Reason("policy_inactive", "the policy has ended"))
    if refusals:
        return LimitDecision(REFUSED, Money.zero(facts.amount.currency), tuple(refusals))

    referrals: list[Reason] = []
    if facts.grade >= table.refer_from_grade:
        referrals.append(
            Reason("high_risk_grade", f"grade {facts.grade} is referred to an underwriter")
        )
    if facts.country_risk_level >= table.refer_country_level:
        referrals.append(
            Reason(
                "high_country_risk", f"country risk level {facts.country_risk_level} is referred"
            )
        )
    if referrals:
        return LimitDecision(REFERRED, None, tuple(referrals))

    ceiling = table.ceiling(facts.grade)
    if ceiling is not None and facts.amount.amount > ceiling:
        return LimitDecision(
            REFERRED,
            None,
            (
                Reason(
                    "above_auto_approval_ceiling",
                    f"{facts.amount} is above the auto-approval ceiling of {ceiling} for grade "
                    f"{facts.grade}",
                ),
            ),
        )

    caps: list[tuple[Money, Reason]] = []
    if facts.single_buyer_cap is not None and facts.amount > facts.single_buyer_cap:
        caps.append(
            (
                facts.single_buyer_cap,
                Reason(
                    "above_single_buyer_cap",
                    f"{facts.amount} is above the policy's single-buyer cap of {facts.single_buyer_cap}",
                ),
            )
        )
    if facts.equity is not None:
        share = facts.equity.percent(table.equity_share_pct).rounded()
        if facts.amount > share:
            caps.append(
                (
                    share,
                    Reason(
                        "above_equity_share",
                        f"{facts.amount} is above {table.equity_share_pct}% of the buyer's equity "
                        f"({share})",
                    ),
                )
            )
    if caps:
        lowest = min_money(*(cap for cap, _ in caps))
        reasons = tuple(reason for _, reason in caps)
        if not lowest.is_positive():
            return LimitDecision(REFUSED, Money.zero(facts.amount.currency), reasons)
        return LimitDecision(PARTIAL, lowest, reasons)
    return LimitDecision(
        APPROVED,
        facts.amount,
        (
            Reason(
                "within_auto_approval",
                f"{facts.amount} is within the auto-approval ceiling for grade {facts.grade}",
            ),
        ),
    )


def exceeds_single_buyer_cap(amount: Decimal, cap: Decimal | None) -> bool:
    """A limit a person grants, records or changes may not be above the policy's single-buyer
    cap (none: no cap)."""
    return cap is not None and amount > cap


def within_single_buyer_cap(amount: Decimal, cap: Decimal | None) -> Decimal:
    """The limit that counts: never more than the single-buyer cap, whenever it was granted."""
    return amount if cap is None else min(amount, cap)


@dataclass(frozen=True)
class HistoryEntry:
    amount: Decimal
    effective_from: dt.date
    effective_to: dt.date | None
    payment_terms_days: int | None = None


def amount_in_force(history: Sequence[HistoryEntry], day: dt.date) -> Decimal | None:
    """The limit amount in force on `day` (half-open entries), or None if no entry covers it."""
    for entry in history:
        if in_history(day, entry.effective_from, entry.effective_to):
            return entry.amount
    return None


def grant_effective_from(
    *,
    current: Decimal | None,
    current_terms: int | None,
    amount: Decimal,
    terms: int | None,
    today: dt.date,
) -> dt.date | None:
    """When a granted amount (with its payment terms) takes effect: today, unless it takes cover
    away — a lower amount or shorter terms apply only from tomorrow; None when it changes
    nothing. Terms of None are the policy's maximum credit period, the longest."""
    if current is None:
        return today
    if amount == current and terms == current_terms:
        return None
    shorter = terms is not None and (current_terms is None or terms < current_terms)
    if amount < current or shorter:
        return earliest_reduction_date(today)
    return today


def terms_on(history: Sequence[HistoryEntry], day: dt.date) -> int | None:
    """The payment terms of the amount in force on `day` (else of the last one before it, else
    of the first one): the terms belong to each amount of the history."""
    ordered = sorted(history, key=lambda e: e.effective_from)
    started = [e for e in ordered if e.effective_from <= day]
    if started:
        return started[-1].payment_terms_days
    return ordered[0].payment_terms_days if ordered else None


def equity_that_counts(
    amount: Decimal | None, currency: str | None, policy_currency: str
) -> Money | None:
    """The buyer's equity caps a request only when it is known in the policy's currency (there is
    no conversion)."""
    if amount is None or currency != policy_currency:
        return None
    return Money(amount, policy_currency)


class DecisionRefused(ValueError):
    """An underwriter's decision the rules do not allow: the message says why, `loc` where
    (under the request body)."""

    def __init__(self, message: str, loc: tuple[str, ...] = ("amount",)) -> None:
        super().__init__(message)
        self.message, self.loc = message, loc


@dataclass(frozen=True)
class UnderwriterDecision:
    status: str
    decided: Decimal
    code: str


def underwriter_decision(
    decision: str, *, requested: Decimal, amount: Decimal | None
) -> UnderwriterDecision:
    """An underwriter's final decision on a referred request: a refusal decides nothing; an
    approval grants the requested amount or less, and a partial approval needs an amount below
    the requested one. (The single-buyer cap is checked on the amount decided.)"""
    if decision == "refuse":
        return UnderwriterDecision(REFUSED, Decimal(0), "underwriter_refused")
    if amount is None and decision == "partially_approve":
        raise DecisionRefused("a partial approval needs an amount")
    decided = requested if amount is None else amount
    if decided <= 0:
        raise DecisionRefused("must be greater than zero", ("amount", "amount"))
    if decided > requested:
        raise DecisionRefused("must not exceed the requested amount")
    if decision == "partially_approve" and decided == requested:
        raise DecisionRefused("a partial approval is below the requested amount")
    if decided == requested:
        return UnderwriterDecision(APPROVED, decided, "underwriter_approved")
    return UnderwriterDecision(PARTIAL, decided, "underwriter_partial")
