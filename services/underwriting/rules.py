"""Underwriting rules as pure functions: grading, the limit-request decision table, limit changes,
stop-shipment, coverage of a receivable, premium and portfolio-health indicators."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import NamedTuple

from shared.calendar import days_after, in_history, in_period
from shared.money import Money, min_money

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# ---------------------------------------------------------------- grading


@dataclass(frozen=True)
class Band:
    """A value within `bound` scores `points` (`≤ bound` when higher is worse, `≥ bound` when
    lower is worse; strict when not `inclusive`)."""

    bound: Decimal
    points: Decimal
    inclusive: bool = True


@dataclass(frozen=True)
class Factor:
    name: str
    higher_is_worse: bool
    bands: tuple[Band, ...]
    otherwise: Decimal

    def points(self, value: Decimal) -> Decimal:
        for band in self.bands:
            if self.higher_is_worse:
                within = value <= band.bound if band.inclusive else value < band.bound
            else:
                within = value >= band.bound if band.inclusive else value > band.bound
            if within:
                return band.points
        return self.otherwise


def _d(text: str) -> Decimal:
    return Decimal(text)


@dataclass(frozen=True)
class GradingTable:
    """domain.md's default scoring: points add up, grade = min(max_grade, floor(1 + points)),
    and the insolvent grade only on insolvency."""

    factors: tuple[Factor, ...] = (
        Factor("current_ratio", False, (Band(_d("2.0"), ZERO), Band(_d("1.2"), _d("1")),
               Band(_d("0.8"), _d("2"))), _d("3")),
        Factor("dso_change", True, (Band(_d("0.10"), ZERO), Band(_d("0.20"), _d("1"))), _d("2")),
        Factor("overdue_ratio", True, (Band(_d("0.05"), ZERO), Band(_d("0.15"), _d("1")),
               Band(_d("0.30"), _d("2"))), _d("3")),
        Factor("litigation_count", True, (Band(ZERO, ZERO), Band(_d("2"), _d("1"))), _d("2")),
        Factor("management_changes_12m", True, (Band(_d("1"), ZERO),), _d("1")),
        Factor("equity", False, (Band(ZERO, ZERO, inclusive=False),), _d("2")),
        Factor("country_risk_level", True, (Band(_d("1"), ZERO), Band(_d("2"), _d("1")),
               Band(_d("3"), _d("2"))), _d("3")),
    )  # fmt: skip
    unknown_points: Decimal = Decimal("0.5")
    base_grade: int = 1
    max_grade: int = 9
    insolvent_grade: int = 10


DEFAULT_GRADING = GradingTable()

# Points a signal adds to the grade while it is recent (observed within `SIGNAL_MEMORY_DAYS`).
DEFAULT_SIGNAL_POINTS: Mapping[str, Decimal] = {
    "insolvency_filing": ZERO,
    "court_judgment": _d("1"),
    "payment_delay": _d("1"),
    "management_change": ZERO,
    "registry_change": _d("0.5"),
    "overdue_notified": _d("1"),
    "arrears_cleared": ZERO,
}
SIGNAL_MEMORY_DAYS = 365
SIGNAL_KINDS = frozenset(DEFAULT_SIGNAL_POINTS)
POLICY_SIGNALS = frozenset({"overdue_notified", "arrears_cleared"})


@dataclass(frozen=True)
class Indicators:
    """A buyer's financial indicators; None means not known."""

    current_ratio: Decimal | None = None
    dso_days: Decimal | None = None
    dso_prior_year_days: Decimal | None = None
    overdue_ratio: Decimal | None = None
    litigation_count: int | None = None
    management_changes_12m: int | None = None
    equity: Decimal | None = None

    @property
    def dso_change(self) -> Decimal | None:
        if self.dso_days is None or not self.dso_prior_year_days:
            return None
        return (self.dso_days - self.dso_prior_year_days) / self.dso_prior_year_days


@dataclass(frozen=True)
class GradeFactor:
    factor: str
    value: str | None
    points: Decimal
    note: str


@dataclass(frozen=True)
class Grade:
    grade: int
    points: Decimal
    factors: tuple[GradeFactor, ...]


def grade_buyer(
    indicators: Indicators,
    *,
    country_risk_level: int,
    signal_points: Decimal = ZERO,
    insolvent: bool = False,
    table: GradingTable = DEFAULT_GRADING,
) -> Grade:
    """A buyer's grade from 1 (best) to 9 from its indicators, its country's risk and recent
    signals; the insolvent grade (10) when it is insolvent. Each factor says what it added."""
    values: dict[str, Decimal | None] = {
        "current_ratio": indicators.current_ratio,
        "dso_change": indicators.dso_change,
        "overdue_ratio": indicators.overdue_ratio,
        "litigation_count": _opt(indicators.litigation_count),
        "management_changes_12m": _opt(indicators.management_changes_12m),
        "equity": indicators.equity,
        "country_risk_level": Decimal(country_risk_level),
    }
    factors: list[GradeFactor] = []
    total = ZERO
    for factor in table.factors:
        value = values[factor.name]
        if value is None:
            points, note = table.unknown_points, "not known"
        else:
            points, note = factor.points(value), "scored"
        total += points
        factors.append(
            GradeFactor(factor.name, None if value is None else str(value), points, note)
        )
    if signal_points:
        total += signal_points
        factors.append(GradeFactor("signals", str(signal_points), signal_points, "recent signals"))
    if insolvent:
        factors.append(GradeFactor("insolvency", "true", ZERO, "insolvency signal: grade 10"))
        return Grade(table.insolvent_grade, total, tuple(factors))
    grade = min(table.max_grade, int((table.base_grade + total).to_integral_value(ROUND_FLOOR)))
    return Grade(grade, total, tuple(factors))


def _opt(value: int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def recent_signal_points(
    signals: Iterable[tuple[str, dt.date]],
    *,
    today: dt.date,
    points: Mapping[str, Decimal] = DEFAULT_SIGNAL_POINTS,
    memory_days: int = SIGNAL_MEMORY_DAYS,
) -> Decimal:
    """The points of the signals observed within the last `memory_days` days."""
    since = today - dt.timedelta(days=memory_days)
    return sum((points.get(kind, ZERO) for kind, on in signals if on > since), ZERO)


def grade_on(
    indicators: Indicators,
    *,
    day: dt.date,
    country_risk_level: int,
    signals: Iterable[tuple[str, dt.date]],
    insolvent_since: dt.date | None,
    table: GradingTable = DEFAULT_GRADING,
    points: Mapping[str, Decimal] = DEFAULT_SIGNAL_POINTS,
    memory_days: int = SIGNAL_MEMORY_DAYS,
) -> Grade:
    """The grade in force on `day`: only the signals observed on or before it (and within the
    memory before it) count, and the buyer is insolvent from the day its insolvency was observed."""
    known = [(kind, on) for kind, on in signals if on <= day]
    return grade_buyer(
        indicators,
        country_risk_level=country_risk_level,
        signal_points=recent_signal_points(
            known, today=day, points=points, memory_days=memory_days
        ),
        insolvent=insolvent_since is not None and insolvent_since <= day,
        table=table,
    )


# ---------------------------------------------------------------- limit requests

APPROVED, PARTIAL, REFUSED, REFERRED = "approved", "partially_approved", "refused", "referred"


@dataclass(frozen=True)
class DecisionTable:
    """domain.md's default decision table; the first matching row wins."""

    refer_from_grade: int = 8
    insolvent_grade: int = 10
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


# ---------------------------------------------------------------- limit changes


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


def amount_in_force(history: Sequence[HistoryEntry], day: dt.date) -> Decimal | None:
    """The limit amount in force on `day` (half-open entries), or None if no entry covers it."""
    for entry in history:
        if in_history(day, entry.effective_from, entry.effective_to):
            return entry.amount
    return None


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
    reduction notice period."""
    reduction = current is not None and new_amount < current
    if requested is None:
        return (days_after(today, notice_days) if reduction else today), True
    if reduction:
        return requested, requested >= earliest_reduction_date(today)
    return requested, requested >= today


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


def insolvency_withdrawal_date(observed_on: dt.date, today: dt.date) -> dt.date:
    """Insolvency withdraws limits from the day after it was observed, or after today if later."""
    return max(observed_on, today) + dt.timedelta(days=1)


def halved(amount: Decimal, currency: str) -> Money:
    """Half of a limit, rounded half-up to the minor unit."""
    return Money(amount / 2, currency).rounded()


def stopped_on(stops: Iterable[tuple[dt.date, dt.date | None]], shipment_date: dt.date) -> bool:
    """Stop-shipment: a shipment after an overdue's notification date, before the arrears are
    cleared, is not covered."""
    return any(
        shipment_date > notified and (cleared is None or shipment_date < cleared)
        for notified, cleared in stops
    )


# ---------------------------------------------------------------- coverage

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
    insolvent_grade: int = 10
    related_to_policyholder: bool = False
    single_buyer_cap: Decimal | None = None


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
    reasons: list[str] = []
    held = {
        "policy_active": in_period(facts.shipment_date, facts.policy_start, facts.policy_end),
        "country_covered": facts.covered_countries is None
        or facts.buyer_country in facts.covered_countries,
        # Only companies are insurable, and not an affiliate of the policyholder.
        "buyer_insurable": facts.buyer_legal_form == "company"
        and not facts.related_to_policyholder,
        "not_sanctioned": not facts.sanctioned,
        "no_stop_shipment": not facts.stopped,
    }

    for name, reason in _BOOK_REASONS:
        if not held[name]:
            reasons.append(reason)

    limit_amount: Decimal | None = None
    source: str | None = None
    terms = facts.max_credit_period_days
    if facts.has_limit and facts.limit_amount is not None:
        limit_amount, source = facts.limit_amount, "credit_limit"
        if facts.limit_terms_days is not None:
            terms = min(terms, facts.limit_terms_days)
    else:
        superseded = facts.decided_on is not None and facts.shipment_date >= facts.decided_on
        discretionary_open = (
            facts.whole_turnover
            and facts.discretionary_limit > 0
            and facts.buyer_grade < facts.insolvent_grade
        )
        if discretionary_open and not superseded:
            limit_amount, source = facts.discretionary_limit, "discretionary"
        elif discretionary_open and superseded:
            reasons.append("discretionary_superseded")
    if limit_amount is not None:
        limit_amount = within_single_buyer_cap(limit_amount, facts.single_buyer_cap)
    held["credit_period_within_terms"] = (facts.due_date - facts.shipment_date).days <= terms
    if not held["credit_period_within_terms"]:
        reasons.append("credit_period_exceeded")
    held["limit_in_force"] = limit_amount is not None and limit_amount > 0
    if limit_amount is None:
        reasons.append("no_limit")
    elif limit_amount <= 0:
        reasons.append("limit_withdrawn")

    headroom = max(ZERO, (limit_amount or ZERO) - facts.exposure)
    covered = ZERO
    if all(held.values()):
        covered = min(amount, headroom)
        held["headroom_available"] = covered > 0
        if covered <= 0:
            reasons.append("headroom_exhausted")
        elif covered < amount:
            reasons.append("partially_covered")
    covered_money = Money(covered, currency).rounded()
    return CoverageAnswer(
        covered=covered > 0,
        fully_covered=covered > 0 and covered == amount,
        covered_amount=covered_money,
        insured_amount=covered_money.percent(facts.indemnity_pct).rounded(),
        indemnity_pct=facts.indemnity_pct,
        limit_in_force=None if limit_amount is None else Money(limit_amount, currency).rounded(),
        limit_source=source,
        exposure=Money(facts.exposure, currency).rounded(),
        reasons=tuple(reasons),
        conditions=tuple(Condition(name, value) for name, value in held.items()),
    )


# The conditions read straight from the books and the reason each gives when it fails, in the
# order reasons are reported.
_BOOK_REASONS = (
    ("policy_active", "policy_inactive"),
    ("country_covered", "country_not_covered"),
    ("buyer_insurable", "buyer_not_insurable"),
    ("not_sanctioned", "sanctioned"),
    ("no_stop_shipment", "stop_shipment"),
)


# ---------------------------------------------------------------- premium and portfolio health


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
        legal_form == "company"
        and not related_to_policyholder
        and not sanctioned
        and (covered_countries is None or country in covered_countries)
    )


@dataclass(frozen=True)
class HealthThresholds:
    overdue_ratio_warning: Decimal = Decimal("0.15")
    dso_increase_warning: Decimal = Decimal("0.20")
    current_ratio_warning: Decimal = Decimal("1.2")
    overdue_after_days: int = 30
    sales_window_days: int = 365
    top_buyers: int = 5
    buckets: tuple[tuple[str, int, int | None], ...] = (
        ("1-30", 1, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("91+", 91, None),
    )  # fmt: skip


DEFAULT_HEALTH = HealthThresholds()


@dataclass(frozen=True)
class Invoice:
    buyer_id: str
    amount: Decimal
    shipment_date: dt.date
    due_date: dt.date
    paid_amount: Decimal
    paid_on: dt.date | None

    def outstanding_on(self, day: dt.date) -> Decimal:
        if self.shipment_date > day:
            return ZERO
        paid = self.paid_amount if self.paid_on is not None and self.paid_on <= day else ZERO
        return max(ZERO, self.amount - paid)


@dataclass(frozen=True)
class Warning:
    code: str
    figure: Decimal
    threshold: Decimal
    message: str
    buyer_id: str | None = None


@dataclass(frozen=True)
class PortfolioHealth:
    outstanding: Decimal
    dso_days: Decimal | None
    dso_prior_year_days: Decimal | None
    dso_change: Decimal | None
    overdue_ratio: Decimal | None
    ageing: tuple[tuple[str, Decimal], ...]
    concentration: tuple[tuple[str, Decimal, Decimal], ...]
    top_buyers_share: Decimal | None
    warnings: tuple[Warning, ...]


def dso(invoices: Sequence[Invoice], day: dt.date, window_days: int) -> Decimal | None:
    """DSO = receivables outstanding on `day` / credit sales of the last `window_days` × days;
    None without sales in the window."""
    since = day - dt.timedelta(days=window_days)
    sales = sum((i.amount for i in invoices if since < i.shipment_date <= day), ZERO)
    if sales <= 0:
        return None
    outstanding = sum((i.outstanding_on(day) for i in invoices), ZERO)
    return (outstanding / sales * window_days).quantize(Decimal("0.1"))


def portfolio_health(
    invoices: Sequence[Invoice],
    *,
    today: dt.date,
    thresholds: HealthThresholds = DEFAULT_HEALTH,
    current_ratios: Mapping[str, Decimal] | None = None,
) -> PortfolioHealth:
    """DSO and its change year on year, overdue ratio, ageing buckets, concentration on the
    largest buyers, and the warnings (overdue ratio above 15%, DSO up more than 20%, and per
    buyer still owing, a current ratio below 1.2)."""
    outstanding = sum((i.outstanding_on(today) for i in invoices), ZERO)
    current = dso(invoices, today, thresholds.sales_window_days)
    year_ago = today - dt.timedelta(days=365)
    prior = dso(invoices, year_ago, thresholds.sales_window_days)
    change = (
        None
        if current is None or not prior
        else ((current - prior) / prior).quantize(Decimal("0.0001"))
    )
    buckets: dict[str, Decimal] = {"not_due": ZERO} | {
        name: ZERO for name, _, _ in thresholds.buckets
    }
    overdue = ZERO
    per_buyer: dict[str, Decimal] = {}
    for invoice in invoices:
        left = invoice.outstanding_on(today)
        if left <= 0:
            continue
        per_buyer[invoice.buyer_id] = per_buyer.get(invoice.buyer_id, ZERO) + left
        late = (today - invoice.due_date).days
        if late > thresholds.overdue_after_days:
            overdue += left
        if late <= 0:
            buckets["not_due"] += left
            continue
        for name, low, high in thresholds.buckets:
            if late >= low and (high is None or late <= high):
                buckets[name] += left
                break
    ratio = (overdue / outstanding).quantize(Decimal("0.0001")) if outstanding > 0 else None
    ranked = sorted(per_buyer.items(), key=lambda kv: (-kv[1], kv[0]))[: thresholds.top_buyers]
    concentration = tuple(
        (buyer, amount, (amount / outstanding).quantize(Decimal("0.0001")))
        for buyer, amount in ranked
    )
    top_share = (
        (sum((a for _, a in ranked), ZERO) / outstanding).quantize(Decimal("0.0001"))
        if outstanding > 0
        else None
    )
    warnings: list[Warning] = []
    if ratio is not None and ratio > thresholds.overdue_ratio_warning:
        warnings.append(
            Warning(
                "overdue_ratio_high",
                ratio,
                thresholds.overdue_ratio_warning,
                f"overdue ratio {ratio * 100:.2f}% is above "
                f"{thresholds.overdue_ratio_warning * 100:.0f}%",
            )
        )
    if change is not None and change > thresholds.dso_increase_warning:
        warnings.append(
            Warning(
                "dso_increase",
                change,
                thresholds.dso_increase_warning,
                f"DSO rose {change * 100:.2f}% year on year, above "
                f"{thresholds.dso_increase_warning * 100:.0f}%",
            )
        )
    for buyer, _ in sorted(per_buyer.items()):
        current_ratio = (current_ratios or {}).get(buyer)
        if current_ratio is not None and current_ratio < thresholds.current_ratio_warning:
            warnings.append(
                Warning(
                    "buyer_current_ratio_low",
                    current_ratio,
                    thresholds.current_ratio_warning,
                    f"buyer {buyer} has a current ratio of {current_ratio}, below "
                    f"{thresholds.current_ratio_warning}",
                    buyer_id=buyer,
                )
            )
    return PortfolioHealth(
        outstanding=outstanding,
        dso_days=current,
        dso_prior_year_days=prior,
        dso_change=change,
        overdue_ratio=ratio,
        ageing=tuple(buckets.items()),
        concentration=concentration,
        top_buyers_share=top_share,
        warnings=tuple(warnings),
    )
