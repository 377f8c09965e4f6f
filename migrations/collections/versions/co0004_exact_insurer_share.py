"""collections: the insurer's share as an exact fraction

Revision ID: co0004
Revises: co0003
Create Date: 2026-11-23 21:30:00.000000
"""

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "co0004"
down_revision: str | None = "co0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def _cases() -> sa.TableClause:
    return sa.table(
        "cases",
        sa.column("id", sa.String()),
        sa.column("insurer_share_pct", shared.db.Exact(precision=9, scale=4)),
        sa.column("insurer_share_numerator", sa.Text()),
        sa.column("insurer_share_denominator", sa.Text()),
        schema=_schema(),
    )


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=_schema()) as batch:
        batch.add_column(sa.Column("insurer_share_numerator", sa.Text(), nullable=True))
        batch.add_column(sa.Column("insurer_share_denominator", sa.Text(), nullable=True))
    # The percentages already stored become fractions over 100 (read through the exact type, so
    # SQLite's scaled integers come back as the decimals they are).
    cases = _cases()
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(cases.c.id, cases.c.insurer_share_pct).where(
            cases.c.insurer_share_pct.is_not(None)
        )
    ).all()
    for case_id, pct in rows:
        connection.execute(
            cases.update()
            .where(cases.c.id == case_id)
            .values(insurer_share_numerator=str(pct), insurer_share_denominator="100")
        )
    with op.batch_alter_table("cases", schema=_schema()) as batch:
        batch.drop_column("insurer_share_pct")


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=_schema()) as batch:
        batch.add_column(
            sa.Column("insurer_share_pct", shared.db.Exact(precision=9, scale=4), nullable=True)
        )
    cases = _cases()
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            cases.c.id, cases.c.insurer_share_numerator, cases.c.insurer_share_denominator
        ).where(cases.c.insurer_share_numerator.is_not(None))
    ).all()
    for case_id, numerator, denominator in rows:
        pct = (Decimal(numerator) * 100 / Decimal(denominator)).quantize(
            Decimal("0.0001"), ROUND_HALF_UP
        )
        connection.execute(
            cases.update().where(cases.c.id == case_id).values(insurer_share_pct=pct)
        )
    with op.batch_alter_table("cases", schema=_schema()) as batch:
        batch.drop_column("insurer_share_denominator")
        batch.drop_column("insurer_share_numerator")
