"""The events feed's query: a caller's events after a position, oldest first, one page at a time.

A policyholder or a bank reads the events naming its party (`event_parties`), its role and its id
together (a bank's token carrying a policyholder's id reads no event of that policyholder's);
staff and services read every event of the service. The position is an event id the caller saw (`after`) or the
opaque cursor of the page before (`cursor`, which wins when both are given)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import MAX_BIG_INTEGER
from shared.events import EventTables, Party, event_json
from shared.problems import invalid


@dataclass(frozen=True)
class FeedRequest:
    """What a caller asks of the feed. `party` None: every event (staff, services)."""

    party: Party | None
    limit: int
    after: str | None = None
    cursor: str | None = None
    types: frozenset[str] | None = None


@dataclass(frozen=True)
class FeedPage:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def parse_types(raw: str | None, known: Collection[str]) -> frozenset[str] | None:
    """The event types a comma-separated `types` names (None: every type); a type the service
    does not announce is a 422 naming the known ones."""
    if raw is None or not raw.strip():
        return None
    named = {t.strip() for t in raw.split(",") if t.strip()}
    if not named:
        return None
    unknown = sorted(named - set(known))
    if unknown:
        raise invalid(["query", "types"],
                      f"unknown event type {', '.join(repr(t) for t in unknown)}; this service "
                      f"announces {', '.join(sorted(known))}")  # fmt: skip
    return frozenset(named)


def encode_cursor(seq: int) -> str:
    raw = json.dumps(["events", seq], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor names, or a 422 for a cursor this feed did not issue."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, seq = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if kind != "events" or not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError
        if not 0 <= seq <= MAX_BIG_INTEGER:  # what the column holds
            raise ValueError
        return seq
    except (ValueError, TypeError, RecursionError, binascii.Error):
        raise invalid(["query", "cursor"], "not a cursor issued by this feed") from None


def _visible(tables: EventTables, statement: Select[Any], party: Party | None) -> Select[Any]:
    if party is None:
        return statement
    parties = tables.parties
    return statement.where(
        exists().where(parties.c.event_seq == tables.events.c.seq, parties.c.party_id == party.key)
    )


async def _seq_after(session: AsyncSession, tables: EventTables, request: FeedRequest) -> int:
    """Where the page starts: after the cursor's position, or after the event named by `after`
    (an id that does not exist and one the caller may not see are the same 422)."""
    if request.cursor is not None:
        return decode_cursor(request.cursor)
    if request.after is None:
        return 0
    events = tables.events
    statement = _visible(tables, select(events.c.seq).where(events.c.id == request.after),
                         request.party)  # fmt: skip
    seq = (await session.execute(statement)).scalar_one_or_none()
    if seq is None:
        raise invalid(["query", "after"],
                      f"{request.after!r} is not the id of an event in your feed; give the id of "
                      "the last event you read, or no `after` to read from the start")  # fmt: skip
    return int(seq)


async def read_feed(session: AsyncSession, tables: EventTables, request: FeedRequest) -> FeedPage:
    """One page of the caller's events after its position, oldest first, and the cursor of the
    next page (None on the last)."""
    after = await _seq_after(session, tables, request)
    events, parties = tables.events, tables.parties
    if request.party is None:
        statement = select(events).where(events.c.seq > after).order_by(events.c.seq)
    else:  # along the parties' primary key: (party_id, event_seq), `party_id` its `role:id`
        statement = (
            select(events)
            .join(parties, parties.c.event_seq == events.c.seq)
            .where(parties.c.party_id == request.party.key, parties.c.event_seq > after)
            .order_by(parties.c.event_seq)
        )
    if request.types is not None:
        statement = statement.where(events.c.type.in_(sorted(request.types)))
    rows = (await session.execute(statement.limit(request.limit + 1))).all()
    if len(rows) <= request.limit:
        return FeedPage([event_json(row) for row in rows], None)
    page = rows[: request.limit]
    return FeedPage([event_json(row) for row in page], encode_cursor(int(page[-1].seq)))
