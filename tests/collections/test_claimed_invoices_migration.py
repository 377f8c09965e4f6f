"""The migration co0015: each invoice of a case says whether the paid claim the case collects
for covered it. Every invoice of a case with a claim was shared with the insurer until then, so
it is marked claimed; a mandate's (no claim) is not. Downgrading drops the mark."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, inspect, select

from services.collections import models as m
from shared.db import build_engine
from shared.migrations import downgrade, upgrade
from tests.shared.test_party_roles_migration import _filled, _migrate


async def test_the_invoices_of_a_case_with_a_claim_are_marked_claimed_and_a_mandates_are_not(
    scratch_database: Any,
) -> None:
    url = scratch_database("collections")
    _migrate(upgrade, "collections", url, "co0014")
    engine = build_engine(url)
    cases, invoices = m.Case.__table__, m.CaseInvoice.__table__
    try:
        async with engine.begin() as connection:
            for ident, claim in (("case_sub", "clm_1"), ("case_man", None)):
                await connection.execute(insert(cases).values(**_filled(
                    cases, id=ident, claim_id=claim, loss_payee_ids=[])))  # fmt: skip
                for number in ("K1", "K3"):
                    await connection.execute(insert(invoices).values(
                        id=f"cinv_{ident}_{number}", case_id=ident, number=number,
                        amount=Decimal("100.00"), due_date=dt.date(2026, 10, 15),
                        paid=Decimal("0.00")))  # fmt: skip
        _migrate(upgrade, "collections", url, "co0015")
        async with engine.connect() as connection:
            rows = await connection.execute(select(invoices.c.id, invoices.c.claimed))
            assert dict(rows.all()) == {
                "cinv_case_sub_K1": True,
                "cinv_case_sub_K3": True,
                "cinv_case_man_K1": False,
                "cinv_case_man_K3": False,
            }
        _migrate(downgrade, "collections", url, "co0014")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: [
                    col["name"]
                    for col in inspect(c).get_columns(
                        "case_invoices", schema=None if c.dialect.name == "sqlite" else m.SCHEMA
                    )
                ]
            )
            assert "claimed" not in columns
    finally:
        await engine.dispose()
