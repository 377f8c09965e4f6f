"""Migration un0016: the indicators declared in a buyer's one slot, which every policyholder wrote
into, become one pending declaration kept unattributed (no party's own, the buyer's registrant's
no more than another's); buyers with nothing declared get none. Downgrading puts them back in the
slot."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, MetaData, String, Table, insert, select, update

from services.underwriting import models as m
from shared.db import build_engine
from shared.migrations import downgrade, upgrade
from tests.shared.test_party_roles_migration import _filled, _migrate

_SLOT = Table("buyers", MetaData(schema="underwriting"), Column("id", String),
              Column("declared_indicators", JSON))  # fmt: skip


async def test_declared_indicators_become_an_unattributed_declaration(
    scratch_database: Any,
) -> None:
    url = scratch_database("underwriting")
    _migrate(upgrade, "underwriting", url, "un0015")
    engine = build_engine(url)
    registrants = {"buy_1": "ph-1", "buy_2": "underwriter:uw-1", "buy_3": "ph-3"}
    slots = {"buy_1": {"current_ratio": "0.31"}, "buy_2": {"dso_days": "40"}, "buy_3": None}
    async with engine.begin() as connection:
        for ident, registrant in registrants.items():
            await connection.execute(insert(m.Buyer.__table__).values(**_filled(
                m.Buyer.__table__, id=ident, country="DE", registration_key=ident,
                registered_by=registrant, indicators={})))  # fmt: skip
            await connection.execute(update(_SLOT).where(_SLOT.c.id == ident)
                                     .values(declared_indicators=slots[ident]))  # fmt: skip
    _migrate(upgrade, "underwriting", url, "un0016")
    table = m.IndicatorDeclaration.__table__
    async with engine.connect() as connection:
        rows = (await connection.execute(select(
            table.c.buyer_id, table.c.policyholder_id, table.c.indicators, table.c.status,
            table.c.declared_by))).all()  # fmt: skip
    assert sorted(tuple(r) for r in rows) == [
        ("buy_1", None, {"current_ratio": "0.31"}, "pending", "migration:un0016"),
        ("buy_2", None, {"dso_days": "40"}, "pending", "migration:un0016"),
    ]
    _migrate(downgrade, "underwriting", url, "un0015")
    async with engine.connect() as connection:
        back = dict((await connection.execute(select(_SLOT.c.id, _SLOT.c.declared_indicators)
                                              )).all())  # fmt: skip
    assert back == slots
    await engine.dispose()
