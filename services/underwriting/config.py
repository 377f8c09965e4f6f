"""Underwriting settings: the shared ones plus the decision table's thresholds. Every default is
the rules' own (`rules.DEFAULT_*`), written once there."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import get_args

from pydantic import Field, field_validator

from services.underwriting.rules import (
    DEFAULT_DECISION_TABLE,
    DEFAULT_HALVE_FROM_GRADE,
    DEFAULT_HEALTH,
    DEFAULT_SIGNAL_POINTS,
    SIGNAL_MEMORY_DAYS,
    DecisionTable,
    HealthThresholds,
)
from shared.contracts import SignalKind
from shared.settings import Settings

_TABLE = DEFAULT_DECISION_TABLE


def _ceiling(highest_grade: int) -> Decimal:
    ceiling = _TABLE.ceiling(highest_grade)
    assert ceiling is not None
    return ceiling


class UnderwritingSettings(Settings):
    refer_from_grade: int = Field(
        _TABLE.refer_from_grade,
        alias="TCI_UW_REFER_FROM_GRADE",
        description="a buyer at this risk grade or worse is referred to an underwriter",
    )
    refer_country_level: int = Field(
        _TABLE.refer_country_level,
        alias="TCI_UW_REFER_COUNTRY_LEVEL",
        description="a buyer in a country at this risk level or higher is referred to an underwriter",
    )
    ceiling_grade_1_3: Decimal = Field(
        _ceiling(3),
        alias="TCI_UW_CEILING_GRADE_1_3",
        description="the highest limit granted automatically to a buyer of grade 1-3",
    )
    ceiling_grade_4_5: Decimal = Field(
        _ceiling(5),
        alias="TCI_UW_CEILING_GRADE_4_5",
        description="the highest limit granted automatically to a buyer of grade 4-5",
    )
    ceiling_grade_6_7: Decimal = Field(
        _ceiling(7),
        alias="TCI_UW_CEILING_GRADE_6_7",
        description="the highest limit granted automatically to a buyer of grade 6-7",
    )
    equity_share_pct: Decimal = Field(
        _TABLE.equity_share_pct,
        alias="TCI_UW_EQUITY_SHARE_PCT",
        description="a limit granted automatically is at most this percentage of the buyer's equity",
    )
    # A buyer newly at this grade or worse has its limits halved (domain.md, Limit changes): its
    # own knob, not the decision table's referral grade.
    halve_from_grade: int = Field(DEFAULT_HALVE_FROM_GRADE, alias="TCI_UW_HALVE_FROM_GRADE")
    default_country_risk_level: int = Field(
        2,
        alias="TCI_UW_DEFAULT_COUNTRY_RISK_LEVEL",
        description="the risk level of a country with none recorded",
    )
    regrade_slice_buyers: int = Field(
        20_000,
        ge=1,
        alias="TCI_UW_REGRADE_SLICE_BUYERS",
        description="a country's re-grade commits its book in slices of this many buyers, each "
        "its own transaction (row locks and the event lock held for a slice, not the book)",
    )
    regrade_parallel_slices: int = Field(
        2,
        ge=1,
        le=16,
        alias="TCI_UW_REGRADE_PARALLEL_SLICES",
        description="slices of a country's re-grade run at once on PostgreSQL (one on SQLite)",
    )
    # Portfolio-health warnings (domain.md, Cash-flow indicators; seed figures).
    health_overdue_ratio_warning: Decimal = Field(
        DEFAULT_HEALTH.overdue_ratio_warning,
        alias="TCI_UW_HEALTH_OVERDUE_RATIO_WARNING",
        description="portfolio health: warn when the overdue ratio is above this",
    )
    health_dso_increase_warning: Decimal = Field(
        DEFAULT_HEALTH.dso_increase_warning,
        alias="TCI_UW_HEALTH_DSO_INCREASE_WARNING",
        description="portfolio health: warn when days sales outstanding rise by more than this",
    )
    health_current_ratio_warning: Decimal = Field(
        DEFAULT_HEALTH.current_ratio_warning,
        alias="TCI_UW_HEALTH_CURRENT_RATIO_WARNING",
        description="portfolio health: warn when a buyer's current ratio falls below this",
    )
    health_overdue_after_days: int = Field(
        DEFAULT_HEALTH.overdue_after_days,
        alias="TCI_UW_HEALTH_OVERDUE_AFTER_DAYS",
        description="portfolio health: an invoice counts as overdue this many days past due",
        ge=0,
    )
    # Coverage batches: items per statement, and statements in flight at once (each on its own
    # pooled connection, so keep it below TCI_DB_POOL_SIZE).
    coverage_batch_chunk: int = Field(1000, alias="TCI_UW_COVERAGE_BATCH_CHUNK", ge=1)
    coverage_batch_parallel: int = Field(
        4,
        alias="TCI_UW_COVERAGE_BATCH_PARALLEL",
        description="statements of one coverage batch in flight at once (keep below TCI_DB_POOL_SIZE)",
        ge=1,
    )

    # The points each kind of signal adds to the grade while it is recent (domain.md, Grade:
    # signals add points too), as JSON: `{"claim_paid": "3"}` overrides that kind only.
    signal_points: dict[str, Decimal] = Field(
        default_factory=lambda: dict(DEFAULT_SIGNAL_POINTS), alias="TCI_UW_SIGNAL_POINTS"
    )
    signal_memory_days: int = Field(
        SIGNAL_MEMORY_DAYS,
        alias="TCI_UW_SIGNAL_MEMORY_DAYS",
        ge=1,
        description="how many days a signal about a buyer weighs on its grade",
    )

    aged_signals_interval_seconds: float = Field(
        3600.0,
        alias="TCI_UW_AGED_SIGNALS_INTERVAL_SECONDS",
        gt=0,
        description="how often buyers whose grade still counts a signal past its memory are "
        "graded again (idempotent; a day's signals stop weighing the day after their last)",
    )

    declared_credit_days_at_most: int = Field(
        365,
        alias="TCI_UW_DECLARED_CREDIT_DAYS_AT_MOST",
        ge=1,
        description="the longest credit period (shipment to due date) a declared invoice may "
        "have, when the policy's maximum is shorter: a sale on longer terms than the cover is "
        "still a receivable of the book (uncovered), one due years away is not trade credit",
    )

    @field_validator("signal_points")
    @classmethod
    def _known_signal_kinds(cls, points: dict[str, Decimal]) -> dict[str, Decimal]:
        unknown = sorted(set(points) - set(get_args(SignalKind)))
        if unknown:
            raise ValueError(f"no such signal kind: {', '.join(unknown)}")
        return {**DEFAULT_SIGNAL_POINTS, **points}

    def signal_weights(self) -> Mapping[str, Decimal]:
        """The points of every kind of signal: the defaults, with the settings' overrides."""
        return self.signal_points

    def health_thresholds(self) -> HealthThresholds:
        return HealthThresholds(
            overdue_ratio_warning=self.health_overdue_ratio_warning,
            dso_increase_warning=self.health_dso_increase_warning,
            current_ratio_warning=self.health_current_ratio_warning,
            overdue_after_days=self.health_overdue_after_days,
        )

    def decision_table(self) -> DecisionTable:
        return DecisionTable(
            refer_from_grade=self.refer_from_grade,
            refer_country_level=self.refer_country_level,
            ceilings=(
                (3, self.ceiling_grade_1_3),
                (5, self.ceiling_grade_4_5),
                (7, self.ceiling_grade_6_7),
            ),
            equity_share_pct=self.equity_share_pct,
        )
