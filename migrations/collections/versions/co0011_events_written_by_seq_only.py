"""collections: events without an index on their type or subject (every reader goes by `seq`) and the
parties of an event without a foreign key (written with it, never deleted): fewer writes per event

Revision ID: co0011
Revises: co0010
Create Date: 2026-11-24 06:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "co0011"
down_revision: str | None = "co0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_event_parties_event_seq_events"


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def upgrade() -> None:
    op.drop_index("ix_events_type", table_name="events", schema=_schema())
    op.drop_index("ix_events_subject_id", table_name="events", schema=_schema())
    with op.batch_alter_table("event_parties", schema=_schema()) as table:
        table.drop_constraint(FOREIGN_KEY, type_="foreignkey")


def downgrade() -> None:
    schema = _schema()
    with op.batch_alter_table("event_parties", schema=schema) as table:
        table.create_foreign_key(FOREIGN_KEY, "events", ["event_seq"], ["seq"],
                                 referent_schema=schema, ondelete="CASCADE")  # fmt: skip
    op.create_index("ix_events_subject_id", "events", ["subject_id"], schema=schema)
    op.create_index("ix_events_type", "events", ["type"], schema=schema)
