"""Lists: `?limit=&cursor=` pages ordered by `created_at`, then `id` (or by an id of the list's
own: `KeyPageRequest`), with an opaque cursor: the
position of the last item shown, signed for the one list that issued it (its service and
route path template, e.g. collections' `/v1/cases`) with a key every replica derives from the JWT secret. A cursor of
another list, an altered one and a hand-made one are a 422."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Integer, Select, bindparam, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from shared import db, signing
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
    # The list asked for (its route's path template) and the secret its cursors are signed with.
    list_path: str = Field("", repr=False)
    secret: str = Field("", repr=False)

    def cursor(self, created_at: dt.datetime, ident: str) -> str:
        """The cursor of the page after the item at this position, in this list."""
        return encode_cursor(created_at, ident, list_path=self.list_path, secret=self.secret)


def _purpose(list_path: str) -> str:
    return f"cursor {list_path}"


class KeyPageRequest(BaseModel):
    """A page of a list ordered by an id of its own rather than by `created_at` (the exposure's
    buyers, by buyer id): its cursor names the last id shown."""

    limit: int
    after: str | None
    list_path: str = Field("", repr=False)
    secret: str = Field("", repr=False)

    def cursor(self, key: str) -> str:
        """The cursor of the page after the item of this id, in this list."""
        return _signed([key], list_path=self.list_path, secret=self.secret)


def _signed(position: list[str], *, list_path: str, secret: str) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return signing.sign(secret, _purpose(list_path), encoded)


def _position(cursor: str, *, list_path: str, secret: str) -> Any:
    """The position a cursor signed for this list carries (ValueError: not one)."""
    signed = signing.verified(secret, _purpose(list_path), cursor)
    if signed is None:
        raise ValueError
    padded = signed + "=" * (-len(signed) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode()))


_NOT_A_CURSOR = (ValueError, TypeError, OverflowError, RecursionError, binascii.Error)


def _not_a_cursor() -> Exception:
    return invalid(["query", "cursor"], "not a cursor issued by this API")


def encode_cursor(created_at: dt.datetime, ident: str, *, list_path: str, secret: str) -> str:
    return _signed([created_at.isoformat(), ident], list_path=list_path, secret=secret)


def decode_cursor(cursor: str, *, list_path: str, secret: str) -> tuple[dt.datetime, str]:
    """The position a cursor names, or a 422 for a cursor this list did not issue (another
    list's, altered, hand-made): signed for this list, a timezone-aware moment that still is one
    in UTC, and an id that is storable text."""
    try:
        created_at, ident = _position(cursor, list_path=list_path, secret=secret)
        moment = dt.datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not isinstance(ident, str) or unstorable_text(ident):
            raise ValueError
        return moment.astimezone(dt.UTC), ident
    except _NOT_A_CURSOR:
        raise _not_a_cursor() from None


def decode_key_cursor(cursor: str, *, list_path: str, secret: str) -> str:
    """The id a `KeyPageRequest`'s cursor names, or a 422 as `decode_cursor`."""
    try:
        [key] = _position(cursor, list_path=list_path, secret=secret)
        if not isinstance(key, str) or unstorable_text(key):
            raise ValueError
        return key
    except _NOT_A_CURSOR:
        raise _not_a_cursor() from None


def _list_of(request: Request) -> tuple[str, str]:
    """The list a request reads, the service's path as asked (one policy's exposure, one buyer's
    history: a cursor of another's list would skip its items before the cursor's place), and the
    secret its cursors are signed with."""
    secret: str = request.app.state.settings.jwt_secret
    return f"{request.app.state.service}:{request.url.path}", secret


LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CursorQuery = Annotated[str | None, Query(max_length=512)]


async def page_request(
    request: Request, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> PageRequest:
    """The page asked for."""
    list_path, secret = _list_of(request)
    after = decode_cursor(cursor, list_path=list_path, secret=secret) if cursor else None
    return PageRequest(limit=limit, after=after, list_path=list_path, secret=secret)


async def key_page_request(
    request: Request, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> KeyPageRequest:
    """The page asked for, of a list ordered by an id of its own."""
    list_path, secret = _list_of(request)
    after = decode_key_cursor(cursor, list_path=list_path, secret=secret) if cursor else None
    return KeyPageRequest(limit=limit, after=after, list_path=list_path, secret=secret)


PageDep = Annotated[PageRequest, Depends(page_request)]
KeyPageDep = Annotated[KeyPageRequest, Depends(key_page_request)]


# The parameters of a page's statement: how many rows (one more than the page shows, to know
# whether another page follows) and, after a cursor, the position it names.
_LIMIT, _AFTER_CREATED_AT, _AFTER_ID = "page_limit", "page_after_created_at", "page_after_id"


Moment = ColumnElement[dt.datetime] | InstrumentedAttribute[dt.datetime]
Ident = ColumnElement[str] | InstrumentedAttribute[str]


def _paged(
    statement: Select[Any], created_at: Moment, ident: Ident, *, after: bool, newest_first: bool
) -> Select[Any]:
    """`statement` ordered by `created_at`, then `id` (newest first: both descending), limited,
    and after a cursor's position, the limit and the position as parameters (`_page_params`)."""
    if after:
        position = tuple_(bindparam(_AFTER_CREATED_AT, type_=created_at.type),
                          bindparam(_AFTER_ID, type_=ident.type))  # fmt: skip
        key = tuple_(created_at, ident)
        statement = statement.where(key < position if newest_first else key > position)
    order = (created_at.desc(), ident.desc()) if newest_first else (created_at, ident)
    return statement.order_by(*order).limit(bindparam(_LIMIT, type_=Integer))


def _page_params(page: PageRequest) -> dict[str, Any]:
    if page.after is None:
        return {_LIMIT: page.limit + 1}
    moment, after_id = page.after
    return {_LIMIT: page.limit + 1, _AFTER_CREATED_AT: moment, _AFTER_ID: after_id}


def _split(
    rows: Sequence[T], page: PageRequest, position: Callable[[T], tuple[dt.datetime, str]]
) -> tuple[Sequence[T], str | None]:
    """The page's rows and the cursor of the next page (None on the last)."""
    if len(rows) <= page.limit:
        return rows, None
    return rows[: page.limit], page.cursor(*position(rows[page.limit - 1]))


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
    paged = _paged(statement, created_at, ident, after=page.after is not None,
                   newest_first=newest_first)  # fmt: skip
    rows = (await session.execute(paged, _page_params(page))).scalars().all()
    return _split(rows, page, lambda row: (row.created_at, row.id))


class PageQueries:
    """A list's pages read through a `shared.db.Reader` (no session, no ORM objects): the
    statement ordered and limited as `fetch_page` does it, built once for a first page and
    once for the pages after a cursor. Its rows are tuples of the statement's columns, among
    them `created_at` and `ident`."""

    def __init__(
        self, statement: Select[Any], *, created_at: ColumnElement[dt.datetime],
        ident: ColumnElement[str], newest_first: bool = False,
    ) -> None:  # fmt: skip
        self.first = db.Query(_paged(statement, created_at, ident, after=False,
                                     newest_first=newest_first))  # fmt: skip
        self.after = db.Query(_paged(statement, created_at, ident, after=True,
                                     newest_first=newest_first))  # fmt: skip
        columns = list(statement.selected_columns)
        self._created_at = next(i for i, c in enumerate(columns) if c is created_at)
        self._ident = next(i for i, c in enumerate(columns) if c is ident)

    async def rows(
        self, reader: db.Reader, page: PageRequest, params: Mapping[str, Any]
    ) -> tuple[Sequence[tuple[Any, ...]], str | None]:
        """One page of the rows, `params` the statement's own parameters, and the cursor of
        the next page (None on the last)."""
        query = self.first if page.after is None else self.after
        rows = await reader.all(query, {**params, **_page_params(page)})
        return _split(rows, page, lambda row: (row[self._created_at], row[self._ident]))
