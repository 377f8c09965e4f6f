"""Alembic environment of the collections service: its own schema and version table."""

from services.collections.models import metadata
from shared.migrations import run_environment

run_environment("collections", metadata)
