"""underwriting: room on the pages of buyers and limit amounts for their in-place updates, and the
grade and limit histories without their foreign keys

A whole-book re-grade updates every buyer of a country (its grade) and every halved limit's running
amount (its end date). On a full page the new version of the row goes to another page and every
index of the table takes a new entry; with room on the page (fillfactor 50) it stays there and no
index is touched (a heap-only update): the buyers' update of a re-grade runs ~3× faster. The
setting applies to pages written from now on (a table rewritten by VACUUM FULL takes it at once).

The grade entries and the limit amounts are append-only histories written only from their buyer's
or limit's row, read (and on PostgreSQL locked) in the same transaction, and buyers and limits are
never deleted: the foreign keys checked each entry against a row the statement had just read, at
~25 % of the cost of writing it. (The events' parties went the same way in un0007.)

Revision ID: un0013
Revises: un0012
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "un0013"
down_revision: str | None = "un0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UPDATED_IN_PLACE = ("buyers", "limit_amounts")
_FOREIGN_KEYS = (
    ("buyer_grades", "fk_buyer_grades_buyer_id_buyers", "buyers", "buyer_id"),
    ("limit_amounts", "fk_limit_amounts_limit_id_credit_limits", "credit_limits", "limit_id"),
)


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite has no fill factor
        for table in _UPDATED_IN_PLACE:
            op.execute(f"ALTER TABLE underwriting.{table} SET (fillfactor = 50)")
    for table, name, _, _ in _FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=_schema()) as batch:  # SQLite: table rebuilt
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, name, referred, column in _FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=_schema()) as batch:
            batch.create_foreign_key(name, referred, [column], ["id"], referent_schema=_schema())
    if op.get_bind().dialect.name == "postgresql":
        for table in _UPDATED_IN_PLACE:
            op.execute(f"ALTER TABLE underwriting.{table} RESET (fillfactor)")
