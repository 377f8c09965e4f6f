"""The claims service app."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.claims.api import router
from services.claims.config import ClaimsSettings
from services.claims.models import metadata, outbox
from services.claims.service import record_delivery
from shared.app import create_app as create_service_app
from shared.outbox import deliver_periodically
from shared.peers import build_peers


def create_app(settings: ClaimsSettings | None = None) -> FastAPI:
    settings = settings or ClaimsSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.peers = build_peers(settings, "claims")
        loop = asyncio.create_task(deliver_periodically(
            app.state.sessionmaker, outbox, app.state.peers,
            every=dt.timedelta(seconds=settings.outbox_interval_seconds),
            on_delivered=record_delivery))  # fmt: skip
        try:
            yield
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            for client in app.state.peers.values():
                await client.aclose()

    return create_service_app(
        service="claims",
        settings=settings,
        metadata=metadata,
        routers=[router],
        title="TCI claims",
        description="Overdue notifications, claims, documents, exclusions, indemnity, payment.",
        lifespan=lifespan,
    )
