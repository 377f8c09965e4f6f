"""Claims tables. The service owns the PostgreSQL schema `claims`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Amount, UTCDateTime, service_metadata
from shared.events import event_tables
from shared.idempotency import idempotency_table
from shared.outbox import outbox_table
from shared.webhooks import webhook_tables

SCHEMA = "claims"
metadata = service_metadata(SCHEMA)
idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)
webhooks = webhook_tables(metadata)
outbox = outbox_table(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class OverdueNotification(Base):
    """A policyholder's report of invoices unpaid past due, an extension request or a plan."""

    __tablename__ = "overdue_notifications"
    __table_args__ = (Index(None, "policy_id", "buyer_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    policy_id: Mapped[str] = mapped_column(String(40))
    buyer_id: Mapped[str] = mapped_column(String(40))
    policyholder_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(30))
    notified_on: Mapped[dt.date] = mapped_column(Date)
    new_due_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    instalments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))


class NotifiedInvoice(Base):
    __tablename__ = "notified_invoices"
    __table_args__ = (Index(None, "policy_id", "buyer_id", "number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("overdue_notifications.id"))
    policy_id: Mapped[str] = mapped_column(String(40))
    buyer_id: Mapped[str] = mapped_column(String(40))
    number: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Amount())
    shipment_date: Mapped[dt.date] = mapped_column(Date)
    due_date: Mapped[dt.date] = mapped_column(Date)
    notification_deadline: Mapped[dt.date] = mapped_column(Date)
    late: Mapped[bool]


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (Index(None, "policyholder_id", "created_at"), Index(None, "policy_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    policy_id: Mapped[str] = mapped_column(String(40))
    buyer_id: Mapped[str] = mapped_column(String(40))
    policyholder_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    cause: Mapped[str] = mapped_column(String(30))
    event_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    loss_date: Mapped[dt.date] = mapped_column(Date)
    filed_on: Mapped[dt.date] = mapped_column(Date)
    filing_opens: Mapped[dt.date] = mapped_column(Date)
    filing_deadline: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(30))
    held_status: Mapped[str | None] = mapped_column(String(30), nullable=True)
    documents_due: Mapped[dt.date] = mapped_column(Date)
    complete_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    decision_due: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    reductions: Mapped[Decimal] = mapped_column(Amount())
    # Of the reductions, the recoveries the policyholder declared (they count only beyond those
    # its collection cases recorded: the same money is not deducted twice).
    declared_recovered: Mapped[Decimal] = mapped_column(Amount(), server_default="0")
    war_related: Mapped[bool]
    nuclear_related: Mapped[bool]
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    assessment: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    indemnity: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    assessed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    assessed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    paid_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    collection_case_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(200))


class ClaimInvoice(Base):
    __tablename__ = "claim_invoices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    number: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Amount())
    shipment_date: Mapped[dt.date] = mapped_column(Date)
    due_date: Mapped[dt.date] = mapped_column(Date)


class ClaimDocument(Base):
    __tablename__ = "claim_documents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(200))


class Dispute(Base):
    __tablename__ = "disputes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    raised_on: Mapped[dt.date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(Text)
    invoice_numbers: Mapped[list[str]] = mapped_column(JSON)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    resolved_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    raised_by: Mapped[str] = mapped_column(String(200))
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ClaimedInvoice(Base):
    """An invoice held by a live claim: one row per (policy, buyer, invoice number), so a second
    live claim on it cannot be written however many filings arrive at once. A claim that is
    rejected or lapses deletes its rows, which frees its invoices."""

    __tablename__ = "claimed_invoices"

    policy_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str] = mapped_column(String(100), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)


class PolicyCaps(Base):
    """One row per policy that approvals and payments write first (an upsert, which locks the row
    on PostgreSQL and takes the write lock on SQLite) before they add up what the policy's caps
    already carry: approvals and payments of one policy run one after another."""

    __tablename__ = "policy_caps"

    policy_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    changes: Mapped[int] = mapped_column(Integer)


class CalendarDay(Base):
    """A day of a country's working calendar as staff corrected it (a holiday the `holidays`
    package does not know, a weekend working day, or a day it has wrong): it overrides the
    package for every working-day deadline."""

    __tablename__ = "calendar_days"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
