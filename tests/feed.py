"""Reading a service's events feed in tests: every page, and the events since a mark."""

from __future__ import annotations

from typing import Any

import httpx

from tests.builders import ok
from tests.conftest import auth

STAFF = auth("underwriter")


async def read_feed(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Every event the caller's feed lists (all pages, following `next_cursor`)."""
    items: list[dict[str, Any]] = []
    query = {"limit": 500, **{k: v for k, v in params.items() if v is not None}}
    while True:
        page = ok(await client.get("/v1/events", headers=headers or STAFF, params=query), 200)
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        query["cursor"] = page["next_cursor"]


async def mark(client: httpx.AsyncClient) -> str | None:
    """The id of the newest event of the service (None: none yet): read after it to see only what
    a test causes."""
    items = await read_feed(client)
    return items[-1]["id"] if items else None


async def events_since(
    client: httpx.AsyncClient, since: str | None, headers: dict[str, str] | None = None,
    **params: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """The events after `since` (a `mark`) the caller's feed lists."""
    return await read_feed(client, headers, after=since, **params)


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]
