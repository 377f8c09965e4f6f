"""Lists: `?limit=&cursor=` pages ordered by `created_at`, then `id`, with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.contracts import unstorable_text
from shared.problems import invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class PageRequest(BaseModel):
    limit: int
    after: tuple[dt.datetime, str] | None


def encode_cursor(created_at: dt.datetime, ident: str) -> str:
    raw = json.dumps([created_at.isoformat(), ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The position a cursor names, or a 422 for a cursor this API did not issue: a timezone-aware
    moment that still is one in UTC, and an id that is storable text."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = dt.datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not isinstance(ident, str) or unstorable_text(ident):
            raise ValueError
        return moment.astimezone(dt.UTC), ident
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
        raise invalid(["query", "cursor"], "not a cursor issued by this API") from None


async def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageDep = Annotated[PageRequest, Depends(page_request)]


async def fetch_page(
    session: AsyncSession,
    statement: Select[Any],
    page: PageRequest,
    *,
    created_at: InstrumentedAttribute[dt.datetime],
    ident: InstrumentedAttribute[str],
    newest_first: bool = False,
) -> tuple[Sequence[Any], str | None]:
    """One page of `statement`'s rows and the cursor of the next page (None on the last); a
    history is read `newest_first`, the same cursor then moving back in time."""
    if page.after is not None:
        moment, after_id = page.after
        position = tuple_(literal(moment, created_at.type), literal(after_id, ident.type))
        key = tuple_(created_at, ident)
        statement = statement.where(key < position if newest_first else key > position)
    order = (created_at.desc(), ident.desc()) if newest_first else (created_at, ident)
    statement = statement.order_by(*order).limit(page.limit + 1)
    rows = (await session.execute(statement)).scalars().all()
    if len(rows) <= page.limit:
        return rows, None
    last = rows[page.limit - 1]
    return rows[: page.limit], encode_cursor(last.created_at, last.id)
