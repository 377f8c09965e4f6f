"""Credit limit (domain.md, Underwriting: Credit limit): the decision table that answers a
request, the underwriter's decision on a referral, the single-buyer cap and the history of
amounts, each with its payment terms."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from services.underwriting.rules.grade import DEFAULT_GRADING
from services.underwriting.rules.limit_changes import earliest_reduction_date
from shared.calendar import in_history
from shared.money import Money, min_money


class LimitRequestStatus(StrEnum):
    """Where a credit-limit request stands: the engine decides it at once, or refers it to an
    underwriter, who decides it once."""

    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    REFUSED = "refused"
    REFERRED = "referred"


S = LimitRequestStatus
# The names the rules and their tests have used for the statuses.
APPROVED, PARTIAL, REFUSED, REFERRED = S.APPROVED, S.PARTIALLY_APPROVED, S.REFUSED, S.REFERRED


class UnderwriterAct(StrEnum):
    """An underwriter's final decision on a referred request (`DecisionCreate.decision`)."""

    APPROVE = "approve"
    PARTIALLY_APPROVE = "partially_approve"
    REFUSE = "refuse"


# Which act moves a request from which status to which: only a referred request is decided, and
# once. A status no act moves was already decided (by the engine or an underwriter): any
# decision on it is refused as `already-decided`.
TRANSITIONS: Mapping[UnderwriterAct, Mapping[LimitRequestStatus, LimitRequestStatus]] = {
    UnderwriterAct.APPROVE: {S.REFERRED: S.APPROVED},
    UnderwriterAct.PARTIALLY_APPROVE: {S.REFERRED: S.PARTIALLY_APPROVED},
    UnderwriterAct.REFUSE: {S.REFERRED: S.REFUSED},
}
AWAITING_DECISION = frozenset(status for moves in TRANSITIONS.values() for status in moves)


def awaits_decision(status: str) -> bool:
    """A request takes an underwriter's decision while it is referred; any other status was
    already decided and takes no further decision (`already-decided`)."""
    return S(status) in AWAITING_DECISION


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


# Every code a limit request's reasons carry: the decision table's rows (refusal, referral,
# ceiling, caps, within) and an underwriter's decision on a referral. Published as the named enum
# `DecisionReasonCode`; tests/console/test_catalogue.py checks the console words each of them.
DECISION_REASON_CODES = (
    "buyer_not_insurable", "buyer_related", "buyer_insolvent", "sanctioned",
    "payment_terms_exceeded", "country_not_covered", "policy_inactive", "high_risk_grade",
    "high_country_risk", "limit_reduced", "equity_in_other_currency",
    "above_auto_approval_ceiling", "above_single_buyer_cap",
    "above_equity_share", "within_auto_approval", "underwriter_approved", "underwriter_partial",
    "underwriter_refused",
)  # fmt: skip


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
    # The currency of the buyer's equity when it is known in another than the policy's (there is
    # no conversion: an underwriter weighs it, `referral_reasons`).
    equity_currency_elsewhere: str | None = None
    # A reduction or withdrawal of the limit by an underwriter or a risk signal that no person
    # has granted past since (`standing_reduction`): a request for more is referred.
    reduction: StandingReduction | None = None


@dataclass(frozen=True)
class LimitAct:
    """An entry of a limit's history as it was recorded (superseded ones included): its amount,
    from when, where it came from (`LimitSource`) and whether the engine decided it."""

    amount: Decimal
    effective_from: dt.date
    source: str
    by_engine: bool


@dataclass(frozen=True)
class StandingReduction:
    """The amount an underwriter's change or a risk signal reduced or withdrew a limit to."""

    amount: Decimal
    effective_from: dt.date
    source: str


# Who decided what the decision table decided (a request's `decided_by`, its entry's too).
ENGINE: Final = "engine"

# The sources of the entries that act on a limit's risk.
RISK_ACTION_SOURCES: Final = frozenset({
    "change",  # an underwriter's change
    "signal",  # a halving, an insolvency's withdrawal, a country's re-grade
})  # fmt: skip


def standing_reduction(acts: Sequence[LimitAct]) -> StandingReduction | None:
    """The last reduction or withdrawal of a limit by an underwriter's change, a signal or any
    other act of a person that lowered it (an underwriter's decision below the amount before it,
    a lower recorded limit; each act compared with the one recorded before it; `acts` in the
    order recorded), unless a person has granted, recorded or raised an amount on it since: the
    engine never undoes the insurer's risk action on its own, whether the reduction is in force
    already or still to come."""
    standing: StandingReduction | None = None
    previous: Decimal | None = None
    for act in acts:
        by_person_or_risk = act.source in RISK_ACTION_SOURCES or not act.by_engine
        if by_person_or_risk and previous is not None and act.amount < previous:
            standing = StandingReduction(act.amount, act.effective_from, act.source)
        elif not act.by_engine and act.source != "signal":
            standing = None
        previous = act.amount
    return standing


@dataclass(frozen=True)
class LimitDecision:
    status: LimitRequestStatus
    decided_amount: Money | None
    reasons: tuple[Reason, ...]


def decide_limit_request(
    facts: RequestFacts, table: DecisionTable = DEFAULT_DECISION_TABLE
) -> LimitDecision:
    """The engine's answer to a credit-limit request: refused, referred, partially approved or
    approved, by the first matching row of the decision table, with every reason that applied."""
    zero = Money.zero(facts.amount.currency)
    refusals = refusal_reasons(facts, table)
    if refusals:
        return LimitDecision(S.REFUSED, zero, refusals)
    # Referred: every referral row that applies, the ceiling's among them (an underwriter sees
    # all that calls for a person's decision).
    above_ceiling = above_auto_approval_ceiling(facts, table)
    referrals = (
        *referral_reasons(facts, table),
        *(() if above_ceiling is None else (above_ceiling,)),
    )
    if referrals:
        return LimitDecision(S.REFERRED, None, referrals)
    caps = caps_below_amount(facts, table)
    if caps:
        lowest = min_money(*(cap for cap, _ in caps))
        reasons = tuple(reason for _, reason in caps)
        if not lowest.is_positive():
            return LimitDecision(S.REFUSED, zero, reasons)
        return LimitDecision(S.PARTIALLY_APPROVED, lowest, reasons)
    within = Reason(
        "within_auto_approval",
        f"{facts.amount} is within the auto-approval ceiling for grade {facts.grade}",
    )
    return LimitDecision(S.APPROVED, facts.amount, (within,))


def refusal_reasons(facts: RequestFacts, table: DecisionTable) -> tuple[Reason, ...]:
    """The refusal rows of the decision table, every one that applies: a buyer not a company,
    related to the policyholder, insolvent or sanctioned; payment terms beyond the policy's
    maximum credit period; a country the policy does not cover; a policy that has ended."""
    terms, most = facts.payment_terms_days, facts.max_credit_period_days
    rows = (
        (facts.legal_form != "company", "buyer_not_insurable",
         f"a buyer of legal form {facts.legal_form} is not insurable"),
        (facts.related_to_policyholder, "buyer_related",
         "a buyer related to the policyholder is not insurable"),
        (facts.grade >= table.insolvent_grade, "buyer_insolvent", "the buyer is insolvent (grade 10)"),
        (facts.sanctioned, "sanctioned", "the buyer or its country is sanctioned"),
        (terms > most, "payment_terms_exceeded",
         f"payment terms of {terms} days exceed the policy's maximum credit period of {most} days"),
        (not facts.country_covered, "country_not_covered",
         "the buyer's country is not covered by the policy"),
        (not facts.policy_open, "policy_inactive", "the policy has ended"),
    )  # fmt: skip
    return tuple(Reason(code, message) for applies, code, message in rows if applies)


# Who reduced a limit, as a referral names it (`StandingReduction.source`).
_REDUCED_BY: Final[Mapping[str, str]] = {
    "change": "an underwriter's change", "signal": "a risk signal",
    "request": "an underwriter's decision", "external": "a recorded limit",
}  # fmt: skip


def referral_reasons(facts: RequestFacts, table: DecisionTable) -> tuple[Reason, ...]:
    """The referral rows of the decision table, every one that applies: a grade from the
    referral grade on, a country risk level from the referral level on, and an amount above what
    an underwriter or a signal reduced the limit to (`standing_reduction`)."""
    level = facts.country_risk_level
    rows = (
        (facts.grade >= table.refer_from_grade, "high_risk_grade",
         f"grade {facts.grade} is referred to an underwriter"),
        (level >= table.refer_country_level, "high_country_risk",
         f"country risk level {level} is referred"),
    )  # fmt: skip
    reasons = [Reason(code, message) for applies, code, message in rows if applies]
    elsewhere = facts.equity_currency_elsewhere
    if elsewhere is not None:
        reasons.append(Reason(
            "equity_in_other_currency",
            f"the buyer's equity is known in {elsewhere}, not in the policy's "
            f"{facts.amount.currency}: an underwriter weighs the request against "
            f"{table.equity_share_pct}% of it (no conversion)",
        ))  # fmt: skip
    cut = facts.reduction
    if cut is not None and facts.amount.amount > cut.amount:
        by = _REDUCED_BY.get(cut.source, "an underwriter")
        reduced = Money(cut.amount, facts.amount.currency)
        done = "withdrawn" if cut.amount == 0 else f"reduced to {reduced}"
        reasons.append(Reason(
            "limit_reduced",
            f"the limit was {done} from {cut.effective_from.isoformat()} by {by}: a request for "
            f"{facts.amount} is decided by an underwriter",
        ))  # fmt: skip
    return tuple(reasons)


def above_auto_approval_ceiling(facts: RequestFacts, table: DecisionTable) -> Reason | None:
    """The ceiling row of the decision table: an amount above the auto-approval ceiling of the
    buyer's grade band is referred (no band, no ceiling)."""
    ceiling = table.ceiling(facts.grade)
    if ceiling is None or facts.amount.amount <= ceiling:
        return None
    return Reason(
        "above_auto_approval_ceiling",
        f"{facts.amount} is above the auto-approval ceiling of "
        f"{Money(ceiling, facts.amount.currency)} for grade {facts.grade}",
    )


def caps_below_amount(facts: RequestFacts, table: DecisionTable) -> list[tuple[Money, Reason]]:
    """The caps the amount is above, each with its reason: the policy's single-buyer cap and the
    share of the buyer's equity (when known). The lowest is what can be approved."""
    caps: list[tuple[Money, Reason]] = []
    cap = facts.single_buyer_cap
    if cap is not None and facts.amount > cap:
        message = f"{facts.amount} is above the policy's single-buyer cap of {cap}"
        caps.append((cap, Reason("above_single_buyer_cap", message)))
    if facts.equity is not None:
        share = facts.equity.percent(table.equity_share_pct).rounded()
        if facts.amount > share:
            # The figure is not named: a policyholder sees a buyer's grade, never its factors.
            message = (
                f"{facts.amount} is above {table.equity_share_pct}% of the buyer's equity"
                if facts.equity.is_positive()  # a tiny equity's share may round to nothing
                else "the buyer's equity is zero or negative: nothing is granted against it"
            )
            caps.append((share, Reason("above_equity_share", message)))
    return caps


def exceeds_single_buyer_cap(amount: Decimal, cap: Decimal | None) -> bool:
    """A limit a person grants, records or changes may not be above the policy's single-buyer
    cap (none: no cap)."""
    return cap is not None and amount > cap


def within_single_buyer_cap(amount: Decimal, cap: Decimal | None) -> Decimal:
    """The limit that counts: never more than the single-buyer cap, whenever it was granted."""
    return amount if cap is None else min(amount, cap)


# The source of an entry recorded from elsewhere (a limit granted outside the engine).
RECORDED_SOURCE: Final = "external"


@dataclass(frozen=True)
class HistoryEntry:
    amount: Decimal
    effective_from: dt.date
    effective_to: dt.date | None
    payment_terms_days: int | None = None
    # Recorded from elsewhere (a migrated book) rather than granted by this system.
    recorded_elsewhere: bool = False


def amount_in_force(history: Sequence[HistoryEntry], day: dt.date) -> Decimal | None:
    """The limit amount in force on `day` (half-open entries), or None if no entry covers it."""
    for entry in history:
        if in_history(day, entry.effective_from, entry.effective_to):
            return entry.amount
    return None


def lowest_in_force_from(history: Sequence[HistoryEntry], day: dt.date) -> Decimal:
    """The lowest amount the history keeps in force on `day` or on any day after it (a day no
    entry covers counts as zero): a new amount from `day` on stands on every one of those days,
    as it replaces every entry from that day on."""
    days = {day} | {
        edge
        for entry in history
        for edge in (entry.effective_from, entry.effective_to)
        if edge is not None and edge > day
    }
    return min(amount_in_force(history, d) or Decimal(0) for d in days)


def covers_from(history: Sequence[HistoryEntry], day: dt.date) -> bool:
    """Whether the history puts an amount above zero in force on `day` or on any day after it
    (an entry running then, or one starting later)."""
    return any(
        entry.amount > 0 and (entry.effective_to is None or entry.effective_to > day)
        for entry in history
    )


def amount_withdrawn(history: Sequence[HistoryEntry], day: dt.date) -> Decimal | None:
    """The amount a withdrawal from `day` takes away, as the parties are told of it: the one in
    force then if above zero, else the first above zero scheduled to start later (a raise, a
    limit recorded from a later date, which the withdrawal cancels), else what is in force then."""
    in_force = amount_in_force(history, day)
    if in_force:
        return in_force
    later = sorted((e for e in history if e.effective_from > day and e.amount > 0),
                   key=lambda e: e.effective_from)  # fmt: skip
    return later[0].amount if later else in_force


def terms_that_apply(terms: int | None, max_credit_period_days: int) -> int:
    """The payment terms an amount covers: those it was granted for, else (none given) the
    policy's maximum credit period. Terms left out and terms equal to that maximum are the same
    cover, so every comparison of terms goes through this."""
    return max_credit_period_days if terms is None else terms


def grant_effective_from(
    *,
    current: Decimal | None,
    current_terms: int | None,
    amount: Decimal,
    terms: int | None,
    today: dt.date,
    max_credit_period_days: int,
    reduction_notice_days: int = 0,
) -> dt.date | None:
    """When a granted amount (with its payment terms) takes effect: today, unless it takes cover
    away — a lower amount or shorter terms apply only from tomorrow, and an amount an
    underwriter decided below the one in force only after `reduction_notice_days` (domain.md:
    an underwriter's reduction applies by default after the notice period; the terms are the
    policyholder's own ask); None when it changes nothing. Terms are compared as they apply
    (`terms_that_apply`)."""
    if current is None:
        return today
    given = terms_that_apply(terms, max_credit_period_days)
    in_force = terms_that_apply(current_terms, max_credit_period_days)
    if amount == current and given == in_force:
        return None
    if amount < current:
        return max(today + dt.timedelta(days=reduction_notice_days),
                   earliest_reduction_date(today))  # fmt: skip
    if given < in_force:
        return earliest_reduction_date(today)
    return today


def cover_stands_until(entry: HistoryEntry, today: dt.date) -> dt.date:
    """The cover an entry of a limit's history gave stands on its days before this date: the
    history as known at the end of each day stands, so a day already past keeps the amount and
    terms answered for it, and so does today, whoever granted it (domain.md: a reduction or
    withdrawal applies at least from tomorrow: goods already shipped stay covered; an amount
    recorded from elsewhere covered today's shipments as much as one this system granted)."""
    return earliest_reduction_date(today)


def recording_allowed_from(
    history: Sequence[HistoryEntry],
    *,
    amount: Decimal,
    terms: int | None,
    effective_from: dt.date,
    today: dt.date,
    max_credit_period_days: int,
) -> dt.date | None:
    """None when a limit recorded from elsewhere (an amount with its payment terms, in force from
    `effective_from`) takes no cover that stands (`cover_stands_until`) from the `history` — a
    first recording or a raise may start in the past — else the earliest date it may start
    from. It takes cover when it is lower, or its terms shorter, than an entry on a day of that
    entry, from `effective_from` on, whose cover stands. Terms are compared as they apply
    (`terms_that_apply`)."""
    given = terms_that_apply(terms, max_credit_period_days)
    earliest: dt.date | None = None
    for entry in history:
        stands_until = cover_stands_until(entry, today)
        if entry.effective_to is not None:
            stands_until = min(stands_until, entry.effective_to)
        if max(entry.effective_from, effective_from) >= stands_until:
            continue  # no day of this entry from `effective_from` on whose cover stands
        shorter = given < terms_that_apply(entry.payment_terms_days, max_credit_period_days)
        if amount < entry.amount or shorter:
            earliest = stands_until if earliest is None else max(earliest, stands_until)
    return earliest


def changes_nothing(
    history: Sequence[HistoryEntry],
    *,
    amount: Decimal,
    terms: int | None,
    effective_from: dt.date,
    max_credit_period_days: int,
) -> bool:
    """An amount with its payment terms from `effective_from` on changes nothing when the entry in
    force on that day already has that amount and those terms and runs on with nothing after it:
    putting it in force again would only repeat that entry, so it is not recorded (and no one
    hears of it). Terms are compared as they apply (`terms_that_apply`): none given and the
    policy's maximum credit period are the same cover."""
    given = terms_that_apply(terms, max_credit_period_days)
    for entry in history:
        if in_history(effective_from, entry.effective_from, entry.effective_to):
            return (
                entry.effective_to is None
                and entry.amount == amount
                and terms_that_apply(entry.payment_terms_days, max_credit_period_days) == given
            )
    return False


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


def equity_currency_elsewhere(
    amount: Decimal | None, currency: str | None, policy_currency: str
) -> str | None:
    """The currency of the buyer's equity when it is known in another than the policy's: the
    engine cannot weigh the request against it (no conversion) and refers it."""
    if amount is None or currency is None or currency == policy_currency:
        return None
    return currency


class DecisionRefused(ValueError):
    """An underwriter's decision the rules do not allow: the message says why, `loc` where
    (under the request body)."""

    def __init__(self, message: str, loc: tuple[str, ...] = ("amount",)) -> None:
        super().__init__(message)
        self.message, self.loc = message, loc


class BuyerNotCovered(DecisionRefused):
    """A decision granting an amount on a buyer the insurer does not cover (`why_not_covered`)."""


@dataclass(frozen=True)
class UnderwriterDecision:
    status: LimitRequestStatus
    decided: Decimal
    code: str


def underwriter_decision(
    decision: str, *, requested: Decimal, amount: Decimal | None, not_covered: str | None = None
) -> UnderwriterDecision:
    """An underwriter's final decision on a referred request: a refusal decides nothing (and
    takes no amount: one given with it leaves the intent unclear); an approval grants the requested amount or less (less is a partial approval), and a partial
    approval needs an amount below the requested one; a buyer the insurer does not cover (`not_covered`:
    why, `why_not_covered`: insolvent, sanctioned or uninsurable since the referral) takes only a
    refusal. The status it leaves is the
    transition table's. (The single-buyer cap is checked on the amount decided.)"""
    act = UnderwriterAct(decision)
    if act is UnderwriterAct.REFUSE:
        if amount is not None:
            raise DecisionRefused("a refusal grants no amount: leave amount out to refuse, or "
                                  "approve or partially approve with it", ("amount",))  # fmt: skip
        return UnderwriterDecision(TRANSITIONS[act][S.REFERRED], Decimal(0), "underwriter_refused")
    if not_covered is not None:
        raise BuyerNotCovered(f"{not_covered}: only a refusal is possible", ("decision",))
    if amount is None and act is UnderwriterAct.PARTIALLY_APPROVE:
        raise DecisionRefused("a partial approval needs an amount")
    decided = requested if amount is None else amount
    if decided <= 0:
        raise DecisionRefused("must be greater than zero", ("amount", "amount"))
    if decided > requested:
        raise DecisionRefused("must not exceed the requested amount")
    if act is UnderwriterAct.PARTIALLY_APPROVE and decided == requested:
        raise DecisionRefused("must be below the requested amount for a partial approval; approve "
                              "to grant all of it")  # fmt: skip
    if decided == requested:
        return UnderwriterDecision(TRANSITIONS[act][S.REFERRED], decided, "underwriter_approved")
    partial = TRANSITIONS[UnderwriterAct.PARTIALLY_APPROVE][S.REFERRED]
    return UnderwriterDecision(partial, decided, "underwriter_partial")
