"""Alembic environment of the claims service: its own schema and version table."""

from services.claims.models import metadata
from shared.migrations import run_environment

run_environment("claims", metadata)
