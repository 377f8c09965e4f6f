"""claims: the recoveries a policyholder declared on a claim, kept apart from its other reductions
(they count only beyond the recoveries its collection cases recorded)

Revision ID: cl0009
Revises: cl0008
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "cl0009"
down_revision: str | None = "cl0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "claims"


def upgrade() -> None:
    with op.batch_alter_table("claims", schema=_schema()) as batch:
        batch.add_column(sa.Column("declared_recovered", shared.db.Amount(precision=20, scale=4),
                                   server_default="0", nullable=False))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("claims", schema=_schema()) as batch:
        batch.drop_column("declared_recovered")
