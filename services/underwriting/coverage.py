"""Underwriting use cases on coverage: the coverage check (the hot path: one statement, no
session), its batch, and a policy's exposure page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.underwriting import repository as repo
from services.underwriting import rules, views
from services.underwriting.config import UnderwritingSettings
from services.underwriting.limits import limits_page
from services.underwriting.schemas import (
    CoverageCheckCreate,
    ExposureList,
)
from services.underwriting.service import (
    Context,
    owned_policy,
)
from shared.auth import Caller
from shared.db import Reader
from shared.metrics import count_coverage
from shared.money import Money
from shared.pagination import PageRequest
from shared.problems import (
    DUE_BEFORE_SHIPMENT,
    Problem,
    not_found,
    unprocessable,
    validation_problem,
)
from shared.usecase import positive_amount_in

# ---------------------------------------------------------------- coverage


def _validate_item(item: CoverageCheckCreate, currency: str) -> Money:
    if item.due_date < item.shipment_date:
        raise unprocessable(DUE_BEFORE_SHIPMENT, "the due date is before the shipment date")
    amount = positive_amount_in(item.invoice_amount, currency, ["body", "invoice_amount", "amount"])
    return Money(amount, currency)


async def check_coverage(
    reader: Reader, caller: Caller, today: dt.date, item: CoverageCheckCreate
) -> dict[str, Any]:
    """Whether one receivable is covered, read from the books in one statement (the hot path:
    no session, no transaction, one round trip)."""
    row = await repo.coverage_row(
        reader, policy_id=item.policy_id, buyer_id=item.buyer_id,
        shipment_date=item.shipment_date, today=today, invoice_number=item.invoice_number,
        bank_id=caller.party_id if caller.role == "bank" else None,
    )  # fmt: skip
    answer = _coverage_answer(caller, item, row)
    count_coverage("single", (answer,))
    return answer


async def check_coverage_batch(
    reader: Reader,
    caller: Caller,
    today: dt.date,
    raw_items: list[Any],
    settings: UnderwritingSettings,
) -> list[dict[str, Any]]:
    """Each item answered as the single check would answer it: the books of the items are read
    set-based (a statement per chunk of items, several in flight while the answers to the first
    are worked out), then each is judged by the same code as a single check."""
    parsed: list[CoverageCheckCreate | Problem]
    try:
        parsed = list(_BATCH_ITEMS.validate_python(raw_items))
    except ValidationError:  # some items are malformed: find which, one by one
        parsed = []
        for raw in raw_items:
            try:
                parsed.append(CoverageCheckCreate.model_validate(raw))
            except ValidationError as exc:
                parsed.append(validation_problem(exc.errors()))
    results: list[dict[str, Any] | None] = [None] * len(parsed)
    valid: list[repo.BatchItem] = []
    for index, item in enumerate(parsed):
        if isinstance(item, Problem):
            results[index] = {"index": index, "error": item.body()}
        else:
            valid.append(repo.BatchItem(index, item.policy_id, item.buyer_id,
                                        item.shipment_date, item.invoice_number))  # fmt: skip
    chunks = repo.coverage_rows(
        reader, valid, today=today, bank_id=caller.party_id if caller.role == "bank" else None,
        chunk=settings.coverage_batch_chunk, parallel=settings.coverage_batch_parallel,
    )  # fmt: skip
    async for rows in chunks:
        for index, row in rows:
            item = parsed[index]
            assert isinstance(item, CoverageCheckCreate)
            try:
                results[index] = _coverage_answer(caller, item, row)
            except Problem as problem:
                results[index] = {"index": index, "error": problem.body()}
    missing = [index for index, result in enumerate(results) if result is None]
    if missing:  # every item has its row; anything else is a bug, not an answer
        raise RuntimeError(f"no coverage row for batch items {missing[:10]}")
    count_coverage("batch", results)  # type: ignore[arg-type]
    return results  # type: ignore[return-value]


_BATCH_ITEMS = TypeAdapter(list[CoverageCheckCreate])


def _coverage_answer(
    caller: Caller, item: CoverageCheckCreate, row: repo.CoverageRow
) -> dict[str, Any]:
    """The single check's judgement of one receivable from its row of the books (a batch runs
    the same for each of its items)."""
    if row.policy_id is None or (
        (caller.role == "policyholder" and row.policyholder_id != caller.party_id)
        or (caller.role == "bank" and not row.bank_assigned)
    ):
        raise not_found("policy", item.policy_id)
    if row.buyer_id is None:
        raise not_found("buyer", item.buyer_id)
    amount = _validate_item(item, row.currency)
    facts = rules.CoverageFacts(
        amount=amount, shipment_date=item.shipment_date, due_date=item.due_date,
        policy_start=row.start_date, policy_end=row.end_date,
        covered_countries=row.covered_countries,
        max_credit_period_days=row.max_credit_period_days, indemnity_pct=row.indemnity_pct,
        whole_turnover=row.cover_type == "whole_turnover",
        discretionary_limit=row.discretionary_limit, buyer_country=row.buyer_country,
        buyer_legal_form=row.buyer_legal_form, buyer_grade=row.buyer_grade,
        sanctioned=bool(row.sanctioned), stopped=bool(row.stopped),
        has_limit=row.limit_id is not None, decided_on=row.decided_on,
        limit_terms_days=row.limit_terms_days, limit_amount=row.limit_amount,
        exposure=row.exposure or Decimal(0), related_to_policyholder=bool(row.related),
        single_buyer_cap=row.single_buyer_cap,
    )  # fmt: skip
    return views.coverage_json(item.policy_id, item.buyer_id, rules.assess_coverage(facts))


async def exposure_page(ctx: Context, policy_id: str, page: PageRequest) -> ExposureList:
    """Per buyer: the limit in force today, the exposure (declared, unpaid) and the headroom."""
    policy = await owned_policy(ctx, policy_id)
    limits, cursor = await limits_page(ctx, policy_id, page)
    histories = await repo.history(ctx.session, [lim.id for lim in limits])
    by_buyer: dict[str, list[rules.Receivable]] = {}
    for r in await repo.receivables_of_policy(ctx.session, policy.id):
        by_buyer.setdefault(r.buyer_id, []).append(
            rules.Receivable(r.invoice_number, r.amount, r.shipment_date, r.paid_amount, r.paid_on)
        )
    items = []
    for lim in limits:
        entries = views.history_entries(histories.get(lim.id, []))
        in_force = rules.within_single_buyer_cap(
            rules.amount_in_force(entries, ctx.today) or Decimal(0), policy.single_buyer_cap
        )
        used = rules.exposure(by_buyer.get(lim.buyer_id, []), shipment_date=dt.date.max,
                              today=ctx.today)  # fmt: skip
        items.append(views.exposure_read(lim, in_force, used, policy.currency))
    return ExposureList(items=items, next_cursor=cursor)
