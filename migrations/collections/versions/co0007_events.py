"""collections: events and who may hear of them

Revision ID: co0007
Revises: co0006
Create Date: 2026-11-24 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "co0007"
down_revision: str | None = "co0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "collections"
# SQLite numbers rows only in an INTEGER PRIMARY KEY; PostgreSQL takes a BIGINT (serial).
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_events_type"), "events", ["type"], unique=False, schema=SCHEMA)
    op.create_index(
        op.f("ix_events_subject_id"), "events", ["subject_id"], unique=False, schema=SCHEMA
    )
    op.create_table(
        "event_parties",
        sa.Column("party_id", sa.String(length=200), nullable=False),
        sa.Column("event_seq", SEQ, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            [f"{SCHEMA}.events.seq"],
            name=op.f("fk_event_parties_event_seq_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("party_id", "event_seq", name=op.f("pk_event_parties")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("event_parties", schema=SCHEMA)
    op.drop_index(op.f("ix_events_subject_id"), table_name="events", schema=SCHEMA)
    op.drop_index(op.f("ix_events_type"), table_name="events", schema=SCHEMA)
    op.drop_table("events", schema=SCHEMA)
