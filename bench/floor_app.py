"""The floor `bench/api_paths.py` sets the policy read against: a plain FastAPI app reading one
policy by id through the SQLAlchemy ORM (the same table and row as `GET /v1/policies/{id}`), with
none of the service around it (no authentication, visibility, middleware, metrics, response
model). Started by the benchmark as its own uvicorn process on the benchmark's database:

    DATABASE_URL=postgresql://... uvicorn --factory bench.floor_app:create_app

Not a service and not a test.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.underwriting.models import Policy
from shared.settings import async_database_url


def create_app() -> FastAPI:
    engine = create_async_engine(async_database_url(os.environ["DATABASE_URL"]),
                                 pool_size=int(os.environ.get("TCI_DB_POOL_SIZE", "8")))  # fmt: skip
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    app = FastAPI()
    columns = [column.key for column in Policy.__table__.columns]

    @app.get("/policies/{policy_id}")
    async def read_policy(policy_id: str) -> dict[str, Any]:
        async with sessions() as session:
            policy = await session.get(Policy, policy_id)
        if policy is None:
            raise HTTPException(404)
        return {key: getattr(policy, key) for key in columns}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
