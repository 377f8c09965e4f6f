"""underwriting: grades kept as a history; payment terms on each amount of a limit

Revision ID: un0003
Revises: un0002
Create Date: 2026-11-23 21:30:00.000000
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "un0003"
down_revision: str | None = "un0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "underwriting"


def _table(name: str, *columns: sa.Column[Any], schema: str) -> sa.Table:
    """A table as the data steps see it (a `Table`, so that SQLite maps its schema away)."""
    return sa.Table(name, sa.MetaData(), *columns, schema=schema)


def _altered_schema() -> str | None:
    """The schema of a table altered in place (SQLite has none; Alembic does not map it away)."""
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def upgrade() -> None:
    op.create_table(
        "buyer_grades",
        sa.Column("buyer_id", sa.String(length=40), nullable=False),
        sa.Column("graded_on", sa.Date(), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("factors", sa.JSON(), nullable=False),
        sa.Column("indicators", sa.JSON(), nullable=False),
        sa.Column("country_risk_level", sa.Integer(), nullable=True),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["buyer_id"], [f"{SCHEMA}.buyers.id"], name=op.f("fk_buyer_grades_buyer_id_buyers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buyer_grades")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_buyer_grades_buyer_graded",
        "buyer_grades",
        ["buyer_id", "graded_on", "created_at"],
        unique=False,
        schema=SCHEMA,
    )
    # Each buyer's grade as it stands becomes its first entry (which also answers for the dates
    # before it): the signals already recorded were not kept as a history.
    buyers = _table(
        "buyers", sa.Column("id"), sa.Column("graded_at"), sa.Column("grade"),
        sa.Column("grade_factors"), sa.Column("indicators"), schema=SCHEMA,
    )  # fmt: skip
    grades = _table(
        "buyer_grades", sa.Column("id"), sa.Column("created_at"), sa.Column("buyer_id"),
        sa.Column("graded_on"), sa.Column("grade"), sa.Column("factors"),
        sa.Column("indicators"), sa.Column("country_risk_level"), sa.Column("cause"),
        sa.Column("created_by"), schema=SCHEMA,
    )  # fmt: skip
    op.execute(
        grades.insert().from_select(
            [c.name for c in grades.columns],
            sa.select(
                sa.literal("grd_") + buyers.c.id,
                buyers.c.graded_at,
                buyers.c.id,
                sa.literal(dt.datetime.now(dt.UTC).date(), sa.Date),
                buyers.c.grade,
                buyers.c.grade_factors,
                buyers.c.indicators,
                sa.null(),
                sa.literal("registration"),
                sa.literal("migration"),
            ),
        )
    )
    op.add_column(
        "limit_amounts",
        sa.Column("payment_terms_days", sa.Integer(), nullable=True),
        schema=_altered_schema(),
    )
    limits = _table("credit_limits", sa.Column("id"), sa.Column("payment_terms_days"),
                      schema=SCHEMA)  # fmt: skip
    amounts = _table("limit_amounts", sa.Column("limit_id"), sa.Column("payment_terms_days"),
                       schema=SCHEMA)  # fmt: skip
    op.execute(
        amounts.update().values(
            payment_terms_days=sa.select(limits.c.payment_terms_days)
            .where(limits.c.id == amounts.c.limit_id)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table("credit_limits", schema=_altered_schema()) as batch:
        batch.drop_column("payment_terms_days")


def downgrade() -> None:
    with op.batch_alter_table("credit_limits", schema=_altered_schema()) as batch:
        batch.add_column(sa.Column("payment_terms_days", sa.Integer(), nullable=True))
    limits = _table("credit_limits", sa.Column("id"), sa.Column("payment_terms_days"),
                      schema=SCHEMA)  # fmt: skip
    amounts = _table("limit_amounts", sa.Column("limit_id"), sa.Column("payment_terms_days"),
                       sa.Column("effective_from"), schema=SCHEMA)  # fmt: skip
    op.execute(
        limits.update().values(
            payment_terms_days=sa.select(amounts.c.payment_terms_days)
            .where(amounts.c.limit_id == limits.c.id)
            .order_by(amounts.c.effective_from.desc())
            .limit(1)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table("limit_amounts", schema=_altered_schema()) as batch:
        batch.drop_column("payment_terms_days")
    op.drop_index("ix_buyer_grades_buyer_graded", table_name="buyer_grades", schema=SCHEMA)
    op.drop_table("buyer_grades", schema=SCHEMA)
