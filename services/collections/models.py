"""Collections tables. The service owns the PostgreSQL schema `collections`."""

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
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Amount, Exact, UTCDateTime, service_metadata
from shared.events import event_tables
from shared.idempotency import idempotency_table
from shared.outbox import outbox_table
from shared.webhooks import webhook_tables

SCHEMA = "collections"
metadata = service_metadata(SCHEMA)
idempotency_keys = idempotency_table(metadata)
events = event_tables(metadata)
webhooks = webhook_tables(metadata)
outbox = outbox_table(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Case(Base):
    """A debt-collection case: a policyholder's mandate, or the recovery after a paid claim."""

    __tablename__ = "cases"
    __table_args__ = (
        Index(None, "creditor_id", "created_at"),
        Index(None, "status", "stage"),
        # A collector's list of every case, in the lists' order (pages read by index, not sorted).
        Index("ix_cases_created_id", "created_at", "id"),
        # A paid claim opens one subrogation case, never two.
        Index("uq_cases_claim_id", "claim_id", unique=True,
              postgresql_where=text("claim_id IS NOT NULL"),
              sqlite_where=text("claim_id IS NOT NULL")),
    )  # fmt: skip

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    creditor_id: Mapped[str] = mapped_column(String(64))
    buyer_id: Mapped[str] = mapped_column(String(40))
    debtor_country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    ladder: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    claim_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The banks of the claim's policy (a subrogation case): they hear of the case's events.
    loss_payee_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The insurer's share of recoveries as an exact fraction (decimal strings: no scale, no
    # rounding): the indemnity paid over the claim's unpaid invoices, or a percentage over 100.
    insurer_share_numerator: Mapped[str | None] = mapped_column(Text, nullable=True)
    insurer_share_denominator: Mapped[str | None] = mapped_column(Text, nullable=True)
    fee_pct: Mapped[Decimal] = mapped_column(Exact(9, 4))
    opened_on: Mapped[dt.date] = mapped_column(Date)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))


class CaseInvoice(Base):
    __tablename__ = "case_invoices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    number: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Amount())
    due_date: Mapped[dt.date] = mapped_column(Date)
    paid: Mapped[Decimal] = mapped_column(Amount())
    # An invoice of the paid claim the case collects for (its indemnity covered it): only what
    # is recovered on such an invoice is shared with the insurer (`rules.share_recovery`).
    claimed: Mapped[bool] = mapped_column(Boolean, server_default=false())


class Activity(Base):
    __tablename__ = "activities"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    promised_amount: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    promised_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(200))


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Amount())
    received_on: Mapped[dt.date] = mapped_column(Date)
    fee: Mapped[Decimal] = mapped_column(Amount())
    insurer: Mapped[Decimal] = mapped_column(Amount())
    policyholder: Mapped[Decimal] = mapped_column(Amount())
    credited: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    recorded_by: Mapped[str] = mapped_column(String(200))
    # The paid claim whose share split this payment (none: a mandate's, before any claim): the
    # case's recoveries under one share are shared as their total is (`rules.share_recovery`).
    # A mandate's payment the claim's indemnity did not deduct is split by the claim's share
    # when the claim takes the mandate over, and is the claim's from then on.
    claim_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Of a mandate's payment shared again when a paid claim took the mandate over, what was
    # recovered on the claim's invoices after the claim counted the mandate's recoveries: the
    # part of it the claim's share splits (`rules.recovered_after_claim`). None: a payment
    # recorded under its claim's share, whose part is what it credited to the claim's invoices.
    recovered_after_claim: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)


class LadderRung(Base):
    """A rung of an escalation ladder: from `days_past_due` past the oldest due date a case on
    ladder `name` stands on `stage`. A ladder is data, chosen per policy or case (seeded with two
    ladders by the migration co0006)."""

    __tablename__ = "ladders"
    __table_args__ = (UniqueConstraint("name", "stage"),)

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    days_past_due: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(40))


# The rows of the tables as a read shows them (`repository.cases_page`, `repository.lines_of`):
# plain tuples of the columns of the same names, no ORM object.


class CaseRow(NamedTuple):
    id: str
    created_at: dt.datetime
    creditor_id: str
    buyer_id: str
    debtor_country: str
    currency: str
    ladder: str
    stage: str
    status: str
    claim_id: str | None
    insurer_share_numerator: str | None
    insurer_share_denominator: str | None
    fee_pct: Decimal
    opened_on: dt.date
    closed_on: dt.date | None


class CaseInvoiceRow(NamedTuple):
    case_id: str
    number: str
    amount: Decimal
    due_date: dt.date
    paid: Decimal


class ActivityRow(NamedTuple):
    id: str
    created_at: dt.datetime
    case_id: str
    kind: str
    occurred_on: dt.date
    note: str | None
    promised_amount: Decimal | None
    promised_on: dt.date | None
    details: dict[str, Any] | None
    recorded_by: str


class PaymentRow(NamedTuple):
    id: str
    created_at: dt.datetime
    case_id: str
    amount: Decimal
    received_on: dt.date
    fee: Decimal
    insurer: Decimal
    policyholder: Decimal
    credited: list[dict[str, Any]]
