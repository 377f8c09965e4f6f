"""collections: a mandate's payment shared again when a paid claim takes the mandate over keeps
what of it was recovered after the claim (`recovered_after_claim`), so that the recoveries shared
again and those recorded after the takeover are shared as their whole recovered after the claim
is, to the cent

The payments shared again before this revision were each shared on their own and stay as they
are (the part the claim did not deduct was not kept).

Revision ID: co0016
Revises: co0015
Create Date: 2026-11-25 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "co0016"
down_revision: str | None = "co0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=_schema()) as table:
        table.add_column(sa.Column("recovered_after_claim",
                                   shared.db.Amount(precision=20, scale=4), nullable=True))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=_schema()) as table:
        table.drop_column("recovered_after_claim")
