"""underwriting: a country's re-grade runs in slices, each its own transaction; the country keeps
when the run it still owes began (none: its book is graded at its level), so that a run cut short
is taken up again from there

Revision ID: un0009
Revises: un0008
Create Date: 2026-11-24 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "un0009"
down_revision: str | None = "un0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def upgrade() -> None:
    with op.batch_alter_table("country_risks", schema=_schema()) as table:
        table.add_column(
            sa.Column("regrading_since", shared.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("country_risks", schema=_schema()) as table:
        table.drop_column("regrading_since")
