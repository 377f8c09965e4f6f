"""The events feed's route, the same on every service: `GET /v1/events?after=&types=&limit=&cursor=`
(api.md, "Events and webhooks"): parse, read the caller's page, answer; and the webhooks each event
type is delivered by, as OpenAPI publishes them."""

from __future__ import annotations

import inspect
from collections.abc import Collection, Sequence
from typing import Annotated, Any, get_args

import orjson
from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import BaseModel

from shared.auth import CallerDep
from shared.db import SessionDep
from shared.events import Event, EventTables, caller_party
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


WebhookId = Annotated[
    str, Header(alias="webhook-id", description="the event's id: deduplicate on it")
]
WebhookTimestamp = Annotated[
    str, Header(alias="webhook-timestamp", pattern=r"^[0-9]+$",
                description="when the message was sent, in seconds since the Unix epoch")
]  # fmt: skip
WebhookSignature = Annotated[
    str, Header(alias="webhook-signature",
                description="`v1,<base64 HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>."
                "<body>`, keyed with the endpoint's secret (Standard Webhooks); several may be "
                "given, separated by spaces, while a secret is rotated")
]  # fmt: skip
WEBHOOK_ANSWERS: dict[int | str, dict[str, Any]] = {
    "2XX": {"description": "received: the delivery is done"},
    "default": {"description": "any other answer, or none within the timeout: the delivery is "
                "retried with backoff for at least 24 hours, in order per endpoint"},
}  # fmt: skip


def declare_webhooks(webhooks: APIRouter, events: Sequence[type[Event]]) -> None:
    """One OpenAPI webhook per event type (`app.webhooks`): the POST a registered endpoint
    receives, its body the event's model (as the feed lists it) and its Standard Webhooks
    headers, so that a receiver parses a delivery with a generated model."""
    for event in events:
        (event_type,) = get_args(event.model_fields["type"].annotation)
        data = event.model_fields["data"].annotation
        parameters = [
            inspect.Parameter("event", inspect.Parameter.KEYWORD_ONLY,
                              annotation=Annotated[event, Body()]),
            inspect.Parameter("webhook_id", inspect.Parameter.KEYWORD_ONLY,
                              annotation=WebhookId),
            inspect.Parameter("webhook_timestamp", inspect.Parameter.KEYWORD_ONLY,
                              annotation=WebhookTimestamp),
            inspect.Parameter("webhook_signature", inspect.Parameter.KEYWORD_ONLY,
                              annotation=WebhookSignature),
        ]  # fmt: skip

        async def receive(**_: Any) -> None:
            """Never called: it describes what an endpoint receives."""

        receive.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        webhooks.add_api_route(
            event_type, receive, methods=["POST"], name=event_type.replace(".", "_"),
            summary=event_type, description=inspect.getdoc(data) or "",
            responses=WEBHOOK_ANSWERS, tags=["webhooks"],
            generate_unique_id_function=lambda route: route.name,
        )  # fmt: skip


def only_declared_webhook_answers(schema: dict[str, Any]) -> None:
    """A webhook's answers are the receiver's (WEBHOOK_ANSWERS), not what FastAPI adds to any
    operation (a 200, a 422)."""
    for operations in schema.get("webhooks", {}).values():
        for operation in operations.values():
            operation["responses"] = dict(WEBHOOK_ANSWERS)
