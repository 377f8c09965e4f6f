"""Underwriting use cases on coverage: the coverage check (the hot path: one statement, no
session), its batch, and a policy's exposure page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, NamedTuple, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic's own on Python 3.11

from services.underwriting import repository as repo
from services.underwriting import rules, views
from services.underwriting.config import UnderwritingSettings
from services.underwriting.schemas import (
    CoverageCheckCreate,
    ExposureList,
)
from services.underwriting.service import (
    Context,
    owned_policy,
)
from shared.auth import Caller
from shared.contracts import (
    ISO_DATE,
    MAX_DATE,
    MIN_DATE,
    POSITIVE_AMOUNT_SCHEMA,
    Ident,
)
from shared.db import Reader
from shared.metrics import count_coverage
from shared.money import Money, MoneyError, minor_units
from shared.pagination import KeyPageRequest
from shared.problems import (
    DUE_BEFORE_SHIPMENT,
    Problem,
    not_found,
    unprocessable,
    validation_problem,
)
from shared.usecase import positive_amount_in

# ---------------------------------------------------------------- coverage


class Item(NamedTuple):
    """One receivable to check, validated (a tuple: a batch has 10,000 of them)."""

    policy_id: str
    buyer_id: str
    invoice_amount: Money
    shipment_date: dt.date
    due_date: dt.date
    invoice_number: str | None


def item_of(model: CoverageCheckCreate) -> Item:
    """The item of a validated coverage check."""
    amount = model.invoice_amount
    return Item(model.policy_id, model.buyer_id, Money(amount.amount, amount.currency),
                model.shipment_date, model.due_date, model.invoice_number)  # fmt: skip


def _validate_item(item: Item, currency: str) -> Money:
    if item.due_date < item.shipment_date:
        raise unprocessable(DUE_BEFORE_SHIPMENT, "the due date is before the shipment date")
    amount = positive_amount_in(item.invoice_amount, currency, ["body", "invoice_amount", "amount"])
    return Money(amount, currency)


async def check_coverage(
    reader: Reader, caller: Caller, today: dt.date, model: CoverageCheckCreate
) -> dict[str, Any]:
    """Whether one receivable is covered, read from the books in one statement (the hot path:
    no session, no transaction, one round trip)."""
    item = item_of(model)
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
    parsed = batch_items(raw_items)
    results: list[dict[str, Any] | None] = [None] * len(parsed)
    valid: list[repo.BatchItem] = []
    for index, item in enumerate(parsed):
        if isinstance(item, Problem):
            results[index] = item_error(index, item)
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
            assert not isinstance(item, Problem)
            try:
                results[index] = _coverage_answer(caller, item, row)
            except Problem as problem:
                results[index] = item_error(index, problem)
    missing = [index for index, result in enumerate(results) if result is None]
    if missing:  # every item has its row; anything else is a bug, not an answer
        raise RuntimeError(f"no coverage row for batch items {missing[:10]}")
    count_coverage("batch", results)  # type: ignore[arg-type]
    return results  # type: ignore[return-value]


def item_error(index: int, problem: Problem) -> dict[str, Any]:
    """A batch item's answer when the single check of it would have been `problem`: the same
    problem, each field it names (`loc`, of its `errors` and its own) located in the batch's
    body, `["body", "items", <index>, ...]`, as a validation of the whole body would."""
    error = problem.body()
    if "loc" in error:
        error["loc"] = _in_item(index, error["loc"])
    if "errors" in error:
        error["errors"] = [{**e, "loc": _in_item(index, e["loc"])} for e in error["errors"]]
    return {"index": index, "error": error}


def _in_item(index: int, loc: Sequence[str | int]) -> list[str | int]:
    """A field of a single check's body (`["body", "invoice_amount", ...]`) as a field of the
    batch's item `index`."""
    inside = loc[1:] if loc[:1] == ["body"] or loc[:1] == ("body",) else loc
    return ["body", "items", index, *inside]


def batch_items(raw_items: list[Any]) -> list[Item | Problem]:
    """Each item of a batch validated as `CoverageCheckCreate` validates it, or the problem its
    validation gives. Most items are plain (`_PlainItem`): pydantic-core takes them all at once,
    with no Python validator per field, and `_plain_item` makes the money checks; any other
    item is validated by the model itself, whose errors are the answer."""
    try:
        plain: list[_PlainItem | None] = list(_PLAIN_ITEMS.validate_python(raw_items))
    except ValidationError:  # some items are not plain: find which, one by one
        plain = []
        for raw in raw_items:
            try:
                plain.append(_PLAIN_ITEM.validate_python(raw))
            except ValidationError:
                plain.append(None)
    parsed: list[Item | Problem] = []
    for raw, fields in zip(raw_items, plain, strict=True):
        item = None if fields is None else _plain_item(fields)
        if item is None:
            try:
                item = item_of(CoverageCheckCreate.model_validate(raw))
            except ValidationError as exc:  # located as the single check locates them
                parsed.append(validation_problem(
                    [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]))  # fmt: skip
                continue
        parsed.append(item)
    return parsed


@with_config(ConfigDict(extra="forbid"))
class _PlainMoney(TypedDict):
    # Written as `PositiveMoney` publishes it (no sign, no leading zeros, at most 4 decimals).
    amount: Annotated[str, Field(pattern=POSITIVE_AMOUNT_SCHEMA["pattern"])]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


# A date as written (`YYYY-MM-DD`), read by `_plain_item`: a Python validator per date would cost
# a batch of 10,000 items ~20 ms of its parsing's ~35.
_WrittenDate = Annotated[str, Field(pattern=rf"^{ISO_DATE.pattern}$")]


@with_config(ConfigDict(extra="forbid"))
class _PlainItem(TypedDict):
    """A coverage check as almost every one is written: ASCII identifiers (`Ident`, as the
    model's), an amount written as `PositiveMoney` publishes it, a currency of three capitals,
    business dates, and an invoice number of printable ASCII, if any. A sieve, not a contract: what it
    takes, `CoverageCheckCreate` takes with the same values once `_plain_item` has checked the
    money; what it refuses goes to the model."""

    policy_id: Ident
    buyer_id: Ident
    invoice_amount: _PlainMoney
    shipment_date: _WrittenDate
    due_date: _WrittenDate
    # Printable ASCII with no blank around it: what the model's folding leaves as it is.
    invoice_number: NotRequired[
        Annotated[str, Field(max_length=100, pattern=r"^([!-~]([ -~]*[!-~])?)?$")] | None
    ]


_PLAIN_ITEM = TypeAdapter(_PlainItem)
_PLAIN_ITEMS = TypeAdapter(list[_PlainItem])


def _plain_item(fields: _PlainItem) -> Item | None:
    """The item, when its amount is money the model takes as it is written: a known currency,
    above zero, no more decimals than the currency's minor unit, and its dates are days of the
    calendar within the business range (None: the model decides)."""
    try:
        shipped = dt.date.fromisoformat(fields["shipment_date"])
        due = dt.date.fromisoformat(fields["due_date"])
    except ValueError:
        return None
    if not (MIN_DATE <= shipped <= MAX_DATE and MIN_DATE <= due <= MAX_DATE):
        return None
    money = fields["invoice_amount"]
    amount = Decimal(money["amount"])
    try:
        units = minor_units(money["currency"])
    except MoneyError:
        return None
    exponent = amount.as_tuple().exponent
    if amount <= 0 or not isinstance(exponent, int) or -exponent > units:
        return None
    return Item(fields["policy_id"], fields["buyer_id"], Money(amount, money["currency"]),
                shipped, due, fields.get("invoice_number"))  # fmt: skip


def _coverage_answer(caller: Caller, item: Item, row: repo.CoverageRow) -> dict[str, Any]:
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
    # Positional, in the order of the fields: keywords would cost a batch 30 ms.
    facts = rules.CoverageFacts(
        amount, item.shipment_date, item.due_date,  # amount, shipment_date, due_date
        row.start_date, row.end_date,  # policy_start, policy_end
        row.covered_countries, row.max_credit_period_days, row.indemnity_pct,
        row.cover_type == "whole_turnover",  # whole_turnover
        row.discretionary_limit, row.buyer_country, row.buyer_legal_form, row.buyer_grade,
        bool(row.sanctioned), bool(row.stopped),  # sanctioned, stopped
        row.limit_id is not None,  # has_limit
        row.decided_on, row.limit_terms_days, row.limit_amount,
        row.exposure or Decimal(0),  # exposure
        bool(row.related),  # related_to_policyholder
        row.single_buyer_cap,
    )  # fmt: skip
    return views.coverage_json(item.policy_id, item.buyer_id, rules.assess_coverage(facts))


async def exposure_page(
    ctx: Context, policy_id: str, page: KeyPageRequest, buyer_ids: list[str] | None = None
) -> ExposureList:
    """Per buyer of the policy's book (a limit granted on it, or receivables declared), by buyer
    id, of the `buyer_ids` only when named: the limit a coverage check of a shipment today
    counts (`rules.limit_that_counts`: the credit limit's amount in force, or the discretionary
    limit, or none) with its source, the exposure (declared, unpaid) and the headroom; a page
    read in one statement, over its own buyers' books only."""
    policy = await owned_policy(ctx, policy_id)
    rows, cursor = await repo.exposure_page(ctx.session, policy.id, ctx.today, page, buyer_ids)
    whole_turnover = policy.cover_type == "whole_turnover"
    items = []
    for row in rows:
        limit = rules.limit_that_counts(rules.LimitOnDay(
            ctx.today, policy.max_credit_period_days, whole_turnover, policy.discretionary_limit,
            row.buyer_grade, row.decided_on is not None, row.decided_on, row.limit_terms_days,
            row.limit_amount, policy.single_buyer_cap,
        ))  # fmt: skip
        items.append(views.exposure_read(row.buyer_id, row.limit_id, limit, row.exposure,
                                         policy.currency))  # fmt: skip
    return ExposureList(items=items, next_cursor=cursor)
