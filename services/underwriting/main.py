"""The underwriting service app."""

from __future__ import annotations

from fastapi import FastAPI

from services.underwriting.api import coverage_router, router
from services.underwriting.config import UnderwritingSettings
from services.underwriting.models import metadata
from shared.app import create_app as create_service_app


def create_app(settings: UnderwritingSettings | None = None) -> FastAPI:
    return create_service_app(
        service="underwriting",
        settings=settings or UnderwritingSettings(),
        metadata=metadata,
        routers=[coverage_router, router],
        title="TCI underwriting",
        description="Policies, buyers and grades, credit limits, coverage checks.",
    )
