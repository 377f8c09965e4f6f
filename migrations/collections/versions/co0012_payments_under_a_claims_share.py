"""collections: each payment names the paid claim whose share split it (none before any claim), so
that the recoveries under one share are shared as their total is

Revision ID: co0012
Revises: co0011
Create Date: 2026-11-24 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "co0012"
down_revision: str | None = "co0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def upgrade() -> None:
    schema = _schema()
    with op.batch_alter_table("payments", schema=schema) as table:
        table.add_column(sa.Column("claim_id", sa.String(length=40), nullable=True))
    payments = sa.table("payments", sa.column("case_id"), sa.column("created_at"),
                        sa.column("claim_id"), schema=schema)  # fmt: skip
    cases = sa.table("cases", sa.column("id"), sa.column("claim_id"), schema=schema)
    activities = sa.table("activities", sa.column("case_id"), sa.column("kind"),
                          sa.column("created_at"), schema=schema)  # fmt: skip
    # A case's claim split the payments recorded since it took the case over (its `subrogation`
    # activity), or all of them when the claim opened the case.
    taken_over = (
        sa.select(sa.func.min(activities.c.created_at))
        .where(activities.c.case_id == payments.c.case_id, activities.c.kind == "subrogation")
        .scalar_subquery()
    )
    claim_of_case = (
        sa.select(cases.c.claim_id).where(cases.c.id == payments.c.case_id).scalar_subquery()
    )
    op.execute(
        payments.update()
        .where(claim_of_case.is_not(None),
               sa.or_(taken_over.is_(None), payments.c.created_at >= taken_over))
        .values(claim_id=claim_of_case)
    )  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=_schema()) as table:
        table.drop_column("claim_id")
