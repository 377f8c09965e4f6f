"""collections: each invoice of a case says whether the paid claim the case collects for covered
it (`claimed`), so that only what is recovered on the claim's invoices is shared with the insurer;
what a mandate taken over recovers on an invoice outside the claim is, after the fee, the
policyholder's

Every invoice of a case with a claim was shared as the claim's until now: it is marked claimed;
a mandate's (no claim) is not.

Revision ID: co0015
Revises: co0014
Create Date: 2026-11-25 06:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "co0015"
down_revision: str | None = "co0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def upgrade() -> None:
    schema = _schema()
    with op.batch_alter_table("case_invoices", schema=schema) as table:
        table.add_column(
            sa.Column("claimed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    invoices = sa.table("case_invoices", sa.column("case_id"), sa.column("claimed"),
                        schema=schema)  # fmt: skip
    cases = sa.table("cases", sa.column("id"), sa.column("claim_id"), schema=schema)
    with_claim = sa.select(cases.c.id).where(cases.c.claim_id.is_not(None))
    op.execute(invoices.update().where(invoices.c.case_id.in_(with_claim)).values(claimed=True))


def downgrade() -> None:
    with op.batch_alter_table("case_invoices", schema=_schema()) as table:
        table.drop_column("claimed")
