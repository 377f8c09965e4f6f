"""underwriting: a signal a creditor reports on a buyer weighs on its grade only when the creditor
holds a credit limit on the buyer (`rules.signal_weighs`); the decision is kept on the
signal, so that the one-buyer grade and the whole-book re-grade skip the same signals

Every signal recorded before weighed (as it did): the column defaults to true.

Revision ID: un0014
Revises: un0013
Create Date: 2026-11-24 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "un0014"
down_revision: str | None = "un0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def upgrade() -> None:
    with op.batch_alter_table("buyer_signals", schema=_schema()) as table:
        table.add_column(
            sa.Column("weighed", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("buyer_signals", schema=_schema()) as table:
        table.drop_column("weighed")
