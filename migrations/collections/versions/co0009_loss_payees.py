"""collections: a subrogation case's loss payees (the banks of the claim's policy hear of it)

Revision ID: co0009
Revises: co0008
Create Date: 2026-11-24 01:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "co0009"
down_revision: str | None = "co0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=_schema()) as batch:
        batch.add_column(
            sa.Column("loss_payee_ids", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=_schema()) as batch:
        batch.drop_column("loss_payee_ids")
