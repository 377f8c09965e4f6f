"""Every claims query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from services.claims.models import (
    Base,
    Claim,
    ClaimDocument,
    ClaimInvoice,
    Dispute,
    NotifiedInvoice,
    OverdueNotification,
)

Row = TypeVar("Row", bound=Base)


async def by_id(session: AsyncSession, model: type[Row], ident: str) -> Row | None:
    return await session.get(model, ident)


async def claim(session: AsyncSession, claim_id: str, *, lock: bool = False) -> Claim | None:
    query = select(Claim).where(Claim.id == claim_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def claims_listed(
    *, policyholder_id: str | None, status: str | None, policy_id: str | None
) -> Select[Any]:
    """The claims a list shows (a policyholder's own, or all), to be paged."""
    statement = select(Claim)
    if policyholder_id is not None:
        statement = statement.where(Claim.policyholder_id == policyholder_id)
    if status:
        statement = statement.where(Claim.status == status)
    if policy_id:
        statement = statement.where(Claim.policy_id == policy_id)
    return statement


def _grouped(rows: Sequence[Any], key: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for row in rows:
        out.setdefault(getattr(row, key), []).append(row)
    return out


async def documents_of(
    session: AsyncSession, claim_ids: Sequence[str]
) -> dict[str, list[ClaimDocument]]:
    """The documents of some claims, without their content (that is read only to download)."""
    rows = await session.execute(
        select(ClaimDocument).options(defer(ClaimDocument.content))
        .where(ClaimDocument.claim_id.in_(claim_ids))
        .order_by(ClaimDocument.created_at, ClaimDocument.id)
    )  # fmt: skip
    return _grouped(rows.scalars().all(), "claim_id")


async def invoices_of(
    session: AsyncSession, claim_ids: Sequence[str]
) -> dict[str, list[ClaimInvoice]]:
    rows = await session.execute(
        select(ClaimInvoice).where(ClaimInvoice.claim_id.in_(claim_ids))
        .order_by(ClaimInvoice.shipment_date, ClaimInvoice.due_date, ClaimInvoice.number)
    )  # fmt: skip
    return _grouped(rows.scalars().all(), "claim_id")


async def disputes_of(session: AsyncSession, claim_ids: Sequence[str]) -> dict[str, list[Dispute]]:
    rows = await session.execute(
        select(Dispute).where(Dispute.claim_id.in_(claim_ids))
        .order_by(Dispute.created_at, Dispute.id)
    )  # fmt: skip
    return _grouped(rows.scalars().all(), "claim_id")


async def open_disputes(session: AsyncSession, claim_id: str) -> int:
    count = await session.execute(
        select(func.count()).select_from(Dispute)
        .where(Dispute.claim_id == claim_id, Dispute.outcome.is_(None))
    )  # fmt: skip
    return int(count.scalar_one())


async def notified_invoices(session: AsyncSession, notification_id: str) -> list[NotifiedInvoice]:
    rows = await session.execute(
        select(NotifiedInvoice).where(NotifiedInvoice.notification_id == notification_id)
        .order_by(NotifiedInvoice.due_date, NotifiedInvoice.number)
    )  # fmt: skip
    return list(rows.scalars())


async def original_due_dates(
    session: AsyncSession, policy_id: str, buyer_id: str, numbers: Sequence[str]
) -> dict[str, dt.date]:
    """The earliest due date each invoice was notified with (before any extension)."""
    rows = await session.execute(
        select(NotifiedInvoice.number, func.min(NotifiedInvoice.due_date))
        .where(NotifiedInvoice.policy_id == policy_id, NotifiedInvoice.buyer_id == buyer_id,
               NotifiedInvoice.number.in_(numbers))
        .group_by(NotifiedInvoice.number)
    )  # fmt: skip
    return {number: due for number, due in rows.all()}


async def first_notifications(
    session: AsyncSession, policy_id: str, buyer_id: str
) -> dict[str, NotifiedInvoice]:
    """Each invoice's first overdue notification on the (policy, buyer)."""
    rows = await session.execute(
        select(NotifiedInvoice).join(OverdueNotification)
        .where(NotifiedInvoice.policy_id == policy_id, NotifiedInvoice.buyer_id == buyer_id,
               OverdueNotification.kind != "arrears_cleared")
        .order_by(OverdueNotification.notified_on, OverdueNotification.created_at)
    )  # fmt: skip
    first: dict[str, NotifiedInvoice] = {}
    for row in rows.scalars():
        first.setdefault(row.number, row)
    return first


async def already_claimed(
    session: AsyncSession, policy_id: str, buyer_id: str, numbers: Sequence[str]
) -> list[tuple[str, str]]:
    """(invoice number, claim id) of the invoices already in a live claim on the pair."""
    rows = await session.execute(
        select(ClaimInvoice.number, Claim.id).join(Claim, Claim.id == ClaimInvoice.claim_id)
        .where(Claim.policy_id == policy_id, Claim.buyer_id == buyer_id,
               Claim.status.not_in(("rejected", "lapsed")), ClaimInvoice.number.in_(numbers))
    )  # fmt: skip
    return [(number, claim_id) for number, claim_id in rows.all()]


async def waiting_for_documents(session: AsyncSession, before: dt.date) -> list[Claim]:
    """Claims still waiting for documents that were due before `before` (locked, skipping
    those another worker holds)."""
    rows = await session.execute(
        select(Claim).where(Claim.documents_due < before, or_(
            Claim.status == "documents_pending",
            and_(Claim.status == "on_hold", Claim.held_status == "documents_pending")))
        .with_for_update(skip_locked=True)
    )  # fmt: skip
    return list(rows.scalars())


async def indemnities_in_year(
    session: AsyncSession, claim: Claim, start: dt.date, end: dt.date
) -> tuple[Decimal, Decimal]:
    """Indemnities of approved and paid claims on the policy (and on its buyer) whose loss date
    falls in [start, end), this claim excluded."""
    base = select(func.coalesce(func.sum(Claim.indemnity), 0)).where(
        Claim.policy_id == claim.policy_id, Claim.id != claim.id,
        Claim.status.in_(("approved", "paid")), Claim.loss_date >= start, Claim.loss_date < end,
    )  # fmt: skip
    policy_total = (await session.execute(base)).scalar_one()
    buyer_total = (await session.execute(base.where(Claim.buyer_id == claim.buyer_id))).scalar_one()
    return Decimal(policy_total or 0), Decimal(buyer_total or 0)
