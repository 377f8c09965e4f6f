"""Every underwriting query."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Date,
    String,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.underwriting import rules
from services.underwriting.models import (
    Buyer,
    BuyerSignal,
    CountryRisk,
    CreditLimit,
    LimitAmount,
    Policy,
    PolicyAssignment,
    Receivable,
    Sanction,
    StopShipment,
)
from shared.db import Amount, Query, Reader


async def policy(session: AsyncSession, policy_id: str) -> Policy | None:
    return await session.get(Policy, policy_id)


async def bank_ids(session: AsyncSession, policy_id: str) -> list[str]:
    rows = await session.execute(
        select(PolicyAssignment.bank_id)
        .where(PolicyAssignment.policy_id == policy_id)
        .order_by(PolicyAssignment.created_at)
    )
    return list(rows.scalars())


async def assignment(
    session: AsyncSession, policy_id: str, bank_id: str
) -> PolicyAssignment | None:
    return (
        await session.execute(
            select(PolicyAssignment).where(
                PolicyAssignment.policy_id == policy_id, PolicyAssignment.bank_id == bank_id
            )
        )
    ).scalar_one_or_none()


async def buyer(session: AsyncSession, buyer_id: str, *, for_update: bool = False) -> Buyer | None:
    statement = select(Buyer).where(Buyer.id == buyer_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def buyer_by_registration(
    session: AsyncSession, country: str, registration_number: str
) -> Buyer | None:
    return (
        await session.execute(
            select(Buyer).where(
                Buyer.country == country, Buyer.registration_number == registration_number
            )
        )
    ).scalar_one_or_none()


async def country_risk(session: AsyncSession, country: str) -> CountryRisk | None:
    return await session.get(CountryRisk, country)


async def sanctioned(session: AsyncSession, buyer_id: str, country: str) -> bool:
    hit = await session.execute(
        select(exists().where(or_(Sanction.buyer_id == buyer_id, Sanction.country == country)))
    )
    return bool(hit.scalar())


async def signals_of(session: AsyncSession, buyer_id: str) -> list[tuple[str, dt.date]]:
    rows = await session.execute(
        select(BuyerSignal.kind, BuyerSignal.observed_on).where(BuyerSignal.buyer_id == buyer_id)
    )
    return [(kind, on) for kind, on in rows.all()]


async def credit_limit(
    session: AsyncSession, policy_id: str, buyer_id: str, *, for_update: bool = False
) -> CreditLimit | None:
    statement = select(CreditLimit).where(
        CreditLimit.policy_id == policy_id, CreditLimit.buyer_id == buyer_id
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def credit_limit_by_id(
    session: AsyncSession, limit_id: str, *, for_update: bool = False
) -> CreditLimit | None:
    statement = select(CreditLimit).where(CreditLimit.id == limit_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def limits_on_buyer(session: AsyncSession, buyer_id: str) -> list[tuple[CreditLimit, Policy]]:
    rows = await session.execute(
        select(CreditLimit, Policy)
        .join(Policy, Policy.id == CreditLimit.policy_id)
        .where(CreditLimit.buyer_id == buyer_id)
        .order_by(CreditLimit.created_at)
        .with_for_update(of=CreditLimit)
    )
    return [(limit, pol) for limit, pol in rows.all()]


async def history(session: AsyncSession, limit_ids: Sequence[str]) -> dict[str, list[LimitAmount]]:
    """The entries in force (not superseded) of each limit, oldest first."""
    if not limit_ids:
        return {}
    rows = await session.execute(
        select(LimitAmount)
        .where(LimitAmount.limit_id.in_(limit_ids), LimitAmount.superseded_at.is_(None))
        .order_by(LimitAmount.limit_id, LimitAmount.effective_from, LimitAmount.created_at)
    )
    grouped: dict[str, list[LimitAmount]] = defaultdict(list)
    for entry in rows.scalars():
        grouped[entry.limit_id].append(entry)
    return grouped


async def open_stops(session: AsyncSession, policy_id: str, buyer_id: str) -> list[StopShipment]:
    rows = await session.execute(
        select(StopShipment).where(
            StopShipment.policy_id == policy_id,
            StopShipment.buyer_id == buyer_id,
            StopShipment.cleared_on.is_(None),
        )
    )
    return list(rows.scalars())


async def receivables_by_number(
    session: AsyncSession, policy_id: str, numbers: Sequence[str]
) -> dict[str, Receivable]:
    found: dict[str, Receivable] = {}
    for start in range(0, len(numbers), 1000):
        rows = await session.execute(
            select(Receivable).where(
                Receivable.policy_id == policy_id,
                Receivable.invoice_number.in_(numbers[start : start + 1000]),
            )
        )
        found.update({r.invoice_number: r for r in rows.scalars()})
    return found


async def existing_buyer_ids(session: AsyncSession, buyer_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = sorted(set(buyer_ids))
    for start in range(0, len(unique), 1000):
        rows = await session.execute(
            select(Buyer.id).where(Buyer.id.in_(unique[start : start + 1000]))
        )
        found.update(rows.scalars())
    return found


async def receivables_of_policy(session: AsyncSession, policy_id: str) -> list[Receivable]:
    rows = await session.execute(select(Receivable).where(Receivable.policy_id == policy_id))
    return list(rows.scalars())


async def turnover(
    session: AsyncSession, pol: Policy, period_from: dt.date, period_to: dt.date
) -> tuple[Decimal, int, int]:
    """Declared turnover shipped in the period to insurable, unsanctioned buyers in covered
    countries, with the number of invoices counted and excluded."""
    rows = await session.execute(
        select(Receivable.amount, Buyer.legal_form, Buyer.country, Buyer.id)
        .join(Buyer, Buyer.id == Receivable.buyer_id)
        .where(
            Receivable.policy_id == pol.id,
            Receivable.shipment_date >= period_from,
            Receivable.shipment_date <= period_to,
        )
    )
    sanctioned_rows = await session.execute(select(Sanction.buyer_id, Sanction.country))
    sanctioned_buyers, sanctioned_countries = set(), set()
    for b, c in sanctioned_rows.all():
        if b:
            sanctioned_buyers.add(b)
        if c:
            sanctioned_countries.add(c)
    total, counted, excluded = Decimal(0), 0, 0
    for amount, legal_form, country, buyer_id in rows.all():
        insured = (
            legal_form == "company"
            and (pol.covered_countries is None or country in pol.covered_countries)
            and buyer_id not in sanctioned_buyers
            and country not in sanctioned_countries
        )
        if insured:
            total += amount
            counted += 1
        else:
            excluded += 1
    return total, counted, excluded


# ---------------------------------------------------------------- coverage reads


@dataclass(frozen=True)
class CoverageRow:
    """The books as one coverage check reads them."""

    policy: dict[str, Any] | None
    buyer: dict[str, Any] | None
    bank_assigned: bool
    sanctioned: bool
    stopped: bool
    limit_id: str | None
    limit_terms_days: int | None
    decided_on: dt.date | None
    limit_amount: Decimal | None
    exposure: Decimal


_POLICY_COLUMNS = (
    Policy.id, Policy.policyholder_id, Policy.currency, Policy.start_date, Policy.end_date,
    Policy.covered_countries, Policy.max_credit_period_days, Policy.indemnity_pct,
    Policy.cover_type, Policy.discretionary_limit,
)  # fmt: skip
_BUYER_COLUMNS = (Buyer.id, Buyer.country, Buyer.legal_form, Buyer.grade)


def _coverage_statement() -> Any:
    """Built once: every check runs the same compiled statement with its own parameters."""
    policy_id = bindparam("policy_id", type_=String)
    buyer_id = bindparam("buyer_id", type_=String)
    ship = bindparam("shipment_date", type_=Date)
    today = bindparam("today", type_=Date)
    limit = (
        select(CreditLimit.id, CreditLimit.payment_terms_days, CreditLimit.decided_on)
        .where(CreditLimit.policy_id == policy_id, CreditLimit.buyer_id == buyer_id)
        .subquery()
    )
    amount = (
        select(LimitAmount.amount)
        .where(
            LimitAmount.limit_id == limit.c.id,
            LimitAmount.superseded_at.is_(None),
            LimitAmount.effective_from <= ship,
            or_(LimitAmount.effective_to.is_(None), LimitAmount.effective_to > ship),
        )
        .order_by(LimitAmount.effective_from.desc())
        .limit(1)
        .scalar_subquery()
    )
    paid_by_today = case(
        (or_(Receivable.paid_on.is_(None), Receivable.paid_on <= today), Receivable.paid_amount),
        else_=literal(Decimal(0), Amount()),
    )
    unpaid = type_coerce(Receivable.amount, Amount()) - type_coerce(paid_by_today, Amount())
    exposure = (
        select(type_coerce(func.coalesce(func.sum(unpaid), 0), Amount()))
        .where(
            Receivable.policy_id == policy_id,
            Receivable.buyer_id == buyer_id,
            Receivable.shipment_date <= ship,
            Receivable.invoice_number.is_distinct_from(bindparam("invoice_number", type_=String)),
        )
        .scalar_subquery()
    )
    sanctioned = exists().where(
        or_(Sanction.buyer_id == buyer_id, Sanction.country == Buyer.country)
    )
    stopped = exists().where(
        StopShipment.policy_id == policy_id,
        StopShipment.buyer_id == buyer_id,
        StopShipment.notified_on < ship,
        or_(StopShipment.cleared_on.is_(None), StopShipment.cleared_on > ship),
    )
    assigned = exists().where(
        PolicyAssignment.policy_id == policy_id,
        PolicyAssignment.bank_id == bindparam("bank_id", type_=String),
    )
    return (
        select(
            *_POLICY_COLUMNS,
            *(c.label(f"buyer_{c.key}") for c in _BUYER_COLUMNS),
            assigned.label("bank_assigned"),
            sanctioned.label("sanctioned"),
            stopped.label("stopped"),
            limit.c.id.label("limit_id"),
            limit.c.payment_terms_days.label("limit_terms_days"),
            limit.c.decided_on.label("decided_on"),
            type_coerce(amount, Amount()).label("limit_amount"),
            exposure.label("exposure"),
        )
        .select_from(Policy)
        .outerjoin(Buyer, Buyer.id == buyer_id)
        .outerjoin(limit, literal(True))
        .where(Policy.id == policy_id)
    )


_COVERAGE = Query(_coverage_statement())
_POLICY_KEYS = tuple(c.key for c in _POLICY_COLUMNS)
_BUYER_KEYS = tuple(c.key for c in _BUYER_COLUMNS)


async def coverage_row(
    reader: Reader,
    *,
    policy_id: str,
    buyer_id: str,
    shipment_date: dt.date,
    today: dt.date,
    invoice_number: str | None,
    bank_id: str | None,
) -> CoverageRow:
    """One statement: the policy, the buyer, the limit in force on the shipment date, the
    exposure, stop-shipment and sanctions of one receivable."""
    values = await reader.first(
        _COVERAGE,
        {"policy_id": policy_id, "buyer_id": buyer_id, "shipment_date": shipment_date,
         "today": today, "invoice_number": invoice_number, "bank_id": bank_id},
    )  # fmt: skip
    if values is None:
        return CoverageRow(None, None, False, False, False, None, None, None, None, Decimal(0))
    n = len(_POLICY_KEYS)
    policy_part = dict(zip(_POLICY_KEYS, values[:n], strict=True))
    buyer_values = values[n : n + len(_BUYER_KEYS)]
    buyer_part = dict(zip(_BUYER_KEYS, buyer_values, strict=True)) if buyer_values[0] else None
    (assigned, sanctioned, stopped, limit_id, terms, decided_on, limit_amount, exposure) = values[
        n + len(_BUYER_KEYS) :
    ]
    return CoverageRow(
        policy=policy_part,
        buyer=buyer_part,
        bank_assigned=bool(assigned),
        sanctioned=bool(sanctioned) if buyer_part else False,
        stopped=bool(stopped),
        limit_id=limit_id,
        limit_terms_days=terms,
        decided_on=decided_on,
        limit_amount=limit_amount,
        exposure=exposure or Decimal(0),
    )


@dataclass
class BatchBooks:
    """The books of every (policy, buyer) pair of a batch, read set-based."""

    policies: dict[str, dict[str, Any]]
    buyers: dict[str, dict[str, Any]]
    assigned_policies: set[str]
    sanctioned_buyers: set[str]
    sanctioned_countries: set[str]
    limits: dict[tuple[str, str], dict[str, Any]]
    history: dict[str, list[rules.HistoryEntry]]
    stops: dict[tuple[str, str], list[tuple[dt.date, dt.date | None]]]
    receivables: dict[tuple[str, str], list[rules.Receivable]]


def _chunks(values: Sequence[str], size: int = 5000) -> list[Sequence[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)] or [[]]


async def batch_books(
    session: AsyncSession,
    *,
    policy_ids: Sequence[str],
    buyer_ids: Sequence[str],
    today: dt.date,
    bank_id: str | None,
) -> BatchBooks:
    """A handful of queries for a whole batch, however many items it has."""
    pids = sorted(set(policy_ids))
    bids = sorted(set(buyer_ids))

    async def rows(statement_for: Any, ids: Sequence[str]) -> list[Any]:
        out: list[Any] = []
        for chunk in _chunks(ids):
            out.extend((await session.execute(statement_for(chunk))).all())
        return out

    policies = {
        r.id: r._asdict()
        for r in await rows(lambda c: select(*_POLICY_COLUMNS).where(Policy.id.in_(c)), pids)
    }
    buyers = {
        r.id: r._asdict()
        for r in await rows(lambda c: select(*_BUYER_COLUMNS).where(Buyer.id.in_(c)), bids)
    }
    assigned: set[str] = set()
    if bank_id:
        assigned = {
            r.policy_id
            for r in await rows(
                lambda c: select(PolicyAssignment.policy_id).where(
                    PolicyAssignment.policy_id.in_(c), PolicyAssignment.bank_id == bank_id
                ),
                pids,
            )
        }
    sanction_rows = (await session.execute(select(Sanction.buyer_id, Sanction.country))).all()
    limits: dict[tuple[str, str], dict[str, Any]] = {}
    stops: dict[tuple[str, str], list[tuple[dt.date, dt.date | None]]] = defaultdict(list)
    receivables: dict[tuple[str, str], list[rules.Receivable]] = defaultdict(list)
    for pchunk in _chunks(pids):
        for bchunk in _chunks(bids):
            limit_rows = await session.execute(
                select(
                    CreditLimit.id, CreditLimit.policy_id, CreditLimit.buyer_id,
                    CreditLimit.payment_terms_days, CreditLimit.decided_on,
                ).where(CreditLimit.policy_id.in_(pchunk), CreditLimit.buyer_id.in_(bchunk))
            )  # fmt: skip
            for r in limit_rows.all():
                limits[(r.policy_id, r.buyer_id)] = r._asdict()
            stop_rows = await session.execute(
                select(
                    StopShipment.policy_id, StopShipment.buyer_id, StopShipment.notified_on,
                    StopShipment.cleared_on,
                ).where(StopShipment.policy_id.in_(pchunk), StopShipment.buyer_id.in_(bchunk))
            )  # fmt: skip
            for r in stop_rows.all():
                stops[(r.policy_id, r.buyer_id)].append((r.notified_on, r.cleared_on))
            receivable_rows = await session.execute(
                select(
                    Receivable.policy_id, Receivable.buyer_id, Receivable.invoice_number,
                    Receivable.amount, Receivable.shipment_date, Receivable.paid_amount,
                    Receivable.paid_on,
                ).where(
                    Receivable.policy_id.in_(pchunk),
                    Receivable.buyer_id.in_(bchunk),
                    or_(
                        Receivable.paid_on.is_(None),
                        Receivable.paid_on > today,
                        Receivable.paid_amount < Receivable.amount,
                    ),
                )
            )  # fmt: skip
            for r in receivable_rows.all():
                receivables[(r.policy_id, r.buyer_id)].append(
                    rules.Receivable(r.invoice_number, r.amount, r.shipment_date,
                                     r.paid_amount, r.paid_on)
                )  # fmt: skip
    limit_ids = [v["id"] for v in limits.values()]
    history_map: dict[str, list[rules.HistoryEntry]] = defaultdict(list)
    for chunk in _chunks(limit_ids):
        if not chunk:
            continue
        entries = await session.execute(
            select(
                LimitAmount.limit_id, LimitAmount.amount, LimitAmount.effective_from,
                LimitAmount.effective_to,
            ).where(LimitAmount.limit_id.in_(chunk), LimitAmount.superseded_at.is_(None))
            .order_by(LimitAmount.effective_from.desc())
        )  # fmt: skip
        for e in entries.all():
            history_map[e.limit_id].append(
                rules.HistoryEntry(e.amount, e.effective_from, e.effective_to)
            )
    return BatchBooks(
        policies=policies,
        buyers=buyers,
        assigned_policies=assigned,
        sanctioned_buyers={b for b, _ in sanction_rows if b},
        sanctioned_countries={c for _, c in sanction_rows if c},
        limits=limits,
        history=history_map,
        stops=stops,
        receivables=receivables,
    )
