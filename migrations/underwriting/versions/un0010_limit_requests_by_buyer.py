"""underwriting: limit requests by buyer (and policy), so that finding who hears of a buyer's grade
reads the requests on it, not the whole table (one buyer's signal, or each slice of a country's
re-grade)

Revision ID: un0010
Revises: un0009
Create Date: 2026-11-24 14:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "un0010"
down_revision: str | None = "un0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def upgrade() -> None:
    op.create_index("ix_limit_requests_buyer_policy", "limit_requests", ["buyer_id", "policy_id"],
                    schema=_schema())  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_limit_requests_buyer_policy", table_name="limit_requests", schema=_schema())
