"""underwriting: indicators a policyholder declares are kept per buyer and declaring policyholder
(`indicator_declarations`: who declared them, when, and whether an underwriter confirmed them), no
longer in one slot of the buyer (`buyers.declared_indicators`) that every policyholder overwrote and
read

Each buyer's declared indicators become one pending declaration kept unattributed
(`policyholder_id` null: an underwriter may still confirm it, naming it by a null): every
policyholder wrote into that one slot, so it is no party's own, and giving it to the party that
registered the buyer would show that party (and its portfolio health) another's figures. Who
declared it and when were never recorded: `declared_by` is `migration:un0016` and `declared_at`
the migration's time.
Downgrade puts each buyer's pending declarations back in its one slot (the latest declared last).

Revision ID: un0016
Revises: un0015
Create Date: 2026-11-26 09:00:00.000000
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "un0016"
down_revision: str | None = "un0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "underwriting"
CHUNK = 10_000


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else SCHEMA


def _buyers() -> sa.Table:
    return sa.Table("buyers", sa.MetaData(), sa.Column("id", sa.String),
                    sa.Column("declared_indicators", sa.JSON), schema=_schema())  # fmt: skip


def _declarations() -> sa.Table:
    return sa.Table(
        "indicator_declarations", sa.MetaData(), sa.Column("id", sa.String),
        sa.Column("created_at", shared.db.UTCDateTime()), sa.Column("buyer_id", sa.String),
        sa.Column("policyholder_id", sa.String), sa.Column("indicators", sa.JSON),
        sa.Column("status", sa.String), sa.Column("declared_by", sa.String),
        sa.Column("declared_at", shared.db.UTCDateTime()), schema=_schema(),
    )  # fmt: skip


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


def upgrade() -> None:
    op.create_table(
        "indicator_declarations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("buyer_id", sa.String(length=40), nullable=False),
        sa.Column("policyholder_id", sa.String(length=64), nullable=True),
        sa.Column("indicators", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("declared_by", sa.String(length=200), nullable=False),
        sa.Column("declared_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["buyer_id"], [f"{SCHEMA}.buyers.id"],
                                name=op.f("fk_indicator_declarations_buyer_id_buyers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_declarations")),
        sa.UniqueConstraint("buyer_id", "policyholder_id",
                            name=op.f("uq_indicator_declarations_buyer_id_policyholder_id")),
        schema=SCHEMA,
    )  # fmt: skip
    buyers, declarations = _buyers(), _declarations()
    bind = op.get_bind()
    now = shared.db.utcnow()
    rows = [
        {"id": shared.db.new_id("dcl"), "created_at": now, "buyer_id": buyer_id,
         "policyholder_id": None, "indicators": _json(declared), "status": "pending",
         "declared_by": "migration:un0016", "declared_at": now}
        for buyer_id, declared in bind.execute(
            sa.select(buyers.c.id, buyers.c.declared_indicators)
            .where(buyers.c.declared_indicators.is_not(None)))
        if _json(declared)
    ]  # fmt: skip
    for start in range(0, len(rows), CHUNK):
        bind.execute(declarations.insert(), rows[start : start + CHUNK])
    with op.batch_alter_table("buyers", schema=_schema()) as table:
        table.drop_column("declared_indicators")


def downgrade() -> None:
    with op.batch_alter_table("buyers", schema=_schema()) as table:
        table.add_column(sa.Column("declared_indicators", sa.JSON(), nullable=True))
    buyers, declarations = _buyers(), _declarations()
    bind = op.get_bind()
    merged: dict[str, dict[str, Any]] = {}
    for buyer_id, indicators in bind.execute(
        sa.select(declarations.c.buyer_id, declarations.c.indicators)
        .where(declarations.c.status == "pending")
        .order_by(declarations.c.declared_at, declarations.c.id)
    ):  # fmt: skip
        merged[buyer_id] = {**merged.get(buyer_id, {}), **_json(indicators)}
    statement = (buyers.update().where(buyers.c.id == sa.bindparam("buyer"))
                 .values(declared_indicators=sa.bindparam("declared")))  # fmt: skip
    params = [{"buyer": b, "declared": d} for b, d in merged.items()]
    for start in range(0, len(params), CHUNK):
        bind.execute(statement, params[start : start + CHUNK])
    op.drop_table("indicator_declarations", schema=SCHEMA)
