"""Every collections query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import (
    JSON,
    Date,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from services.collections.models import (
    Activity,
    ActivityRow,
    Base,
    Case,
    CaseInvoice,
    CaseInvoiceRow,
    CaseRow,
    LadderRung,
    Payment,
    PaymentRow,
)
from services.collections.rules import CLIMBING, LIVE, Rung, StandingCase
from shared.db import Amount, Query, Reader, UTCDateTime, among, take_turns
from shared.pagination import PageQueries, PageRequest

Row = TypeVar("Row", bound=Base)


async def by_id(session: AsyncSession, model: type[Row], ident: str) -> Row | None:
    return await session.get(model, ident)


async def case(session: AsyncSession, case_id: str, *, lock: bool = False) -> Case | None:
    query = select(Case).where(Case.id == case_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


_CASES = cast(Table, Case.__table__)
_CASE_COLUMNS = [_CASES.c[name] for name in CaseRow._fields]
_CASE_PAGES: dict[tuple[str, ...], PageQueries] = {}


def _case_pages(filters: tuple[str, ...]) -> PageQueries:
    """The pages of the cases a list shows with these filters (columns equal to the parameters
    of the same names), built once per set of filters, so that each statement is prepared once
    and keeps its own plan."""
    pages = _CASE_PAGES.get(filters)
    if pages is None:
        statement = select(*_CASE_COLUMNS).where(
            *(_CASES.c[name] == bindparam(name, type_=String) for name in filters)
        )
        pages = _CASE_PAGES[filters] = PageQueries(statement, created_at=_CASES.c.created_at,
                                                   ident=_CASES.c.id)  # fmt: skip
    return pages


async def cases_page(
    reader: Reader, page: PageRequest, *, creditor_id: str | None, status: str | None,
    claim_id: str | None,
) -> tuple[list[CaseRow], str | None]:  # fmt: skip
    """One page of the cases a list shows (a creditor's own, or all; of a status; of a claim),
    oldest first, and the next page's cursor."""
    given = {"creditor_id": creditor_id, "status": status or None, "claim_id": claim_id or None}
    params = {name: value for name, value in given.items() if value is not None}
    rows, cursor = await _case_pages(tuple(params)).rows(reader, page, params)
    return [CaseRow._make(row) for row in rows], cursor


_CASE_ROW = Query(select(*_CASE_COLUMNS).where(_CASES.c.id == bindparam("case_id", type_=String)))


async def case_row(reader: Reader, case_id: str) -> CaseRow | None:
    row = await reader.first(_CASE_ROW, {"case_id": case_id})
    return None if row is None else CaseRow._make(row)


# A case's lines (invoices, activities, payments) in one statement: the three tables' rows in one
# shape, each in a part of its own, the columns a part does not have NULL. Per part, the columns
# of the same names as the row it gives: invoice, activity, payment.
_LINE_SHAPE: dict[str, Any] = {
    "case_id": String(), "id": String(), "created_at": UTCDateTime(), "day": Date(),
    "label": String(), "note": Text(), "recorded_by": String(), "on": Date(), "amount": Amount(),
    "paid": Amount(), "insurer": Amount(), "policyholder": Amount(), "data": JSON(),
    "tiebreak": String(), "days": Integer(),
}  # fmt: skip
_INVOICE, _ACTIVITY, _PAYMENT, _RUNG = 0, 1, 2, 3


def _line_part(part: int, model: type[Base], **columns: str) -> Select[Any]:
    """One table's rows in the shape of `_LINE_SHAPE` (`columns`: shape name → column name)."""
    table = cast(Table, model.__table__)
    return select(literal_column(str(part), Integer).label("part"), *(
        (table.c[columns[name]] if name in columns else sql_cast(null(), kind)).label(name)
        for name, kind in _LINE_SHAPE.items()
    )).where(among(table.c.case_id, "case_ids"))  # fmt: skip


def _rung_part() -> Select[Any]:
    """The rungs of each case's ladder in the shape of `_LINE_SHAPE` (stage as `label`, its day
    as `days`), so that a read shows the stage a case's days past due reach in the same
    statement."""
    rungs = cast(Table, LadderRung.__table__)
    shown = {"case_id": _CASES.c.id, "label": rungs.c.stage, "days": rungs.c.days_past_due,
             "tiebreak": rungs.c.stage}  # fmt: skip
    return (
        select(literal_column(str(_RUNG), Integer).label("part"), *(
            (shown[name] if name in shown else sql_cast(null(), kind)).label(name)
            for name, kind in _LINE_SHAPE.items()))
        .select_from(_CASES.join(rungs, rungs.c.name == _CASES.c.ladder))
        .where(among(_CASES.c.id, "case_ids"))
    )  # fmt: skip


_LINES = Query(union_all(
    _line_part(_INVOICE, CaseInvoice, case_id="case_id", id="id", day="due_date", label="number",
               amount="amount", paid="paid", tiebreak="number"),
    _line_part(_ACTIVITY, Activity, case_id="case_id", id="id", created_at="created_at",
               day="occurred_on", label="kind", note="note", recorded_by="recorded_by",
               on="promised_on", amount="promised_amount", data="details", tiebreak="id"),
    _line_part(_PAYMENT, Payment, case_id="case_id", id="id", created_at="created_at",
               day="received_on", amount="amount", paid="fee", insurer="insurer",
               policyholder="policyholder", data="credited", tiebreak="id"),
    _rung_part(),
# Each part in the order a case shows it: invoices by due date and number, activities by the day
# they happened, payments by the day they came in, then as recorded (rungs: by their day).
).order_by(text("part"), text("day"), text("created_at"), text("days"),
           text("tiebreak")))  # fmt: skip


class CaseLines(NamedTuple):
    """What the cases of a read hold, by case id, each in the order a case shows it."""

    invoices: dict[str, list[CaseInvoiceRow]]
    activities: dict[str, list[ActivityRow]]
    payments: dict[str, list[PaymentRow]]
    rungs: dict[str, list[Rung]]  # of each case's ladder, lowest first


async def lines_of(reader: Reader, case_ids: Sequence[str]) -> CaseLines:
    """The invoices, activities and payments of the cases, and the rungs of their ladders, in
    one statement whatever the number of cases."""
    lines = CaseLines({}, {}, {}, {})
    for row in await reader.all(_LINES, {"case_ids": list(case_ids)}):
        (part, case_id, ident, created_at, day, label, note, recorded_by, on, amount, paid,
         insurer, policyholder, data, _, days) = row  # fmt: skip
        if part == _RUNG:
            lines.rungs.setdefault(case_id, []).append(Rung(days, label))
            continue
        if part == _INVOICE:
            invoice = CaseInvoiceRow(case_id, label, amount, day, paid)
            lines.invoices.setdefault(case_id, []).append(invoice)
        elif part == _ACTIVITY:
            activity = ActivityRow(ident, created_at, case_id, label, day, note, amount, on, data,
                                   recorded_by)  # fmt: skip
            lines.activities.setdefault(case_id, []).append(activity)
        else:
            payment = PaymentRow(ident, created_at, case_id, amount, day, paid, insurer,
                                 policyholder, data)  # fmt: skip
            lines.payments.setdefault(case_id, []).append(payment)
    return lines


async def ladders(session: AsyncSession) -> dict[str, list[Rung]]:
    """Every escalation ladder by name, each with its rungs lowest first."""
    rows = await session.execute(
        select(LadderRung.name, LadderRung.days_past_due, LadderRung.stage)
        .order_by(LadderRung.name, LadderRung.days_past_due)
    )  # fmt: skip
    found: dict[str, list[Rung]] = {}
    for name, days, stage in rows.all():
        found.setdefault(name, []).append(Rung(days, stage))
    return found


async def ladder(session: AsyncSession, name: str) -> list[Rung] | None:
    """One ladder's rungs, lowest first (None: there is no such ladder)."""
    rows = await session.execute(
        select(LadderRung.days_past_due, LadderRung.stage).where(LadderRung.name == name)
        .order_by(LadderRung.days_past_due)
    )  # fmt: skip
    rungs = [Rung(days, stage) for days, stage in rows.all()]
    return rungs or None


async def case_of_claim(session: AsyncSession, claim_id: str) -> str | None:
    found = await session.execute(select(Case.id).where(Case.claim_id == claim_id))
    return found.scalar_one_or_none()


async def mandates_sharing(
    session: AsyncSession, creditor_id: str, buyer_id: str, numbers: Sequence[str]
) -> list[Case]:
    """The mandates (no claim yet) of the creditor on the buyer sharing an invoice number with
    `numbers`, live or closed, oldest first, locked."""
    sharing = select(CaseInvoice.case_id).where(CaseInvoice.number.in_(numbers))
    found = await session.execute(
        select(Case)
        .where(Case.claim_id.is_(None), Case.creditor_id == creditor_id,
               Case.buyer_id == buyer_id, Case.id.in_(sharing))
        .order_by(Case.created_at, Case.id).with_for_update()
    )  # fmt: skip
    return list(found.scalars().all())


async def serialise_cases_of(session: AsyncSession, creditor_id: str, buyer_id: str) -> None:
    """Until the transaction ends, no other transaction opens, takes over or pays a case of this
    creditor on this buyer (`shared.db.take_turns`)."""
    await take_turns(session, _CASE_LOCKS, (creditor_id, buyer_id), update(Case)
                     .where(Case.creditor_id == creditor_id, Case.buyer_id == buyer_id)
                     .values(creditor_id=Case.creditor_id))  # fmt: skip


_CASE_LOCKS = "collections.cases: creditor and buyer"


async def creditor_and_buyer_of(session: AsyncSession, case_id: str) -> tuple[str, str] | None:
    """The (creditor, buyer) of a case, read without a lock (to take turns on them first)."""
    found = await session.execute(select(Case.creditor_id, Case.buyer_id).where(Case.id == case_id))
    row = found.first()
    return None if row is None else (row[0], row[1])


async def other_live_case(session: AsyncSession, case: Case) -> bool:
    """Whether another case of the case's creditor on its buyer still collects (is live)."""
    found = await session.execute(
        select(Case.id).where(Case.creditor_id == case.creditor_id, Case.buyer_id == case.buyer_id,
                              Case.id != case.id, Case.status.in_(LIVE)).limit(1)
    )  # fmt: skip
    return found.first() is not None


def _invoices_of_creditor(creditor_id: str, buyer_id: str, numbers: Sequence[str]) -> Any:
    """(case id, invoice number, due date) of the creditor's cases on the buyer naming one of the
    invoice `numbers`, oldest case first."""
    return (
        select(Case.id, CaseInvoice.number, CaseInvoice.due_date)
        .join(CaseInvoice, CaseInvoice.case_id == Case.id)
        .where(Case.creditor_id == creditor_id, Case.buyer_id == buyer_id,
               CaseInvoice.number.in_(numbers))
        .order_by(Case.created_at, Case.id, CaseInvoice.number)
    )  # fmt: skip


async def live_case_collecting(
    session: AsyncSession, creditor_id: str, buyer_id: str, numbers: Sequence[str]
) -> tuple[str, str] | None:
    """(case id, invoice number) of a live case of the creditor on the buyer, mandate or
    subrogation, that collects one of the invoice `numbers`, if any (the oldest)."""
    found = await session.execute(
        _invoices_of_creditor(creditor_id, buyer_id, numbers).where(Case.status.in_(LIVE)).limit(1)
    )
    row = found.first()
    return None if row is None else (row[0], row[1])


async def recovered_in_full(
    session: AsyncSession, creditor_id: str, buyer_id: str, numbers: Sequence[str]
) -> list[tuple[str, str, dt.date]]:
    """(case id, invoice number, due date) of each invoice among `numbers` a case of the creditor
    on the buyer recovered in full, oldest case first."""
    found = await session.execute(
        _invoices_of_creditor(creditor_id, buyer_id, numbers)
        .where(CaseInvoice.paid >= CaseInvoice.amount)
    )  # fmt: skip
    return [(case_id, number, due) for case_id, number, due in found.all()]


def _summed(column: Any) -> Any:
    """An amount column summed (nothing: 0), read back exactly on both engines."""
    return type_coerce(func.coalesce(func.sum(column), 0), Amount())


async def shared_so_far(
    session: AsyncSession, case_id: str, claim_id: str | None
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """What the case's payments split by the claim's share (none: before any claim) came to:
    their amount, fee and insurer's part, each summed; and what of the mandate's payments shared
    again when the claim took the case over its indemnity had deducted (not recovered after it)."""
    counted = Payment.amount - func.coalesce(Payment.recovered_after_claim, Payment.amount)
    found = await session.execute(
        select(_summed(Payment.amount), _summed(Payment.fee), _summed(Payment.insurer),
               _summed(counted))
        .where(Payment.case_id == case_id,
               Payment.claim_id.is_(None) if claim_id is None else Payment.claim_id == claim_id)
    )  # fmt: skip
    amount, fee, insurer, deducted = found.one()
    return Decimal(amount), Decimal(fee), Decimal(insurer), Decimal(deducted)


async def mandate_recoveries(
    session: AsyncSession, creditor_id: str, buyer_id: str, currency: str
) -> list[tuple[str, Any, str]]:
    """(invoice number, amount credited to it, case id) of every invoice with something
    recovered on the creditor's mandates (cases with no claim) on the buyer in the currency,
    live or closed, by number then case."""
    rows = await session.execute(
        select(CaseInvoice.number, CaseInvoice.paid, Case.id)
        .join(Case, CaseInvoice.case_id == Case.id)
        .where(Case.claim_id.is_(None), Case.creditor_id == creditor_id,
               Case.buyer_id == buyer_id, Case.currency == currency, CaseInvoice.paid > 0)
        .order_by(CaseInvoice.number, Case.created_at, Case.id)
    )  # fmt: skip
    return [(number, paid, case_id) for number, paid, case_id in rows.all()]


async def has_cases(session: AsyncSession, creditor_id: str) -> bool:
    found = await session.execute(select(Case.id).where(Case.creditor_id == creditor_id).limit(1))
    return found.first() is not None


def _grouped(rows: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for row in rows:
        out.setdefault(row.case_id, []).append(row)
    return out


async def invoices_of(
    session: AsyncSession, case_ids: Sequence[str]
) -> dict[str, list[CaseInvoice]]:
    rows = await session.execute(
        select(CaseInvoice).where(CaseInvoice.case_id.in_(case_ids))
        .order_by(CaseInvoice.due_date, CaseInvoice.number)
    )  # fmt: skip
    return _grouped(rows.scalars().all())


async def activities_of(
    session: AsyncSession, case_ids: Sequence[str]
) -> dict[str, list[Activity]]:
    rows = await session.execute(
        select(Activity).where(Activity.case_id.in_(case_ids))
        .order_by(Activity.occurred_on, Activity.created_at, Activity.id)
    )  # fmt: skip
    return _grouped(rows.scalars().all())


async def payments_of(session: AsyncSession, case_ids: Sequence[str]) -> dict[str, list[Payment]]:
    rows = await session.execute(
        select(Payment).where(Payment.case_id.in_(case_ids))
        .order_by(Payment.received_on, Payment.created_at, Payment.id)
    )  # fmt: skip
    return _grouped(rows.scalars().all())


async def climbing_cases(session: AsyncSession) -> list[StandingCase]:
    """Every case climbing its ladder with its oldest unpaid due date, in one statement, locking
    the cases (skipping those another run holds)."""
    oldest_unpaid = (
        select(CaseInvoice.case_id, func.min(CaseInvoice.due_date).label("oldest"))
        .where(CaseInvoice.amount > CaseInvoice.paid)
        .group_by(CaseInvoice.case_id)
        .subquery()
    )
    rows = await session.execute(
        select(Case.id, Case.ladder, Case.stage, oldest_unpaid.c.oldest)
        .outerjoin(oldest_unpaid, oldest_unpaid.c.case_id == Case.id)
        .where(Case.status.in_(CLIMBING)).order_by(Case.created_at, Case.id)
        .with_for_update(of=Case, skip_locked=True)
    )  # fmt: skip
    return [StandingCase(r[0], r[1], r[2], r[3]) for r in rows.all()]


async def climbing_count(session: AsyncSession) -> int:
    """How many cases climb their ladder, locked or not (`climbing_cases` skips those held)."""
    counted = await session.execute(
        select(func.count()).select_from(Case).where(Case.status.in_(CLIMBING)))  # fmt: skip
    return int(counted.scalar_one())


async def move_stages(
    session: AsyncSession, stages: Sequence[tuple[str, str]], activities: Sequence[dict[str, Any]]
) -> None:
    """Set many cases' stages (case id, new stage) and log the moves, two statements in all."""
    table = cast(Table, Case.__table__)
    await session.execute(
        update(table).where(table.c.id == bindparam("moved_id")).values(
            stage=bindparam("new_stage")),
        [{"moved_id": case_id, "new_stage": stage} for case_id, stage in stages],
    )  # fmt: skip
    await session.execute(insert(cast(Table, Activity.__table__)), list(activities))


async def cases_with_activity(
    session: AsyncSession, case_ids: Sequence[str], kind: str
) -> set[str]:
    """Those of the cases with an activity of `kind` logged (a statement per thousand cases)."""
    found: set[str] = set()
    unique = sorted(set(case_ids))
    for start in range(0, len(unique), 1000):
        rows = await session.execute(
            select(Activity.case_id).distinct()
            .where(Activity.case_id.in_(unique[start : start + 1000]), Activity.kind == kind)
        )  # fmt: skip
        found.update(rows.scalars())
    return found


async def cases_heard_of(session: AsyncSession, case_ids: Sequence[str]) -> dict[str, Any]:
    """What an event tells of each case (its creditor, loss payees, buyer, claim, ladder, status):
    a statement per thousand cases (a statement's parameters are bounded)."""
    found: dict[str, Any] = {}
    unique = sorted(set(case_ids))
    for start in range(0, len(unique), 1000):
        rows = await session.execute(
            select(Case.id, Case.creditor_id, Case.loss_payee_ids, Case.buyer_id, Case.claim_id,
                   Case.ladder, Case.status).where(Case.id.in_(unique[start : start + 1000]))
        )  # fmt: skip
        found.update({row.id: row for row in rows.all()})
    return found
