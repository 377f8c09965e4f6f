"""collections: an index of the cases in the lists' order (created_at, id), so that a collector's
list of every case reads a page by index instead of sorting the whole book

Revision ID: co0013
Revises: co0012
Create Date: 2026-11-24 18:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "co0013"
down_revision: str | None = "co0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def upgrade() -> None:
    op.create_index("ix_cases_created_id", "cases", ["created_at", "id"], schema=_schema())


def downgrade() -> None:
    op.drop_index("ix_cases_created_id", "cases", schema=_schema())
