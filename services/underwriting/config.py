"""Underwriting settings: the shared ones plus the decision table's thresholds."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from services.underwriting.rules import DecisionTable, HealthThresholds
from shared.settings import Settings


class UnderwritingSettings(Settings):
    refer_from_grade: int = Field(8, alias="TCI_UW_REFER_FROM_GRADE")
    refer_country_level: int = Field(4, alias="TCI_UW_REFER_COUNTRY_LEVEL")
    ceiling_grade_1_3: Decimal = Field(Decimal(1_000_000), alias="TCI_UW_CEILING_GRADE_1_3")
    ceiling_grade_4_5: Decimal = Field(Decimal(250_000), alias="TCI_UW_CEILING_GRADE_4_5")
    ceiling_grade_6_7: Decimal = Field(Decimal(50_000), alias="TCI_UW_CEILING_GRADE_6_7")
    equity_share_pct: Decimal = Field(Decimal(10), alias="TCI_UW_EQUITY_SHARE_PCT")
    default_country_risk_level: int = Field(2, alias="TCI_UW_DEFAULT_COUNTRY_RISK_LEVEL")
    # Portfolio-health warnings (domain.md, Cash-flow indicators; seed figures).
    health_overdue_ratio_warning: Decimal = Field(
        Decimal("0.15"), alias="TCI_UW_HEALTH_OVERDUE_RATIO_WARNING"
    )
    health_dso_increase_warning: Decimal = Field(
        Decimal("0.20"), alias="TCI_UW_HEALTH_DSO_INCREASE_WARNING"
    )
    health_current_ratio_warning: Decimal = Field(
        Decimal("1.2"), alias="TCI_UW_HEALTH_CURRENT_RATIO_WARNING"
    )
    health_overdue_after_days: int = Field(30, alias="TCI_UW_HEALTH_OVERDUE_AFTER_DAYS", ge=0)
    # Coverage batches: items per statement, and statements in flight at once (each on its own
    # pooled connection, so keep it below TCI_DB_POOL_SIZE).
    coverage_batch_chunk: int = Field(1000, alias="TCI_UW_COVERAGE_BATCH_CHUNK", ge=1)
    coverage_batch_parallel: int = Field(4, alias="TCI_UW_COVERAGE_BATCH_PARALLEL", ge=1)

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
