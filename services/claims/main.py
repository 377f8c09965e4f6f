"""The claims service app."""

from __future__ import annotations

from fastapi import FastAPI

from services.claims.models import metadata
from shared.app import create_app as create_service_app
from shared.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        service="claims",
        settings=settings or Settings(),
        metadata=metadata,
        routers=[],
        title="TCI claims",
        description="Overdue notifications, claims, documents, exclusions, indemnity, payment.",
    )
