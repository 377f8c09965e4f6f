"""collections: webhook endpoints and delivery attempts

Revision ID: co0008
Revises: co0007
Create Date: 2026-11-24 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "co0008"
down_revision: str | None = "co0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "collections"
# An event's `seq`: SQLite numbers rows only in an INTEGER PRIMARY KEY; PostgreSQL a BIGINT.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("party_id", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("after_seq", SEQ, nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("head_attempts", sa.Integer(), nullable=False),
        sa.Column("head_failing_since", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=40), nullable=True),
        sa.Column("lease_until", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_webhook_endpoints_party_id"), "webhook_endpoints", ["party_id"], unique=False,
        schema=SCHEMA,
    )  # fmt: skip
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_seq", SEQ, nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], [f"{SCHEMA}.webhook_endpoints.id"],
            name=op.f("fk_webhook_attempts_endpoint_id_webhook_endpoints"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        schema=SCHEMA,
    )  # fmt: skip
    op.create_index(
        op.f("ix_webhook_attempts_endpoint_id_attempted_at_id"), "webhook_attempts",
        ["endpoint_id", "attempted_at", "id"], unique=False, schema=SCHEMA,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index(
        op.f("ix_webhook_attempts_endpoint_id_attempted_at_id"), table_name="webhook_attempts",
        schema=SCHEMA,
    )  # fmt: skip
    op.drop_table("webhook_attempts", schema=SCHEMA)
    op.drop_index(
        op.f("ix_webhook_endpoints_party_id"), table_name="webhook_endpoints", schema=SCHEMA
    )
    op.drop_table("webhook_endpoints", schema=SCHEMA)
