"""Alembic environment of the underwriting service: its own schema and version table."""

from services.underwriting.models import metadata
from shared.migrations import run_environment

run_environment("underwriting", metadata)
