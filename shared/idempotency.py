"""Idempotency keys and the one way a state-changing request is committed.

The key is claimed with INSERT … ON CONFLICT DO NOTHING in the same transaction as the change it
guards, and the response is stored with it before the single commit: a replay finds the stored
response, a concurrent twin waits briefly on the uncommitted key and is then told the key is in use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, and_, delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.auth import Caller, CallerDep
from shared.db import SessionDep, UTCDateTime, utcnow
from shared.problems import conflict, invalid, unprocessable

log = logging.getLogger("tci.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


def idempotency_table(metadata: MetaData) -> Table:
    """The table of claimed keys, one per service schema."""
    return Table(
        "idempotency_keys",
        metadata,
        Column("caller", String(300), primary_key=True),
        Column("route", String(300), primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("body", Text, nullable=False),
        Column("location", String(500), nullable=True),
        Column("created_at", UTCDateTime(), nullable=False),
    )


async def purge_expired(engine: AsyncEngine, table: Table, *, older_than: dt.timedelta) -> int:
    """Forget the keys claimed longer ago than the retention period; how many were forgotten."""
    async with engine.begin() as connection:
        result = await connection.execute(
            delete(table).where(table.c.created_at < utcnow() - older_than)
        )
    return int(result.rowcount or 0)


async def purge_periodically(
    engine: AsyncEngine, table: Table, *, retention: dt.timedelta, every: dt.timedelta
) -> None:
    """Run for the life of the app: purge expired keys now and then every `every`."""
    while True:
        try:
            purged = await purge_expired(engine, table, older_than=retention)
            if purged:
                log.info("purged %d idempotency keys older than %s", purged, retention)
        except Exception:  # a failed purge is retried next time; it must not stop the app
            log.exception("purging expired idempotency keys failed")
        await asyncio.sleep(every.total_seconds())


async def _canonical_body(request: Request) -> bytes:
    """The body as a fingerprint should see it: a JSON document in a canonical form; a multipart
    body (re-sent with a new boundary on every retry) reduced to its fields (name, value; for a
    file its name, type and content digest); any other body byte for byte."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        raw = await request.body()
        try:  # the same document, whatever its spacing or key order
            return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            return raw
    if not content_type.startswith("multipart/form-data"):
        return await request.body()
    form = await request.form()
    digest = hashlib.sha256()
    for name, value in sorted(form.multi_items(), key=lambda item: item[0]):
        digest.update(len(name).to_bytes(4, "big") + name.encode())
        if isinstance(value, str):
            part = value.encode()
        else:  # an uploaded file: read it whole for the digest, and rewind it for the handler
            await value.seek(0)
            content = await value.read()
            await value.seek(0)
            part = f"{value.filename}|{value.content_type}|".encode() + (
                hashlib.sha256(content).digest()
            )
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests the same request: method, path, query (order-free) and body."""
    digest = hashlib.sha256()
    canonical_query = "&".join(sorted(query.split("&"))) if query else ""
    for part in (method.upper().encode(), path.encode(), canonical_query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


Outcome = TypeVar("Outcome", bound=BaseModel)


class Command:
    """A state-changing request: runs its use case once, stores the answer under the caller's
    Idempotency-Key (if any), and commits exactly once."""

    def __init__(self, request: Request, session: AsyncSession, caller: Caller) -> None:
        self.request = request
        self.session = session
        self.caller = caller
        self.table: Table = request.app.state.idempotency_table

    async def run(
        self,
        handler: Callable[[], Awaitable[Outcome]],
        *,
        status_code: int = 200,
        location: Callable[[Outcome], str] | None = None,
        after_commit: Callable[[Outcome], Awaitable[None]] | None = None,
    ) -> Response:
        """Run the handler, store its answer with the key, commit once. `after_commit` runs
        once the change is committed (not on a replay): sending what the change put in an outbox,
        say. It cannot undo the change, so a failure there is logged and the answer stands."""
        key = self.request.headers.get(HEADER)
        if key is None:
            outcome = await handler()
            await self.session.commit()
            await self._after(after_commit, outcome)
            return self._respond(outcome, status_code, location)
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise invalid(["header", HEADER], f"must be 1 to {MAX_KEY_LENGTH} printable characters")
        route = self._route()
        body = await _canonical_body(self.request)
        print_ = fingerprint(
            self.request.method, self.request.url.path, self.request.url.query, body
        )
        replay = await self._claim(route, key, print_)
        if replay is not None:
            return replay
        outcome = await handler()
        response = self._respond(outcome, status_code, location)
        await self.session.execute(
            self.table.update()
            .where(self._match(route, key))
            .values(
                status_code=response.status_code,
                body=bytes(response.body).decode(),
                location=response.headers.get("location"),
            )
        )
        await self.session.commit()
        await self._after(after_commit, outcome)
        return response

    async def _after(
        self, after_commit: Callable[[Outcome], Awaitable[None]] | None, outcome: Outcome
    ) -> None:
        if after_commit is None:
            return
        try:
            await after_commit(outcome)
        except Exception:
            log.exception("after the commit of %s %s", self.request.method, self.request.url.path)
            await self.session.rollback()

    def _route(self) -> str:
        route = self.request.scope.get("route")
        template = getattr(route, "path", self.request.url.path)
        return f"{self.request.method} {template}"

    def _match(self, route: str, key: str):  # type: ignore[no-untyped-def]
        t = self.table
        return and_(t.c.caller == self.caller.scope, t.c.route == route, t.c.key == key)

    async def _claim(self, route: str, key: str, print_: str) -> Response | None:
        """Claim the key, or return the stored answer of the request that claimed it first."""
        settings = self.request.app.state.settings
        dialect = self.session.get_bind().dialect.name
        values = {
            "caller": self.caller.scope,
            "route": route,
            "key": key,
            "fingerprint": print_,
            "status_code": 0,
            "body": "",
            "created_at": utcnow(),
        }
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(self.table).values(**values).on_conflict_do_nothing().returning(self.table.c.key)
        )
        expired_before = utcnow() - dt.timedelta(hours=settings.idempotency_retention_hours)
        await self.session.execute(
            delete(self.table).where(
                self._match(route, key), self.table.c.created_at < expired_before
            )
        )
        if dialect == "postgresql":
            # A twin still running holds the uncommitted key: wait only briefly for it.
            await self.session.execute(
                text(f"SET LOCAL lock_timeout = '{int(settings.idempotency_wait_ms)}ms'")
            )
        try:
            claimed = (await self.session.execute(statement)).first()
        except DBAPIError as exc:
            if "lock" in str(exc.orig).lower() or "55P03" in str(exc.orig):
                raise conflict(
                    "idempotency-key-in-use",
                    "a request with this Idempotency-Key is still being processed; retry later",
                ) from None
            raise
        if dialect == "postgresql":
            await self.session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
        if claimed is not None:
            return None
        stored = (
            await self.session.execute(select(self.table).where(self._match(route, key)))
        ).one()
        if stored.fingerprint != print_:
            raise unprocessable(
                "idempotency-key-reused",
                "this Idempotency-Key was used with a different request; use a new key",
            )
        if stored.status_code == 0:
            raise conflict(
                "idempotency-key-in-use",
                "a request with this Idempotency-Key is still being processed; retry later",
            )
        headers = {REPLAYED_HEADER: "true"}
        if stored.location:
            headers["Location"] = stored.location
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers=headers,
        )

    @staticmethod
    def _respond(
        outcome: Outcome, status_code: int, location: Callable[[Outcome], str] | None
    ) -> Response:
        headers = {"Location": location(outcome)} if location else None
        return Response(
            outcome.model_dump_json(),
            status_code=status_code,
            media_type="application/json",
            headers=headers,
        )


async def get_command(request: Request, session: SessionDep, caller: CallerDep) -> Command:
    return Command(request, session, caller)


CommandDep = Annotated[Command, Depends(get_command)]
