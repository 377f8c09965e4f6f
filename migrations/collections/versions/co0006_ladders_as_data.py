"""collections: the escalation ladders as data

Revision ID: co0006
Revises: co0005
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "co0006"
down_revision: str | None = "co0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ladders the seeds name (domain.md, Collections), exactly as they were constants until now:
# (name, days past the oldest due date, stage), lowest rung first.
SEEDED_RUNGS = [
    ("reminder_15_30_45", 15, "reminder_letter"),
    ("reminder_15_30_45", 30, "phone_collection"),
    ("reminder_15_30_45", 45, "legal"),
    ("legal_30_60_90", 30, "amicable"),
    ("legal_30_60_90", 60, "lawyer_letter"),
    ("legal_30_60_90", 90, "lawsuit"),
]


def upgrade() -> None:
    ladders = op.create_table(
        "ladders",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("name", "days_past_due", name=op.f("pk_ladders")),
        sa.UniqueConstraint("name", "stage", name=op.f("uq_ladders_name_stage")),
        schema="collections",
    )
    assert ladders is not None
    op.bulk_insert(
        ladders,
        [{"name": name, "days_past_due": days, "stage": stage}
         for name, days, stage in SEEDED_RUNGS],
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("ladders", schema="collections")
