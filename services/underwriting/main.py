"""The underwriting service app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.underwriting import limits as lim
from services.underwriting import service as uc
from services.underwriting.api import coverage_router, router
from services.underwriting.config import UnderwritingSettings
from services.underwriting.events import EVENT_TYPES, EVENTS
from services.underwriting.events import router as events_router
from services.underwriting.models import events, metadata, webhooks
from shared.app import create_app as create_service_app
from shared.auth import Caller
from shared.periodic import run_periodically, running
from shared.webhooks import Webhooks
from shared.webhooks_api import webhook_router

hooks = Webhooks("underwriting", webhooks, events, EVENT_TYPES)
log = logging.getLogger("tci.underwriting")
# Who grades a buyer again when a signal stops weighing (the grade history's `recorded_by`).
MEMORY = Caller(subject="underwriting", role="service", party_id=None)


async def regrade_aged_periodically(
    sessionmaker: async_sessionmaker[AsyncSession], settings: UnderwritingSettings
) -> None:
    """Now and every interval: the buyers whose grade still counts a signal past its memory are
    graded again (`limits.regrade_aged`; idempotent, a failed run is retried at the next)."""

    async def regrade_today() -> None:
        async with sessionmaker() as session:
            ctx = uc.Context(session=session, caller=MEMORY, today=settings.today(),
                              settings=settings)  # fmt: skip
            graded = await lim.regrade_aged(ctx)
            await session.commit()
            if graded:
                log.info("graded %d buyers again: signals past their memory", graded)

    await run_periodically("grading again past signals' memory", regrade_today,
                           every=settings.aged_signals_interval_seconds)  # fmt: skip


def create_app(settings: UnderwritingSettings | None = None) -> FastAPI:
    settings = settings or UnderwritingSettings()
    return create_service_app(
        service="underwriting",
        settings=settings,
        metadata=metadata,
        routers=[coverage_router, router, events_router, webhook_router(hooks)],
        title="TCI underwriting",
        description="Policies, buyers and grades, credit limits, coverage checks.",
        lifespan=lambda app: _lifespan(app, settings),
        events=EVENTS,
    )


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI, settings: UnderwritingSettings) -> AsyncIterator[None]:
    aged = regrade_aged_periodically(app.state.sessionmaker, settings)
    async with hooks.dispatching(app, settings), running(aged):
        yield
