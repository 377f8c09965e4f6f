"""Cash-flow indicators (domain.md, Cash-flow indicators): DSO, overdue ratio, ageing,
concentration and the warnings of a policyholder's portfolio."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


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


def current_ratio_that_counts(
    confirmed: Mapping[str, Any] | None, declared: Mapping[str, Any] | None
) -> Decimal | None:
    """A buyer's current ratio for the warnings: the confirmed figure, else the one a
    policyholder declared (none when neither is known)."""
    value = (confirmed or {}).get("current_ratio") or (declared or {}).get("current_ratio")
    return None if value is None else Decimal(str(value))
