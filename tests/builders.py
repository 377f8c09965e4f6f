"""Builders for test data over the API."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import Query, TransactionReader
from tests.conftest import auth, unique


def money(amount: str, currency: str = "EUR") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def assert_no_floats(value: Any, path: str = "$") -> None:
    """Money and percentages travel as decimal strings: a float anywhere is a leak."""
    assert not isinstance(value, float), f"float at {path}: {value!r}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert_no_floats(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_no_floats(item, f"{path}[{index}]")


def ok(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert_no_floats(body)
    return body  # type: ignore[no-any-return]


async def make_policy(client: httpx.AsyncClient, holder: str | None = None, **overrides: Any
                      ) -> dict[str, Any]:  # fmt: skip
    body = {
        "policyholder_id": holder or unique("ph"),
        "currency": "EUR",
        "start_date": "2026-01-01",
        "end_date": "2027-12-31",
        "cover_type": "whole_turnover",
        "max_liability": money("5000000"),
        "premium_rate_pct": "0.35",
        **overrides,
    }
    return ok(await client.post("/v1/policies", json=body, headers=auth("underwriter")), 201)


async def make_buyer(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Buyer Co",
        "country": "DE",
        "registration_number": unique("HRB"),
        "indicators": {
            "current_ratio": "2.5",
            "dso_days": "40",
            "dso_prior_year_days": "40",
            "overdue_ratio": "0.01",
            "litigation_count": 0,
            "management_changes_12m": 0,
            "equity": money("50000000"),
        },
        **overrides,
    }
    return ok(await client.post("/v1/buyers", json=body, headers=auth("underwriter")), 201)


def weak_indicators(current_ratio: str = "0.5", overdue_ratio: str = "0.2") -> dict[str, Any]:
    """Six points in Germany (country level 2): grade 7 (an overdue ratio above 30 % adds one)."""
    return {"current_ratio": current_ratio, "dso_days": "40", "dso_prior_year_days": "40",
            "overdue_ratio": overdue_ratio, "litigation_count": 0, "management_changes_12m": 0,
            "equity": money("50000000")}  # fmt: skip


async def request_limit(client: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str,
                        amount: str, terms: int = 90) -> dict[str, Any]:  # fmt: skip
    response = await client.post(
        f"/v1/policies/{policy['id']}/limit-requests",
        json={"buyer_id": buyer_id, "amount": money(amount), "payment_terms_days": terms},
        headers=auth("policyholder", policy["policyholder_id"]),
    )
    return ok(response, 201)


async def check(client: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str, amount: str,
                shipment: str, due: str, headers: dict[str, str] | None = None,
                **extra: Any) -> httpx.Response:  # fmt: skip
    return await client.post(
        "/v1/coverage-checks",
        json={"policy_id": policy["id"], "buyer_id": buyer_id, "invoice_amount": money(amount),
              "shipment_date": shipment, "due_date": due, **extra},
        headers=headers or auth("policyholder", policy["policyholder_id"]),
    )  # fmt: skip


@contextmanager
def declared_on(client: httpx.AsyncClient, day: dt.date) -> Iterator[None]:
    """The in-process app's today moved to `day` for the block, then back: a book declared when
    its payments were past, read on an earlier day (as a book declared before payments after
    today were refused may still hold them)."""
    settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    before = settings.fixed_today
    settings.fixed_today = day
    try:
        yield
    finally:
        settings.fixed_today = before


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent through `engine` meanwhile, but the test's own savepoints (each
    commit of the app is one in the test's transaction; in production it is the COMMIT), and
    those its readers (`shared.db.Reader`, in a test the test's `TransactionReader`) send to
    asyncpg directly, past SQLAlchemy's cursor (on SQLite they go through it)."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            sent.append(statement)

    run = TransactionReader._run

    async def counted(
        reader: TransactionReader, query: Query, params: dict[str, Any], *, one: bool
    ) -> list[tuple[Any, ...]]:
        if reader.asyncpg and reader.connection.sync_engine is engine.sync_engine:
            sent.append(str(query.statement))
        return await run(reader, query, params, one=one)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    TransactionReader._run = counted  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        TransactionReader._run = run  # type: ignore[method-assign]
        event.remove(engine.sync_engine, "before_cursor_execute", count)


def keyed(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}
