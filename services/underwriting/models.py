"""Underwriting tables: policies, assignments, buyers, risk data, limit requests, limits and their
history, signals, stop-shipments and declared receivables."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Amount, Exact, UTCDateTime, service_metadata, utcnow
from shared.events import event_tables
from shared.idempotency import idempotency_table
from shared.webhooks import webhook_tables

SCHEMA = "underwriting"
metadata = service_metadata(SCHEMA)
idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)
webhooks = webhook_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Timestamped:
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class Policy(Timestamped, Base):
    __tablename__ = "policies"

    policyholder_id: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    cover_type: Mapped[str] = mapped_column(String(20))
    max_liability: Mapped[Decimal] = mapped_column(Amount())
    premium_rate_pct: Mapped[Decimal] = mapped_column(Exact(12, 6))
    indemnity_pct: Mapped[Decimal] = mapped_column(Exact(12, 6))
    political_risk_cover: Mapped[bool] = mapped_column(Boolean)
    political_indemnity_pct: Mapped[Decimal] = mapped_column(Exact(12, 6))
    covered_countries: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    max_credit_period_days: Mapped[int] = mapped_column(Integer)
    deductible: Mapped[Decimal] = mapped_column(Amount())
    claim_threshold: Mapped[Decimal] = mapped_column(Amount())
    discretionary_limit: Mapped[Decimal] = mapped_column(Amount())
    single_buyer_cap: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    claim_filing_days: Mapped[int] = mapped_column(Integer)
    documents_grace_days: Mapped[int] = mapped_column(Integer)
    overdue_notification_days: Mapped[int] = mapped_column(Integer)
    max_extension_days: Mapped[int] = mapped_column(Integer)
    protracted_default_wait_days: Mapped[int] = mapped_column(Integer)
    reduction_notice_days: Mapped[int] = mapped_column(Integer)
    claims_calendar_country: Mapped[str] = mapped_column(String(2))
    collection_ladder: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))


class BuyerBrief(NamedTuple):
    """What the other services read of a buyer before acting on it
    (`repository.policy_banks_and_buyer`)."""

    id: str
    country: str
    legal_form: str
    grade: int


class PolicyRow(NamedTuple):
    """A policy as a read shows it (`repository.policy_with_banks`): its columns of the same
    names, no ORM object."""

    id: str
    created_at: dt.datetime
    policyholder_id: str
    currency: str
    start_date: dt.date
    end_date: dt.date
    cover_type: str
    max_liability: Decimal
    premium_rate_pct: Decimal
    indemnity_pct: Decimal
    political_risk_cover: bool
    political_indemnity_pct: Decimal
    covered_countries: list[str] | None
    max_credit_period_days: int
    deductible: Decimal
    claim_threshold: Decimal
    discretionary_limit: Decimal
    single_buyer_cap: Decimal | None
    claim_filing_days: int
    documents_grace_days: int
    overdue_notification_days: int
    max_extension_days: int
    protracted_default_wait_days: int
    reduction_notice_days: int
    claims_calendar_country: str
    collection_ladder: str


class PolicyAssignment(Timestamped, Base):
    """A bank made loss payee of a policy: it may check coverage under it."""

    __tablename__ = "policy_assignments"
    __table_args__ = (UniqueConstraint("policy_id", "bank_id"),)

    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"))
    bank_id: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(200))


class Buyer(Timestamped, Base):
    __tablename__ = "buyers"
    # One buyer per country and registration key (rules.registration_key): "HRB 1" and " hrb1"
    # are one company. A buyer without a key is a double the migration to un0011 found (it keeps
    # its own number; the first registered holds the key), left for staff to merge.
    # Room on each page for a row's next version (migration un0013): a re-grade updates every buyer
    # of a country in place without touching an index.
    __table_args__ = (
        UniqueConstraint("country", "registration_key"),
        {"postgresql_with": {"fillfactor": 50}},
    )

    name: Mapped[str] = mapped_column(String(300))
    country: Mapped[str] = mapped_column(String(2))
    registration_number: Mapped[str] = mapped_column(String(100))  # as written
    registration_key: Mapped[str | None] = mapped_column(String(100))
    legal_form: Mapped[str] = mapped_column(String(20))
    # Indicators an underwriter confirmed (they move the grade); those a policyholder declared are
    # each policyholder's own (`IndicatorDeclaration`).
    indicators: Mapped[dict[str, Any]] = mapped_column(JSON)
    grade: Mapped[int] = mapped_column(Integer)
    grade_factors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    insolvent_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    registered_by: Mapped[str] = mapped_column(String(200))
    graded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IndicatorDeclaration(Timestamped, Base):
    """The indicators one policyholder declared on a buyer (domain.md, Buyer: kept as declared,
    they move the grade only once an underwriter confirms them), one row per buyer and declaring
    policyholder: who declared them and when, and what became of them. `pending` until an
    underwriter confirms them (`confirmed`: merged into the buyer's indicators) or gives
    figures of their own for any indicator they declare (`superseded`; figures for none of them
    leave it pending, as declared); declaring again starts a pending declaration anew
    (merged into one still pending). `policyholder_id` null: declared before migration un0016
    by a party it could not name."""

    __tablename__ = "indicator_declarations"
    __table_args__ = (UniqueConstraint("buyer_id", "policyholder_id"),)

    buyer_id: Mapped[str] = mapped_column(ForeignKey("buyers.id"))
    policyholder_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    indicators: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    declared_by: Mapped[str] = mapped_column(String(200))
    declared_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BuyerGrade(Timestamped, Base):
    """One entry of a buyer's grade history, in force from `graded_on` until the next entry's
    `graded_on` (on one date, the entry recorded last). Entries are never changed: a signal learnt
    late adds, for each later date of the history, an entry graded again with it. `graded_on` is
    the date the grade describes: a signal's `observed_on`, else the day it was recorded. The
    first entry (the registration) also answers for dates before any entry."""

    __tablename__ = "buyer_grades"
    __table_args__ = (Index("ix_buyer_grades_buyer_graded", "buyer_id", "graded_on", "created_at"),)

    # No foreign key (migration un0013): entries are appended only from their buyer's row, read in
    # the same transaction, and buyers are never deleted; its check cost a quarter of each entry.
    buyer_id: Mapped[str] = mapped_column(String(40))
    graded_on: Mapped[dt.date] = mapped_column(Date)
    grade: Mapped[int] = mapped_column(Integer)
    factors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # What the grade was computed from, so that a signal learnt later can grade that date again.
    indicators: Mapped[dict[str, Any]] = mapped_column(JSON)
    country_risk_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cause: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(200))


class CountryRisk(Base):
    """The risk level (1 low … 4 high) of a buyer country; a country not listed has the default."""

    __tablename__ = "country_risks"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))
    # When the re-grade of the country's book to `level` began, until it is done (None: every
    # buyer is graded at the level): a run cut short is taken up again from there.
    regrading_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Sanction(Timestamped, Base):
    """A sanctioned country or buyer, listed once: never covered, never indemnified."""

    __tablename__ = "sanctions"

    # Each country and each buyer is listed once (a unique index each; the other column is null
    # and nulls are distinct), so that lifting its one listing lifts the sanction.
    country: Mapped[str | None] = mapped_column(String(2), nullable=True, index=True, unique=True)
    buyer_id: Mapped[str | None] = mapped_column(
        ForeignKey("buyers.id"), nullable=True, index=True, unique=True
    )
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))


class BuyerSignal(Timestamped, Base):
    __tablename__ = "buyer_signals"

    buyer_id: Mapped[str] = mapped_column(ForeignKey("buyers.id"), index=True)
    policy_id: Mapped[str | None] = mapped_column(ForeignKey("policies.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    observed_on: Mapped[dt.date] = mapped_column(Date)
    details: Mapped[str] = mapped_column(Text)
    # From collections: the creditor and the case (a creditor's delay counts once while it lasts).
    creditor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    points: Mapped[Decimal] = mapped_column(Exact(8, 2))
    grade_before: Mapped[int] = mapped_column(Integer)
    grade_after: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    # Whether it weighs on the buyer's grade (`rules.signal_weighs`, decided once when recorded):
    # every reader of the grade skips the others (migration un0014).
    weighed: Mapped[bool] = mapped_column(Boolean, server_default=true())


class LimitRequest(Timestamped, Base):
    __tablename__ = "limit_requests"
    __table_args__ = (
        Index("ix_limit_requests_status_created", "status", "created_at", "id"),
        # The few requests declaring the buyer an affiliate: coverage checks look them up.
        Index("ix_limit_requests_related_buyer", "buyer_id",
              postgresql_where=text("related_to_policyholder"),
              sqlite_where=text("related_to_policyholder")),
        # Who hears of a buyer's grade: the policies with a request on it (one buyer, or the
        # re-graded slice of a country's book).
        Index("ix_limit_requests_buyer_policy", "buyer_id", "policy_id"),
    )  # fmt: skip

    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"), index=True)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("buyers.id"))
    requested_amount: Mapped[Decimal] = mapped_column(Amount())
    decided_amount: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    related_to_policyholder: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    grade: Mapped[int] = mapped_column(Integer)
    limit_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class CreditLimit(Timestamped, Base):
    """One limit per (policy, buyer). `decided_on` is the first insurer decision on the pair: from
    that date on, the discretionary limit no longer applies."""

    __tablename__ = "credit_limits"
    __table_args__ = (UniqueConstraint("policy_id", "buyer_id"),)

    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"))
    buyer_id: Mapped[str] = mapped_column(ForeignKey("buyers.id"), index=True)
    decided_on: Mapped[dt.date] = mapped_column(Date)


class LimitAmount(Timestamped, Base):
    """One entry of a limit's history, in force on `[effective_from, effective_to)`, with the
    payment terms it was granted for (None: the policy's maximum credit period)."""

    __tablename__ = "limit_amounts"
    # Room on each page for a row's next version (un0013): a halving ends the running amount in
    # place. No foreign key: amounts are appended only from their limit's row, read in the same
    # transaction, and limits are never deleted.
    __table_args__ = (
        Index("ix_limit_amounts_limit_from", "limit_id", "effective_from"),
        {"postgresql_with": {"fillfactor": 50}},
    )

    limit_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Amount())
    payment_terms_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    effective_from: Mapped[dt.date] = mapped_column(Date)
    effective_to: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))
    decided_by: Mapped[str] = mapped_column(String(200))
    # A later change may replace an entry that had not yet started; it stays, marked, for audit.
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StopShipment(Timestamped, Base):
    """Shipments after `notified_on` (and before `cleared_on`) are not covered."""

    __tablename__ = "stop_shipments"
    __table_args__ = (Index("ix_stop_shipments_policy_buyer", "policy_id", "buyer_id"),)

    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"))
    buyer_id: Mapped[str] = mapped_column(ForeignKey("buyers.id"))
    notified_on: Mapped[dt.date] = mapped_column(Date)
    cleared_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class Receivable(Timestamped, Base):
    """A declared invoice: the exposure coverage checks subtract and the premium's turnover."""

    __tablename__ = "receivables"
    __table_args__ = (
        UniqueConstraint("policy_id", "invoice_number"),
        Index("ix_receivables_policy_buyer_shipment", "policy_id", "buyer_id", "shipment_date"),
    )

    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"))
    buyer_id: Mapped[str] = mapped_column(ForeignKey("buyers.id"))
    invoice_number: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Amount())
    shipment_date: Mapped[dt.date] = mapped_column(Date)
    due_date: Mapped[dt.date] = mapped_column(Date)
    paid_amount: Mapped[Decimal] = mapped_column(Amount())
    paid_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
