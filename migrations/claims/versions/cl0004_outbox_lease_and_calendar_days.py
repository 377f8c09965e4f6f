"""claims: outbox lease; calendar corrections

Revision ID: cl0004
Revises: cl0003
Create Date: 2026-11-23 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "cl0004"
down_revision: str | None = "cl0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "claims"


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=_schema()) as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=40), nullable=True))
        batch.add_column(
            sa.Column("lease_until", shared.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "calendar_days",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("working", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("country", "day", name=op.f("pk_calendar_days")),
        schema="claims",
    )


def downgrade() -> None:
    op.drop_table("calendar_days", schema="claims")
    with op.batch_alter_table("outbox", schema=_schema()) as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
