"""The floor for `bench/coverage_checks.py`: a bare ASGI app (no framework, no middleware, no
auth, no models) that answers `POST /v1/coverage-checks` by running the service's own coverage
statement on asyncpg and writing its row as JSON. Served by uvicorn like the service:

    DATABASE_URL=postgresql://… python -m uvicorn --factory bench.bare_coverage:create_app --port N

The same load generator on both gives the service's share of its floor."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

    from services.underwriting import repository as repo

    sql, order, literals, _ = repo._SINGLE.for_asyncpg(asyncpg_dialect())
    today = dt.date.fromisoformat(os.environ.get("TCI_FIXED_TODAY", dt.date.today().isoformat()))
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    state: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["pool"] = await asyncpg.create_pool(dsn, min_size=4, max_size=8)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await state["pool"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        item = orjson.loads(body) if body else {}
        params = {"policy_id": item.get("policy_id"), "buyer_id": item.get("buyer_id"),
                  "shipment_date": dt.date.fromisoformat(item.get("shipment_date", "2027-01-01")),
                  "today": today, "invoice_number": item.get("invoice_number"), "bank_id": None}  # fmt: skip
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(sql, *[params.get(n, literals.get(n)) for n in order])
        answer = orjson.dumps(None if row is None else [str(v) for v in row.values()])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    return app
