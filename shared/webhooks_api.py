"""Webhook endpoint routes (api.md, "Events and webhooks"), the same on each service for the events
it owns: a policyholder or bank registers, lists, tests and deletes its own endpoints (the same role
and id: a bank's token carrying a policyholder's id sees none of the policyholder's) and reads their
delivery attempts; staff do so for any party."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from shared.auth import Caller, require
from shared.db import SessionDep
from shared.idempotency import CommandDep
from shared.pagination import Page, PageDep
from shared.problems import created_responses, problem_responses
from shared.settings import Settings
from shared.webhooks import (
    PartyRole,
    WebhookAttemptRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    Webhooks,
    endpoint_create_model,
)

PartyOrStaff = Annotated[
    Caller,
    Depends(require("policyholder", "bank", "underwriter", "claims_handler", "collector")),
]
EndpointPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
READ = problem_responses(401, 403, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 422)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def webhook_router(hooks: Webhooks) -> APIRouter:
    """The `/v1/webhook-endpoints` routes of one service."""
    router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])
    _add_endpoint_routes(router, hooks)
    _add_delivery_routes(router, hooks)
    return router


def _add_endpoint_routes(router: APIRouter, hooks: Webhooks) -> None:
    async def create_webhook_endpoint(
        body: WebhookEndpointCreate, request: Request, session: SessionDep,
        caller: PartyOrStaff, cmd: CommandDep,
    ) -> Response:  # fmt: skip
        """Register an endpoint for some of this service's event types: a policyholder or bank
        for itself, staff for the party named in `party_role` and `party_id`. It hears the events from now on
        (earlier ones are in `GET /v1/events`). The signing `secret` is in this answer only."""
        settings = _settings(request)
        return await cmd.run(lambda: hooks.register(session, caller, body, settings),
                             status_code=201,
                             location=lambda e: f"/v1/webhook-endpoints/{e.id}")  # fmt: skip

    # The body as this service publishes it: its own event types as an enum.
    create_webhook_endpoint.__annotations__["body"] = endpoint_create_model(hooks.event_types)
    router.post("", status_code=201, response_model=WebhookEndpointCreated,
                responses={**WRITE, **created_responses()})(create_webhook_endpoint)  # fmt: skip

    @router.get("", response_model=Page[WebhookEndpointRead], responses=READ)
    async def list_webhook_endpoints(
        session: SessionDep, caller: PartyOrStaff, page: PageDep,
        party_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        party_role: Annotated[PartyRole | None, Query()] = None,
    ) -> Page[WebhookEndpointRead]:  # fmt: skip
        """A party's own endpoints (its role and id); staff every endpoint (`?party_role=` and
        `?party_id=` for one party's)."""
        return await hooks.endpoints(session, caller, party_id, page, party_role)

    @router.get("/{endpoint_id}", response_model=WebhookEndpointRead, responses=READ)
    async def get_webhook_endpoint(
        endpoint_id: EndpointPath, session: SessionDep, caller: PartyOrStaff
    ) -> WebhookEndpointRead:
        """One endpoint: its status (`active`, `failing`, `disabled` and why) and next retry."""
        return await hooks.endpoint(session, caller, endpoint_id)

    @router.delete("/{endpoint_id}", status_code=204, response_class=Response, responses=READ)
    async def delete_webhook_endpoint(
        endpoint_id: EndpointPath, session: SessionDep, caller: PartyOrStaff
    ) -> Response:
        """Delete an endpoint: nothing more is delivered to it; its attempts go with it."""
        await hooks.remove(session, caller, endpoint_id)
        return Response(status_code=204)


def _add_delivery_routes(router: APIRouter, hooks: Webhooks) -> None:
    @router.get("/{endpoint_id}/deliveries", response_model=Page[WebhookAttemptRead],
                responses=READ)  # fmt: skip
    async def list_webhook_deliveries(
        endpoint_id: EndpointPath, session: SessionDep, caller: PartyOrStaff, page: PageDep
    ) -> Page[WebhookAttemptRead]:
        """Every delivery attempt to the endpoint, oldest first: when, the receiver's status,
        the error."""
        return await hooks.deliveries(session, caller, endpoint_id, page)

    @router.post("/{endpoint_id}/test", response_model=WebhookAttemptRead, responses=WRITE)
    async def test_webhook_endpoint(
        endpoint_id: EndpointPath, request: Request, session: SessionDep, caller: PartyOrStaff,
        cmd: CommandDep,
    ) -> Response:  # fmt: skip
        """Post a signed `webhook.test` message to the endpoint now and answer the attempt. A
        2xx makes a `failing` or `disabled` endpoint active again."""
        settings = _settings(request)
        return await cmd.run(lambda: hooks.test(session, caller, endpoint_id, settings))
