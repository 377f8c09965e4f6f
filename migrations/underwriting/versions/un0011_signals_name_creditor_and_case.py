"""underwriting: a signal from collections names the creditor whose debt the case collects and the
case, so that one creditor's delay on a buyer counts once while it lasts, however many cases report
it

Revision ID: un0011
Revises: un0010
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "un0011"
down_revision: str | None = "un0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def upgrade() -> None:
    with op.batch_alter_table("buyer_signals", schema=_schema()) as table:
        table.add_column(sa.Column("creditor_id", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("case_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("buyer_signals", schema=_schema()) as table:
        table.drop_column("case_id")
        table.drop_column("creditor_id")
