"""The underwriting service app."""

from __future__ import annotations

from fastapi import FastAPI

from services.underwriting.api import coverage_router, router
from services.underwriting.config import UnderwritingSettings
from services.underwriting.events import EVENT_TYPES
from services.underwriting.events import router as events_router
from services.underwriting.models import events, metadata, webhooks
from shared.app import create_app as create_service_app
from shared.webhooks import Webhooks
from shared.webhooks_api import webhook_router

hooks = Webhooks("underwriting", webhooks, events, EVENT_TYPES)


def create_app(settings: UnderwritingSettings | None = None) -> FastAPI:
    settings = settings or UnderwritingSettings()
    return create_service_app(
        service="underwriting",
        settings=settings,
        metadata=metadata,
        routers=[coverage_router, router, events_router, webhook_router(hooks)],
        title="TCI underwriting",
        description="Policies, buyers and grades, credit limits, coverage checks.",
        lifespan=lambda app: hooks.dispatching(app, settings),
    )
