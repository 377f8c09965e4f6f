"""underwriting: a country or a buyer is on the sanctions list once (a unique index each), so that
lifting its listing lifts the sanction; twin listings already kept are folded into the oldest

Revision ID: un0008
Revises: un0007
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "un0008"
down_revision: str | None = "un0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TARGETS = ("country", "buyer_id")


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def _fold_twins(schema: str | None, column: str) -> None:
    """Delete every listing of a target that an older listing of the same target precedes (the
    target stays sanctioned by the oldest; a twin's reason is lost, its id answers 404)."""
    sanctions = sa.table("sanctions", sa.column("id"), sa.column("created_at"),
                         sa.column(column), schema=schema)  # fmt: skip
    older = sanctions.alias("older")
    precedes = sa.or_(
        older.c.created_at < sanctions.c.created_at,
        sa.and_(older.c.created_at == sanctions.c.created_at, older.c.id < sanctions.c.id),
    )
    twin = sa.exists().where(older.c[column] == sanctions.c[column], precedes)
    op.execute(sanctions.delete().where(sanctions.c[column].is_not(None), twin))


def upgrade() -> None:
    schema = _schema()
    for column in TARGETS:
        _fold_twins(schema, column)
        op.drop_index(f"ix_sanctions_{column}", table_name="sanctions", schema=schema)
        op.create_index(f"ix_sanctions_{column}", "sanctions", [column], unique=True,
                        schema=schema)  # fmt: skip


def downgrade() -> None:
    schema = _schema()
    for column in TARGETS:
        op.drop_index(f"ix_sanctions_{column}", table_name="sanctions", schema=schema)
        op.create_index(f"ix_sanctions_{column}", "sanctions", [column], unique=False,
                        schema=schema)  # fmt: skip
