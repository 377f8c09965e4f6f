"""Every claims query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from services.claims.models import (
    Base,
    CalendarDay,
    Claim,
    ClaimDocument,
    ClaimedInvoice,
    ClaimInvoice,
    Dispute,
    NotifiedInvoice,
    OverdueNotification,
    PolicyCaps,
    outbox,
)
from services.claims.rules import (
    AWAITING_DECISION,
    COUNTS_AGAINST_CAPS,
    ClaimStatus,
    NotifiedRow,
    earliest_due_dates,
    first_overdue_late,
)

Row = TypeVar("Row", bound=Base)


async def by_id(session: AsyncSession, model: type[Row], ident: str) -> Row | None:
    return await session.get(model, ident)


async def signals_pending(session: AsyncSession, aggregate_id: str) -> set[str]:
    """The kinds of the signals about the buyer that the aggregate wrote for underwriting and the
    outbox has not delivered yet (a claim writes one of each kind at most)."""
    pending = select(outbox.c.body).where(
        outbox.c.aggregate_id == aggregate_id, outbox.c.target == "underwriting",
        outbox.c.delivered_at.is_(None),
    )  # fmt: skip
    return {str(body.get("kind")) for body in (await session.execute(pending)).scalars()}


async def claim(session: AsyncSession, claim_id: str, *, lock: bool = False) -> Claim | None:
    query = select(Claim).where(Claim.id == claim_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def claim_and_document_kinds(
    session: AsyncSession, claim_id: str
) -> tuple[Claim, list[str]] | None:
    """A claim locked until the commit, then the kinds of the documents it has received (in the
    order `documents_of` reads them). Two statements: one that waits for the lock sees the rows
    it joins as they were when it began, so the documents a concurrent upload committed
    meanwhile would be missed, and the file never completed."""
    found = await claim(session, claim_id, lock=True)
    if found is None:
        return None
    kinds = await session.execute(
        select(ClaimDocument.kind)
        .where(ClaimDocument.claim_id == claim_id)
        .order_by(ClaimDocument.created_at, ClaimDocument.id)
    )
    return found, list(kinds.scalars())


def _lapsed_unrecorded(today: dt.date) -> Any:
    """Claims awaiting documents (on hold or not) whose grace period has ended: lapsed, though
    the sweep has not recorded it yet (their file is not complete, or they would not await
    documents)."""
    pending = ClaimStatus.DOCUMENTS_PENDING.value
    awaiting = or_(Claim.status == pending,
                   and_(Claim.status == ClaimStatus.ON_HOLD.value,
                        func.coalesce(Claim.held_status, "") == pending))  # fmt: skip
    return and_(awaiting, Claim.documents_due < today)


def claims_listed(
    *, policyholder_id: str | None, status: str | None, policy_id: str | None, today: dt.date
) -> Select[Any]:
    """The claims a list shows (a policyholder's own, or all), to be paged; filtered by status
    as reads show it (a lapse shows before the sweep records it)."""
    statement = select(Claim)
    if policyholder_id is not None:
        statement = statement.where(Claim.policyholder_id == policyholder_id)
    if status == ClaimStatus.LAPSED:
        statement = statement.where(or_(Claim.status == status, _lapsed_unrecorded(today)))
    elif status:
        statement = statement.where(Claim.status == status, ~_lapsed_unrecorded(today))
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


async def settled_disputes_of_other_claims(
    session: AsyncSession, claim: Claim
) -> list[tuple[list[str], str]]:
    """(invoice numbers, outcome) of every dispute settled under another claim of the claim's
    policy and buyer, oldest first: a debt the buyer was found not to owe stays so when its
    invoice is claimed again."""
    rows = await session.execute(
        select(Dispute.invoice_numbers, Dispute.outcome)
        .join(Claim, Claim.id == Dispute.claim_id)
        .where(Claim.policy_id == claim.policy_id, Claim.buyer_id == claim.buyer_id,
               Claim.id != claim.id, Dispute.outcome.is_not(None))
        .order_by(Dispute.created_at, Dispute.id)
    )  # fmt: skip
    return [(list(numbers), str(outcome)) for numbers, outcome in rows.all()]


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


async def notified_up_to(
    session: AsyncSession, notification: OverdueNotification
) -> list[tuple[str, str, dt.date, dt.date]]:
    """`(kind, number, due_date, notified_on)` of each invoice the notifications on the (policy,
    buyer) named, up to and including `notification`, in the order they were made."""
    made_by_then = or_(
        OverdueNotification.created_at < notification.created_at,
        and_(OverdueNotification.created_at == notification.created_at,
             OverdueNotification.id <= notification.id),
    )  # fmt: skip
    rows = await session.execute(
        select(OverdueNotification.kind, NotifiedInvoice.number, NotifiedInvoice.due_date,
               OverdueNotification.notified_on)
        .join(OverdueNotification)
        .where(OverdueNotification.policy_id == notification.policy_id,
               OverdueNotification.buyer_id == notification.buyer_id, made_by_then)
        .order_by(OverdueNotification.created_at, OverdueNotification.id)
    )  # fmt: skip
    return [(kind, number, due, on) for kind, number, due, on in rows.all()]


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


async def notified_rows(
    session: AsyncSession, policy_id: str, buyer_id: str, numbers: Sequence[str]
) -> dict[str, list[NotifiedRow]]:
    """Each of these invoices as the notifications on a (policy, buyer) named it, in the order
    made (`rules.notified_facts` reads them; their earliest due date is `original_due_dates`)."""
    rows = await session.execute(
        select(NotifiedInvoice.number, OverdueNotification.kind, NotifiedInvoice.amount,
               NotifiedInvoice.shipment_date, NotifiedInvoice.due_date,
               OverdueNotification.notified_on, NotifiedInvoice.notification_deadline,
               NotifiedInvoice.late)
        .join(OverdueNotification)
        .where(NotifiedInvoice.policy_id == policy_id, NotifiedInvoice.buyer_id == buyer_id,
               NotifiedInvoice.number.in_(numbers))
        .order_by(OverdueNotification.notified_on, OverdueNotification.created_at)
    )  # fmt: skip
    said: dict[str, list[NotifiedRow]] = {}
    for number, kind, amount, shipped, due, notified_on, deadline, late in rows.all():
        said.setdefault(number, []).append(
            NotifiedRow(kind, amount, shipped, due, notified_on, deadline, late)
        )
    return said


class InvoiceNotices(NamedTuple):
    """What earlier overdue notifications on a (policy, buyer) said of some invoices: the
    earliest due date each was notified with (before any extension), and whether its first
    overdue notification was late (`rules.first_overdue_late`)."""

    original_due_dates: dict[str, dt.date]
    first_late: dict[str, bool]


async def invoice_notices(
    session: AsyncSession, policy_id: str, buyer_id: str, numbers: Sequence[str]
) -> InvoiceNotices:
    """Each invoice's original due date and whether its first overdue notification was late,
    from the one statement of `notified_rows`."""
    rows = await notified_rows(session, policy_id, buyer_id, numbers)
    return InvoiceNotices(earliest_due_dates(rows), first_overdue_late(rows))


async def due_dates_on_record(
    session: AsyncSession, policy_id: str, buyer_id: str, numbers: Sequence[str]
) -> dict[str, dt.date]:
    """Each invoice's latest due date the notifications on a (policy, buyer) recorded: the one
    notified, or the one an extension moved it to."""
    due = func.max(func.coalesce(OverdueNotification.new_due_date, NotifiedInvoice.due_date))
    rows = await session.execute(
        select(NotifiedInvoice.number, due)
        .join(OverdueNotification)
        .where(NotifiedInvoice.policy_id == policy_id, NotifiedInvoice.buyer_id == buyer_id,
               NotifiedInvoice.number.in_(numbers))
        .group_by(NotifiedInvoice.number)
    )  # fmt: skip
    return {number: day for number, day in rows.all()}


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def holders_of(
    session: AsyncSession, policy_id: str, buyer_id: str, numbers: Sequence[str]
) -> list[tuple[str, str]]:
    """(invoice number, claim id) of the invoices a live claim on the pair holds."""
    rows = await session.execute(
        select(ClaimedInvoice.number, ClaimedInvoice.claim_id)
        .where(ClaimedInvoice.policy_id == policy_id, ClaimedInvoice.buyer_id == buyer_id,
               ClaimedInvoice.number.in_(numbers))
        .order_by(ClaimedInvoice.number)
    )  # fmt: skip
    return [(number, claim_id) for number, claim_id in rows.all()]


async def hold_invoices(session: AsyncSession, claim: Claim, numbers: Sequence[str]) -> set[str]:
    """Write the claim's hold on its invoices; the numbers it got (one another live claim holds
    are left out). The rows go in sorted, so two filings never wait on each other in a circle;
    on PostgreSQL a filing waits for a concurrent one holding a number to commit or roll back."""
    insert = _insert(session)
    statement = (
        insert(ClaimedInvoice)
        .values([{"policy_id": claim.policy_id, "buyer_id": claim.buyer_id, "number": number,
                  "claim_id": claim.id} for number in sorted(set(numbers))])
        .on_conflict_do_nothing()
        .returning(ClaimedInvoice.number)
    )  # fmt: skip
    return set((await session.execute(statement)).scalars())


async def release_invoices(session: AsyncSession, claim_id: str) -> None:
    """A rejected or lapsed claim frees its invoices."""
    await session.execute(delete(ClaimedInvoice).where(ClaimedInvoice.claim_id == claim_id))


async def lock_policy_caps(session: AsyncSession, policy_id: str) -> None:
    """Take the policy's caps for this transaction: an upsert of its row, which waits for any
    other approval or payment of the policy to commit (a row lock on PostgreSQL, the database's
    write lock on SQLite). Sums read after it see every approval committed before."""
    insert = _insert(session)
    statement = insert(PolicyCaps).values(policy_id=policy_id, changes=1)
    statement = statement.on_conflict_do_update(
        index_elements=[PolicyCaps.policy_id], set_={"changes": PolicyCaps.changes + 1}
    )
    await session.execute(statement)


async def waiting_for_documents(session: AsyncSession, before: dt.date) -> list[Claim]:
    """Claims still waiting for documents that were due before `before` (locked, skipping
    those another worker holds)."""
    rows = await session.execute(
        select(Claim).where(Claim.documents_due < before, or_(
            Claim.status == ClaimStatus.DOCUMENTS_PENDING,
            and_(Claim.status == ClaimStatus.ON_HOLD,
                 Claim.held_status == ClaimStatus.DOCUMENTS_PENDING)))
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
        Claim.status.in_(sorted(COUNTS_AGAINST_CAPS)), Claim.loss_date >= start,
        Claim.loss_date < end,
    )  # fmt: skip
    policy_total = (await session.execute(base)).scalar_one()
    buyer_total = (await session.execute(base.where(Claim.buyer_id == claim.buyer_id))).scalar_one()
    return Decimal(policy_total or 0), Decimal(buyer_total or 0)


async def claims_using_limit(
    session: AsyncSession, claim: Claim, statuses: frozenset[ClaimStatus]
) -> list[Claim]:
    """The other claims on the claim's policy and buyer in these statuses (those whose
    assessments use the buyer's limit), oldest first."""
    rows = await session.execute(
        select(Claim)
        .where(Claim.policy_id == claim.policy_id, Claim.buyer_id == claim.buyer_id,
               Claim.id != claim.id, Claim.status.in_(sorted(statuses)))
        .order_by(Claim.created_at, Claim.id)
    )  # fmt: skip
    return list(rows.scalars())


# ---------------------------------------------------------------- calendars


async def calendar_corrections(
    session: AsyncSession, country: str, since: dt.date
) -> dict[dt.date, bool]:
    """The days of `country` staff corrected from `since` on: date → working."""
    rows = await session.execute(
        select(CalendarDay.day, CalendarDay.working).where(
            CalendarDay.country == country, CalendarDay.day >= since
        )
    )
    return {day: working for day, working in rows.all()}


async def claims_deciding_over(session: AsyncSession, day: dt.date) -> list[Claim]:
    """The claims awaiting a decision whose count of working days passes over `day` (the file
    complete before it, not counted itself; the decision due on or after it), locked: a
    correction of `day` may move their decision due, one after the day due never does."""
    query = (
        select(Claim)
        .where(Claim.status.in_(sorted(AWAITING_DECISION)), Claim.complete_on < day,
               Claim.decision_due >= day)
        .order_by(Claim.id)
        .with_for_update()
    )  # fmt: skip
    return list((await session.execute(query)).scalars().all())


async def calendar_days_in(
    session: AsyncSession, country: str, first: dt.date, last: dt.date
) -> list[CalendarDay]:
    """The corrections of `country` from `first` to `last`, by date."""
    query = (
        select(CalendarDay)
        .where(CalendarDay.country == country, CalendarDay.day.between(first, last))
        .order_by(CalendarDay.day)
    )
    return list((await session.execute(query)).scalars().all())


async def add_calendar_day(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Write a correction unless that day already has one (INSERT … ON CONFLICT DO NOTHING):
    whether it was written."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    written = await session.execute(
        insert(CalendarDay).values(**values).on_conflict_do_nothing().returning(CalendarDay.day)
    )
    return written.first() is not None


async def change_calendar_day(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(
        update(CalendarDay)
        .where(CalendarDay.country == values["country"], CalendarDay.day == values["day"])
        .values(**values)
    )


async def remove_calendar_day(session: AsyncSession, country: str, day: dt.date) -> bool:
    """Delete a correction: whether there was one."""
    removed = await session.execute(
        delete(CalendarDay).where(CalendarDay.country == country, CalendarDay.day == day)
    )
    return bool(getattr(removed, "rowcount", 0))
