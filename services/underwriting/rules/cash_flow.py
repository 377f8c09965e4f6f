"""Cash-flow indicators (domain.md, Cash-flow indicators): DSO, overdue ratio, ageing,
concentration and the warnings of a policyholder's portfolio."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

ZERO = Decimal(0)
# DSO year on year compares today's figure with the one this many days ago.
PRIOR_YEAR_DAYS = 365


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

    @property
    def history_days(self) -> int:
        """How far back before a day the indicators read: the sales window ending a year before
        it (DSO year on year)."""
        return PRIOR_YEAR_DAYS + self.sales_window_days


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


@dataclass(frozen=True)
class HealthTotals:
    """The sums portfolio health is computed from, whether added up here (`health_totals`) or
    by the database (`repository.portfolio_health_statements`): what is outstanding today and a
    year ago, the credit sales of the window ending on each day, what is overdue, the ageing
    buckets, and what each of (at least) the `top_buyers` buyers owing most owes."""

    outstanding: Decimal
    outstanding_prior_year: Decimal
    sales: Decimal
    sales_prior_year: Decimal
    overdue: Decimal
    ageing: tuple[tuple[str, Decimal], ...]
    largest_buyers: Mapping[str, Decimal]


def exact_dso(outstanding: Decimal, sales: Decimal, window_days: int) -> Fraction | None:
    """DSO = receivables outstanding / credit sales of the window × its days, exactly (the
    warnings weigh it unrounded); None without sales in the window."""
    if sales <= 0:
        return None
    return Fraction(outstanding) / Fraction(sales) * window_days


def dso_of(outstanding: Decimal, sales: Decimal, window_days: int) -> Decimal | None:
    """DSO as shown, in days to one decimal; None without sales in the window."""
    return _shown(exact_dso(outstanding, sales, window_days), _DAYS)


def sales_in_window(invoices: Sequence[Invoice], day: dt.date, window_days: int) -> Decimal:
    """Credit sales shipped in the `window_days` ending on `day` (that day included)."""
    since = day - dt.timedelta(days=window_days)
    return sum((i.amount for i in invoices if since < i.shipment_date <= day), ZERO)


def dso(invoices: Sequence[Invoice], day: dt.date, window_days: int) -> Decimal | None:
    """DSO = receivables outstanding on `day` / credit sales of the last `window_days` × days;
    None without sales in the window."""
    outstanding = sum((i.outstanding_on(day) for i in invoices), ZERO)
    return dso_of(outstanding, sales_in_window(invoices, day, window_days), window_days)


def health_totals(
    invoices: Sequence[Invoice], *, today: dt.date, thresholds: HealthThresholds = DEFAULT_HEALTH
) -> HealthTotals:
    """The sums of portfolio health, added up from the invoices."""
    prior = today - dt.timedelta(days=PRIOR_YEAR_DAYS)
    window = thresholds.sales_window_days
    late = thresholds.overdue_after_days
    return HealthTotals(
        outstanding=sum((i.outstanding_on(today) for i in invoices), ZERO),
        outstanding_prior_year=sum((i.outstanding_on(prior) for i in invoices), ZERO),
        sales=sales_in_window(invoices, today, window),
        sales_prior_year=sales_in_window(invoices, prior, window),
        overdue=sum(
            (i.outstanding_on(today) for i in invoices if (today - i.due_date).days > late), ZERO
        ),
        ageing=ageing(invoices, today, thresholds.buckets),
        largest_buyers=outstanding_per_buyer(invoices, today),
    )


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
    totals = health_totals(invoices, today=today, thresholds=thresholds)
    owing = {buyer: ratio for buyer, ratio in (current_ratios or {}).items()
             if buyer in totals.largest_buyers}  # fmt: skip
    return health_from_totals(totals, thresholds=thresholds, current_ratios=owing)


def health_from_totals(
    totals: HealthTotals,
    *,
    thresholds: HealthThresholds = DEFAULT_HEALTH,
    current_ratios: Mapping[str, Decimal] | None = None,
) -> PortfolioHealth:
    """Portfolio health from its sums; `current_ratios` are those of the buyers still owing."""
    # The figures are worked out exactly and rounded only to be shown: a warning weighs the
    # exact figure against its threshold, never one rounded first (domain.md: rounded once).
    window = thresholds.sales_window_days
    current = exact_dso(totals.outstanding, totals.sales, window)
    prior = exact_dso(totals.outstanding_prior_year, totals.sales_prior_year, window)
    change = _exact_change(current, prior)
    from_zero = prior == 0 and current is not None and current > 0
    ratio = None if totals.outstanding <= 0 else (
        Fraction(totals.overdue) / Fraction(totals.outstanding))  # fmt: skip
    largest, top_share = concentration(
        totals.largest_buyers, totals.outstanding, thresholds.top_buyers
    )
    ratios = current_ratios or {}
    return PortfolioHealth(
        outstanding=totals.outstanding,
        dso_days=_shown(current, _DAYS),
        dso_prior_year_days=_shown(prior, _DAYS),
        dso_change=_shown(change, _SHARE),
        overdue_ratio=_shown(ratio, _SHARE),
        ageing=totals.ageing,
        concentration=largest,
        top_buyers_share=top_share,
        warnings=(
            *portfolio_warnings(ratio, change, thresholds),
            *dso_from_zero_warning(current if from_zero else None, thresholds),
            *current_ratio_warnings(sorted(ratios), ratios, thresholds),
        ),
    )


_DAYS = Decimal("0.1")
_SHARE = Decimal("0.0001")
# The finest a warning's figure is shown, when the share's places would show its threshold.
_FINEST = Decimal("1E-12")


def _share(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole).quantize(_SHARE)


def _rounded(figure: Fraction, places: Decimal) -> Decimal:
    """An exact figure rounded once, to `places`, to be shown."""
    return (Decimal(figure.numerator) / Decimal(figure.denominator)).quantize(places)


def _shown(figure: Fraction | None, places: Decimal) -> Decimal | None:
    return None if figure is None else _rounded(figure, places)


def _exact_change(current: Fraction | None, prior: Fraction | None) -> Fraction | None:
    return None if current is None or not prior else (current - prior) / prior


def dso_change(current: Decimal | None, prior: Decimal | None) -> Decimal | None:
    """DSO's change year on year: (DSO today − DSO a year ago) / DSO a year ago; none without
    both (or with a prior DSO of zero)."""
    change = _exact_change(None if current is None else Fraction(current),
                           None if prior is None else Fraction(prior))  # fmt: skip
    return _shown(change, _SHARE)


def outstanding_per_buyer(invoices: Sequence[Invoice], day: dt.date) -> dict[str, Decimal]:
    """What each buyer still owes on `day` (buyers owing nothing left out)."""
    per_buyer: dict[str, Decimal] = {}
    for invoice in invoices:
        left = invoice.outstanding_on(day)
        if left > 0:
            per_buyer[invoice.buyer_id] = per_buyer.get(invoice.buyer_id, ZERO) + left
    return per_buyer


def concentration(
    per_buyer: Mapping[str, Decimal], outstanding: Decimal, top_buyers: int
) -> tuple[tuple[tuple[str, Decimal, Decimal], ...], Decimal | None]:
    """Concentration: the `top_buyers` buyers owing most (ties by buyer id), each with what it
    owes and its share of all that is outstanding, and their share together (none when nothing
    is outstanding)."""
    ranked = sorted(per_buyer.items(), key=lambda kv: (-kv[1], kv[0]))[:top_buyers]
    largest = tuple((buyer, amount, _share(amount, outstanding)) for buyer, amount in ranked)
    if outstanding <= 0:
        return largest, None
    return largest, _share(sum((amount for _, amount in ranked), ZERO), outstanding)


def overdue_ratio(
    invoices: Sequence[Invoice], day: dt.date, outstanding: Decimal, overdue_after_days: int
) -> Decimal | None:
    """Overdue ratio = receivables more than `overdue_after_days` past due / receivables
    outstanding; none when nothing is outstanding."""
    if outstanding <= 0:
        return None
    overdue = sum(
        (
            left
            for i in invoices
            if (day - i.due_date).days > overdue_after_days and (left := i.outstanding_on(day)) > 0
        ),
        ZERO,
    )
    return _share(overdue, outstanding)


def ageing(
    invoices: Sequence[Invoice], day: dt.date, buckets: Sequence[tuple[str, int, int | None]]
) -> tuple[tuple[str, Decimal], ...]:
    """What is outstanding on `day`, not yet due or by days past due in the ageing buckets
    (each from its first to its last day, the last open-ended)."""
    aged: dict[str, Decimal] = {"not_due": ZERO} | {name: ZERO for name, _, _ in buckets}
    for invoice in invoices:
        left = invoice.outstanding_on(day)
        if left <= 0:
            continue
        late = (day - invoice.due_date).days
        if late <= 0:
            aged["not_due"] += left
            continue
        for name, low, high in buckets:
            if late >= low and (high is None or late <= high):
                aged[name] += left
                break
    return tuple(aged.items())


def portfolio_warnings(
    ratio: Fraction | None, change: Fraction | None, thresholds: HealthThresholds
) -> list[Warning]:
    """The portfolio's warnings: an overdue ratio above its threshold, a DSO risen year on year
    by more than its threshold, each weighed exactly and shown rounded."""
    warnings: list[Warning] = []
    if ratio is not None and ratio > Fraction(thresholds.overdue_ratio_warning):
        limit = thresholds.overdue_ratio_warning
        shown = _shown_above(ratio, limit)
        message = f"overdue ratio {_percent(shown)}% is above {limit * 100:.0f}%"
        warnings.append(Warning("overdue_ratio_high", shown, limit, message))
    if change is not None and change > Fraction(thresholds.dso_increase_warning):
        limit = thresholds.dso_increase_warning
        shown = _shown_above(change, limit)
        message = f"DSO rose {_percent(shown)}% year on year, above {limit * 100:.0f}%"
        warnings.append(Warning("dso_increase", shown, limit, message))
    return warnings


def dso_from_zero_warning(current: Fraction | None, thresholds: HealthThresholds) -> list[Warning]:
    """A DSO of zero a year ago and above it now (`current`) has risen beyond any share: its
    warning shows the DSO it rose to (its change year on year has no figure)."""
    if current is None:
        return []
    shown = _rounded(current, _DAYS)
    message = (f"DSO rose from 0 days a year ago to {shown} days, above "
               f"{thresholds.dso_increase_warning * 100:.0f}% year on year")  # fmt: skip
    return [Warning("dso_increase", shown, thresholds.dso_increase_warning, message)]


def _percent(share: Decimal) -> str:
    """A share as a percentage with two decimals, or as many as it has (15.00001)."""
    whole, _, fraction = f"{share * 100:f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def _shown_above(figure: Fraction, threshold: Decimal) -> Decimal:
    """A figure above its threshold as a warning shows it: rounded once, to the share's places
    or as many more as it takes not to read as the threshold it passed (0.1500001 against 0.15
    reads 0.1500001, not 0.15)."""
    places = _SHARE
    shown = _rounded(figure, places)
    while shown <= threshold and places > _FINEST:
        places = places / 10
        shown = _rounded(figure, places)
    return shown


def current_ratio_warnings(
    owing: Iterable[str], current_ratios: Mapping[str, Decimal], thresholds: HealthThresholds
) -> list[Warning]:
    """A warning for each buyer still owing whose current ratio is below its threshold."""
    limit = thresholds.current_ratio_warning
    return [
        Warning(
            "buyer_current_ratio_low",
            ratio,
            limit,
            f"buyer {buyer} has a current ratio of {ratio}, below {limit}",
            buyer_id=buyer,
        )
        for buyer in owing
        if (ratio := current_ratios.get(buyer)) is not None and ratio < limit
    ]


def current_ratio_that_counts(
    confirmed: Mapping[str, Any] | None, declared: Mapping[str, Any] | None
) -> Decimal | None:
    """A buyer's current ratio for the warnings: the confirmed figure, else the one a
    policyholder declared (none when neither is known)."""
    value = (confirmed or {}).get("current_ratio") or (declared or {}).get("current_ratio")
    return None if value is None else Decimal(str(value))
