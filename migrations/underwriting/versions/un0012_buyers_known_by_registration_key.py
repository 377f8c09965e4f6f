"""underwriting: a buyer is unique on its country and registration key (the registration number
however written: "HRB 1", " hrb1" are one company), no longer on the number as written

Each buyer gets the key of its number. Where buyers already registered twice under spellings of one
number (same country, same key), the migration does not fail and merges nothing (limits, requests,
claims name each buyer's id): the one whose number is already written as the key holds it, else the
first registered (oldest `created_at`, then id); each other keeps its number as written and no key,
so it is no longer found by a lookup nor blocks a registration, and is named in the migration's log
for staff to merge. New registrations of any spelling then meet the holder (409).

Revision ID: un0012
Revises: un0011
Create Date: 2026-11-25 10:00:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.underwriting.rules.policy import registration_key

revision: str = "un0012"
down_revision: str | None = "un0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")
CHUNK = 10_000


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def _buyers() -> sa.Table:
    return sa.Table(
        "buyers", sa.MetaData(), sa.Column("id", sa.String), sa.Column("created_at"),
        sa.Column("country", sa.String), sa.Column("registration_number", sa.String),
        sa.Column("registration_key", sa.String), schema=_schema(),
    )  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("buyers", schema=_schema()) as table:
        table.add_column(sa.Column("registration_key", sa.String(length=100), nullable=True))
    buyers = _buyers()
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(buyers.c.id, buyers.c.country, buyers.c.registration_number).order_by(
            buyers.c.created_at, buyers.c.id
        )
    ).all()
    holders: dict[tuple[str, str], str] = {}
    doubles: list[tuple[str, str, str]] = []  # (double, holder, key)
    by_key: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for buyer_id, country, number in rows:
        by_key.setdefault((country, registration_key(number)), []).append((buyer_id, number))
    for (country, key), spellings in by_key.items():
        # The number already written as its key keeps it (nothing about it changes).
        holder = next((b for b, number in spellings if number == key), spellings[0][0])
        holders[(country, key)] = holder
        doubles += [(b, holder, key) for b, _ in spellings if b != holder]
    keyed = [{"holder": holder, "key": key} for (_, key), holder in holders.items()]
    statement = (
        buyers.update()
        .where(buyers.c.id == sa.bindparam("holder"))
        .values(registration_key=sa.bindparam("key"))
    )
    for start in range(0, len(keyed), CHUNK):  # one statement per chunk, not per buyer
        bind.execute(statement, keyed[start : start + CHUNK])
    for double, holder, key in doubles:
        log.warning("buyer %s is a double of buyer %s (registration key %s): left without a key "
                    "for staff to merge", double, holder, key)  # fmt: skip
    with op.batch_alter_table("buyers", schema=_schema()) as table:
        table.drop_constraint("uq_buyers_country_registration_number", type_="unique")
        table.create_unique_constraint(
            "uq_buyers_country_registration_key", ["country", "registration_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("buyers", schema=_schema()) as table:
        table.drop_constraint("uq_buyers_country_registration_key", type_="unique")
        table.create_unique_constraint(
            "uq_buyers_country_registration_number", ["country", "registration_number"]
        )
        table.drop_column("registration_key")
