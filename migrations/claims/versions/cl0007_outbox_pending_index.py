"""claims: an index of the outbox's pending messages in delivery order (the delivery runs and
the backlog gauge read them without scanning the delivered ones)

Revision ID: cl0007
Revises: cl0006
Create Date: 2026-11-24 03:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cl0007"
down_revision: str | None = "cl0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("delivered_at IS NULL")


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "claims"


def upgrade() -> None:
    op.create_index("ix_outbox_pending", "outbox", ["created_at", "id"], schema=_schema(),
                    postgresql_where=PENDING, sqlite_where=PENDING)  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", "outbox", schema=_schema())
