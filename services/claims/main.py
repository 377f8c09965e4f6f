"""The claims service app."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.claims.api import router
from services.claims.calendar_api import router as calendar_router
from services.claims.config import ClaimsSettings
from services.claims.events import EVENT_TYPES, EVENTS
from services.claims.events import router as events_router
from services.claims.models import events, metadata, outbox, webhooks
from services.claims.service import lapse_overdue, record_delivery
from shared.app import create_app as create_service_app
from shared.outbox import deliver_periodically
from shared.peers import build_peers
from shared.periodic import run_periodically, running
from shared.webhooks import Webhooks
from shared.webhooks_api import webhook_router

log = logging.getLogger("tci.claims")
hooks = Webhooks("claims", webhooks, events, EVENT_TYPES)


async def sweep_lapses(
    sessionmaker: async_sessionmaker[AsyncSession], settings: ClaimsSettings
) -> None:
    """Record the lapse of claims whose documents came too late, now and then every interval."""

    async def sweep() -> None:
        async with sessionmaker() as session:
            lapsed = await lapse_overdue(session, settings.today())
            await session.commit()
            if lapsed:
                log.info("%d claims lapsed with documents missing", len(lapsed))

    await run_periodically("the lapse sweep", sweep, every=settings.lapse_sweep_interval_seconds)


def create_app(settings: ClaimsSettings | None = None) -> FastAPI:
    settings = settings or ClaimsSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.peers = build_peers(settings, "claims")
        jobs = running(
            deliver_periodically(
                app.state.sessionmaker, outbox, app.state.peers,
                every=dt.timedelta(seconds=settings.outbox_interval_seconds),
                lease=dt.timedelta(seconds=settings.outbox_lease_seconds),
                on_delivered=record_delivery),
            sweep_lapses(app.state.sessionmaker, settings),
            hooks.dispatch_periodically(app.state.sessionmaker, settings),
        )  # fmt: skip
        try:
            async with jobs:
                yield
        finally:
            for client in app.state.peers.values():
                await client.aclose()

    return create_service_app(
        service="claims",
        settings=settings,
        metadata=metadata,
        routers=[router, calendar_router, events_router, webhook_router(hooks)],
        title="TCI claims",
        description="Overdue notifications, claims, documents, exclusions, indemnity, payment.",
        lifespan=lifespan,
        events=EVENTS,
    )
