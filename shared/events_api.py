"""The events feed's route, the same on every service: `GET /v1/events?after=&types=&limit=&cursor=`
(api.md, "Events and webhooks"): parse, read the caller's page, answer."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from shared.auth import CallerDep
from shared.db import SessionDep
from shared.events import EventTables, caller_party
from shared.events_feed import FeedRequest, parse_types, read_feed
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.problems import problem_responses

After = Annotated[
    str | None, Query(min_length=1, max_length=64, description="the id of the last event read")
]
Types = Annotated[
    str | None, Query(max_length=1000, description="a comma-separated list of event types")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=512)]
FEED = """The caller's events, oldest first: a policyholder's and a bank's those naming its party, role
and id (a bank: those of the policies assigned to it), staff's every event of the service. `after` is the
id of the last event read (a feed to catch up from); an id that is not in the caller's feed is 422.
The ids are the webhooks' `webhook-id`s. Event types: {types}."""


def events_router(
    tables: EventTables, page_model: type[BaseModel], event_types: Collection[str]
) -> APIRouter:
    """The feed of one service: its event tables, the page model it publishes in OpenAPI (a
    discriminated union of its event types) and the types it announces."""
    router = APIRouter(prefix="/v1", tags=["events"])
    known = frozenset(event_types)

    @router.get("/events", response_model=page_model, responses=problem_responses(401, 422),
                description=FEED.format(types=", ".join(f"`{t}`" for t in sorted(known))))  # fmt: skip
    async def list_events(
        session: SessionDep, caller: CallerDep, after: After = None, types: Types = None,
        limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    ) -> Response:  # fmt: skip
        request = FeedRequest(
            party=caller_party(caller),
            limit=limit, after=after, cursor=cursor, types=parse_types(types, known),
        )  # fmt: skip
        page = await read_feed(session, tables, request)
        return Response(orjson.dumps(page.json()), media_type="application/json")

    return router
