"""The collections service app."""

from __future__ import annotations

from fastapi import FastAPI

from services.collections.api import router
from services.collections.models import metadata
from shared.app import create_app as create_service_app
from shared.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        service="collections",
        settings=settings or Settings(),
        metadata=metadata,
        routers=[router],
        title="TCI collections",
        description="Debt-collection cases on escalation ladders, activities, recoveries.",
    )
