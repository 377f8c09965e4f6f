"""Claims tables. The service owns the PostgreSQL schema `claims`."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import service_metadata
from shared.idempotency import idempotency_table

SCHEMA = "claims"
metadata = service_metadata(SCHEMA)
idempotency_keys = idempotency_table(metadata)


class Base(DeclarativeBase):
    metadata = metadata
