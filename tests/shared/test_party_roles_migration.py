"""The migrations that make a party its role and its id (un0015, cl0010, co0014): each stored
`event_parties` row takes the role its writer gave the id (the policyholder of the policy, claim
or case; the bank of an assignment, of a claim's policy, a case's loss payee), a row no writer
could have written is dropped, and each webhook endpoint's owner takes the role its id has in the
service's records (one role only), else none, disabled. Downgrading gives the ids back."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Date, DateTime, Integer, Numeric, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.claims import models as claims_models
from services.collections import models as collections_models
from services.underwriting import models as uw_models
from shared.db import build_engine, utcnow
from shared.events import EventTables
from shared.migrations import downgrade, upgrade
from shared.webhooks import WebhookTables

NOW = utcnow()


def _migrate(step: Any, service: str, url: str, revision: str) -> None:
    """Alembic runs its own event loop: in a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(step, service, url, revision).result()


def _filled(table: Table, **given: Any) -> dict[str, Any]:
    """A row of `table`: what is given, and a plain value for every other required column."""
    row = dict(given)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None:
            continue
        if column.default is not None and column.name != "id":
            continue
        kind = getattr(column.type, "impl_instance", column.type)
        row[column.name] = (
            False if isinstance(kind, Boolean) else
            NOW if isinstance(kind, DateTime) else
            dt.date(2026, 1, 1) if isinstance(kind, Date) else
            Decimal("0") if isinstance(kind, Numeric) else
            0 if isinstance(kind, Integer) else
            {} if isinstance(kind, JSON) else
            f"x-{column.name}"[: getattr(kind, "length", None) or 64]
        )  # fmt: skip
    return row


async def _events(
    engine: AsyncEngine, events: EventTables, heard: list[tuple[int, str, str, dict[str, Any]]]
) -> None:
    """Events (seq, type, subject, data) and, in `data["_parties"]`, the ids that heard each, as
    the writers before stored them (the id alone)."""
    async with engine.begin() as connection:
        for seq, kind, subject, data in heard:
            parties = data.pop("_parties")
            await connection.execute(insert(events.events).values(
                seq=seq, id=f"evt_m{seq}", type=kind, occurred_at=NOW, subject_id=subject,
                data=data))  # fmt: skip
            for party in parties:
                await connection.execute(
                    insert(events.parties).values(party_id=party, event_seq=seq)
                )


async def _endpoints(engine: AsyncEngine, hooks: WebhookTables, parties: list[str]) -> None:
    async with engine.begin() as connection:
        for n, party in enumerate(parties):
            await connection.execute(insert(hooks.endpoints).values(
                id=f"whe_m{n}", party_id=party, url="https://hooks.example.com/x",
                event_types=[], secret="whsec_x", status="active", created_at=NOW,
                created_by="someone", after_seq=0, head_attempts=0))  # fmt: skip


async def _heard(engine: AsyncEngine, events: EventTables) -> set[tuple[int, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(events.parties.c.event_seq, events.parties.c.party_id)
        )
        return {(seq, party) for seq, party in rows}


async def _owners(engine: AsyncEngine, hooks: WebhookTables) -> dict[str, tuple[Any, ...]]:
    table = hooks.endpoints
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(table.c.party_id, table.c.party_role, table.c.status)
        )
        return {party: (role, status) for party, role, status in rows}


async def test_underwriting_parties_take_the_role_of_the_policy_or_the_assignment(
    scratch_database: Any,
) -> None:
    url = scratch_database("underwriting")
    _migrate(upgrade, "underwriting", url, "un0014")
    engine = build_engine(url)
    m = uw_models
    async with engine.begin() as connection:
        for ident, holder in (("pol_1", "ph-1"), ("pol_2", "both-1")):
            await connection.execute(insert(m.Policy.__table__).values(
                **_filled(m.Policy.__table__, id=ident, policyholder_id=holder,
                          currency="EUR", start_date=dt.date(2026, 1, 1),
                          end_date=dt.date(2026, 12, 31))))  # fmt: skip
        for ident, bank in (("asg_1", "bk-1"), ("asg_2", "both-1")):
            await connection.execute(insert(m.PolicyAssignment.__table__).values(
                **_filled(m.PolicyAssignment.__table__, id=ident, policy_id="pol_1",
                          bank_id=bank)))  # fmt: skip
        await connection.execute(insert(m.Buyer.__table__).values(
            **_filled(m.Buyer.__table__, id="buy_1", country="DE")))  # fmt: skip
        await connection.execute(insert(m.CreditLimit.__table__).values(
            **_filled(m.CreditLimit.__table__, id="lim_1", policy_id="pol_1",
                      buyer_id="buy_1")))  # fmt: skip
    await _events(engine, m.events, [
        (1, "limit.changed", "lim_1", {"policy_id": "pol_1",
                                       "_parties": ["ph-1", "bk-1", "both-1"]}),
        (2, "limit.changed", "lim_2", {"policy_id": "pol_2", "_parties": ["both-1"]}),
        (3, "buyer.grade_changed", "buy_1", {"buyer_id": "buy_1",
                                             "_parties": ["ph-1", "bk-1", "both-1"]}),
        (4, "limit.changed", "lim_3", {"policy_id": "pol_9", "_parties": ["ghost"]}),
    ])  # fmt: skip
    await _endpoints(engine, m.webhooks, ["ph-1", "bk-1", "both-1", "nobody"])
    _migrate(upgrade, "underwriting", url, "un0015")
    assert await _heard(engine, m.events) == {
        (1, "policyholder:ph-1"), (1, "bank:bk-1"), (1, "bank:both-1"),
        (2, "policyholder:both-1"),
        (3, "policyholder:ph-1"), (3, "bank:bk-1"), (3, "bank:both-1"),
    }  # fmt: skip
    assert await _owners(engine, m.webhooks) == {
        "ph-1": ("policyholder", "active"), "bk-1": ("bank", "active"),
        "both-1": (None, "disabled"), "nobody": (None, "disabled"),
    }  # fmt: skip
    _migrate(downgrade, "underwriting", url, "un0014")
    assert await _heard(engine, m.events) == {
        (1, "ph-1"), (1, "bk-1"), (1, "both-1"), (2, "both-1"), (3, "ph-1"), (3, "bk-1"),
        (3, "both-1"),
    }  # fmt: skip
    await engine.dispose()


@pytest.mark.parametrize("service", ["claims", "collections"])
async def test_claims_and_cases_parties_take_the_role_of_the_policyholder_or_the_bank(
    scratch_database: Any, service: str
) -> None:
    """A claim's (a case's) policyholder (creditor) is `policyholder:`, its banks (loss payees)
    `bank:`; one that is both, written once, keeps both; an event of no claim (case) is
    dropped."""
    url = scratch_database(service)
    before, after = {"claims": ("cl0009", "cl0010"), "collections": ("co0013", "co0014")}[service]
    _migrate(upgrade, service, url, before)
    engine = build_engine(url)
    if service == "claims":
        m: Any = claims_models
        table = m.Claim.__table__
        rows = [_filled(table, id="sub_1", policyholder_id="ph-1",
                        terms={"assigned_bank_ids": ["bk-1"]}),
                _filled(table, id="sub_2", policyholder_id="ph-2",
                        terms={"assigned_bank_ids": ["ph-2"]})]  # fmt: skip
        kind = "claim.paid"
    else:
        m = collections_models
        table = m.Case.__table__
        rows = [_filled(table, id="sub_1", creditor_id="ph-1", loss_payee_ids=["bk-1"]),
                _filled(table, id="sub_2", creditor_id="ph-2", loss_payee_ids=["ph-2"])]  # fmt: skip
        kind = "case.closed"
    async with engine.begin() as connection:
        for row in rows:
            await connection.execute(insert(table).values(**row))
    await _events(engine, m.events, [
        (1, kind, "sub_1", {"_parties": ["ph-1", "bk-1"]}),
        (2, kind, "sub_2", {"_parties": ["ph-2"]}),
        (3, kind, "sub_gone", {"_parties": ["ph-1"]}),
    ])  # fmt: skip
    await _endpoints(engine, m.webhooks, ["ph-1", "bk-1", "ph-2", "ph-new"])
    _migrate(upgrade, service, url, after)
    assert await _heard(engine, m.events) == {
        (1, "policyholder:ph-1"), (1, "bank:bk-1"), (2, "policyholder:ph-2"), (2, "bank:ph-2"),
    }  # fmt: skip
    assert await _owners(engine, m.webhooks) == {
        "ph-1": ("policyholder", "active"), "bk-1": ("bank", "active"),
        "ph-2": (None, "disabled"), "ph-new": (None, "disabled"),
    }  # fmt: skip
    _migrate(downgrade, service, url, before)
    assert await _heard(engine, m.events) == {(1, "ph-1"), (1, "bk-1"), (2, "ph-2")}
    await engine.dispose()
