"""The collections service app."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.collections import service as uc
from services.collections.api import router
from services.collections.config import CollectionsSettings
from services.collections.events import EVENT_TYPES, EVENTS
from services.collections.events import router as events_router
from services.collections.models import events, metadata, outbox, webhooks
from shared.app import create_app as create_service_app
from shared.auth import Caller
from shared.outbox import deliver_periodically
from shared.peers import build_peers
from shared.periodic import run_periodically, running
from shared.webhooks import Webhooks
from shared.webhooks_api import webhook_router

log = logging.getLogger("tci.collections")
SCHEDULER = Caller(subject="escalation-scheduler", role="service", party_id=None)
hooks = Webhooks("collections", webhooks, events, EVENT_TYPES)


async def escalate_daily(
    sessionmaker: async_sessionmaker[AsyncSession], settings: CollectionsSettings
) -> None:
    """The scheduler: run the ladder for today now and then every interval (it is idempotent: a
    case already on its rung is not moved again; a failed run is retried at the next)."""

    async def escalate_today() -> None:
        async with sessionmaker() as session:
            ctx = uc.Context(session=session, caller=SCHEDULER, today=settings.today(),
                             settings=settings)  # fmt: skip
            result = await uc.run_escalations(ctx, ctx.today)
            await session.commit()
            if result.moved:
                log.info("escalated %d cases", len(result.moved))

    await run_periodically("the escalation run", escalate_today,
                           every=settings.escalation_interval_seconds)  # fmt: skip


def create_app(settings: CollectionsSettings | None = None) -> FastAPI:
    settings = settings or CollectionsSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.peers = build_peers(settings, "collections")
        jobs = running(
            escalate_daily(app.state.sessionmaker, settings),
            hooks.dispatch_periodically(app.state.sessionmaker, settings),
            deliver_periodically(
                app.state.sessionmaker, outbox, app.state.peers,
                every=dt.timedelta(seconds=settings.outbox_interval_seconds),
                lease=dt.timedelta(seconds=settings.outbox_lease_seconds)),
        )  # fmt: skip
        try:
            async with jobs:
                yield
        finally:
            for client in app.state.peers.values():
                await client.aclose()

    return create_service_app(
        service="collections",
        settings=settings,
        metadata=metadata,
        routers=[router, events_router, webhook_router(hooks)],
        title="TCI collections",
        description="Debt-collection cases on escalation ladders, activities, recoveries.",
        lifespan=lifespan,
        events=EVENTS,
    )
