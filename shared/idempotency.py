"""Idempotency keys and the one way a state-changing request is committed.

The key is claimed with INSERT … ON CONFLICT DO NOTHING and the response is stored with it before
the change commits: a replay finds the stored response, a twin sent while the first is still running
is told the key is in use (409).

- PostgreSQL: the claim is made in the same transaction as the change, in one statement that also
  tries the key's advisory lock (held to the commit); when the key is taken, a twin waits briefly
  (`TCI_IDEMPOTENCY_WAIT_MS`) on the uncommitted key and is then told it is in use. A key past its
  retention that the purge has not removed yet is taken over as if it were absent.
- SQLite has a single writer, so a twin would wait on the file lock until the first commits: the
  key is claimed first in a transaction of its own (status 0: running) and the twin reads that
  committed claim without writing. A request that fails releases its claim; one that dies holds it
  for `TCI_IDEMPOTENCY_CLAIM_SECONDS` at most, after which a retry takes the key over.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    CursorResult,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.auth import Caller, CallerDep
from shared.db import SessionDep, UTCDateTime, utcnow, write_first
from shared.outbox import lease_on_write
from shared.periodic import run_periodically
from shared.problems import (
    IDEMPOTENCY_KEY_IN_USE,
    IDEMPOTENCY_KEY_REUSED,
    Problem,
    conflict,
    invalid,
    unprocessable,
)

log = logging.getLogger("tci.idempotency")

HEADER = "Idempotency-Key"
RUNNING = 0  # the status_code of a key whose request has not finished
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


@dataclass(frozen=True)
class _Statements:
    """The statements of one table's keys, built once (a request only binds its values): claim
    a key unless taken, read it, take over an expired or abandoned one, store the answer, store
    again what the step after the commit added to it, free the key of a request that failed
    (SQLite)."""

    claim: Any
    claim_unless_running: Any
    stored: Any
    take_over: Any
    store: Any
    restore: Any
    replace_answer: Any
    release: Any


@functools.cache
def _statements(table: Table, dialect: str) -> _Statements:
    t = table
    scope, route, key = (
        bindparam(name, type_=String) for name in ("scope", "route_name", "given_key")
    )
    match = and_(t.c.caller == scope, t.c.route == route, t.c.key == key)
    running = and_(match, t.c.status_code == RUNNING, t.c.created_at == bindparam("claimed_at"))
    claimed: dict[str, Any] = {
        "caller": scope,
        "route": route,
        "key": key,
        "fingerprint": bindparam("request_print"),
        "status_code": RUNNING,
        "body": "",
        "created_at": bindparam("claimed_at"),
    }
    answered: dict[str, Any] = {
        "status_code": bindparam("status"),
        "body": bindparam("answer"),
        "location": bindparam("answer_location"),
    }
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    claim_unless_running = None
    if dialect == "postgresql":
        # The key's own transaction-level advisory lock, tried in the statement that claims it:
        # a twin still running holds it, and the statement then claims nothing at once instead of
        # waiting on the twin's uncommitted row.
        typed = {name: cast(value, t.c[name].type) if isinstance(value, BindParameter)
                 else literal(value, t.c[name].type) for name, value in claimed.items()}  # fmt: skip
        claim_unless_running = (
            pg_insert(t)
            .from_select(list(typed), select(*typed.values()).where(
                func.pg_try_advisory_xact_lock(bindparam("key_lock", type_=BigInteger))))
            .on_conflict_do_nothing()
            .returning(t.c.key)
        )  # fmt: skip
    return _Statements(
        claim=insert(t).values(claimed).on_conflict_do_nothing().returning(t.c.key),
        claim_unless_running=claim_unless_running,
        stored=select(t).where(match),
        take_over=delete(t).where(match, t.c.created_at == bindparam("stored_at")),
        store=update(t).where(running).values(answered),
        restore=update(t)
        .where(
            match, t.c.created_at == bindparam("claimed_at"), t.c.status_code == bindparam("status")
        )
        .values(body=bindparam("answer")),
        replace_answer=update(t)
        .where(match, t.c.status_code == bindparam("status"))
        .values(body=bindparam("answer")),
        release=delete(t).where(running),
    )


_DEFAULT_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = DEFAULT")


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

    async def purge() -> None:
        purged = await purge_expired(engine, table, older_than=retention)
        if purged:
            log.info("purged %d idempotency keys older than %s", purged, retention)

    await run_periodically("purging expired idempotency keys", purge, every=every.total_seconds())


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
        except RecursionError:  # nested deeper than any request of this API
            raise invalid(["body"], "the JSON document is nested too deeply") from None
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
        self.dialect = session.get_bind().dialect.name
        self.statements = _statements(self.table, self.dialect)

    async def run(
        self,
        handler: Callable[[], Awaitable[Outcome]],
        *,
        status_code: int = 200,
        location: Callable[[Outcome], str] | None = None,
        after_commit: Callable[[Outcome], Awaitable[Outcome | None]] | None = None,
        own_transactions: bool = False,
        on_replay: Callable[[dict[str, Any]], Awaitable[BaseModel | None]] | None = None,
        replay_recovers: Callable[[Outcome, Outcome], bool] | None = None,
    ) -> Response:
        """Run the handler, store its answer with the key, commit once. `after_commit` runs
        once the change is committed (not on a replay): sending what the change put in an outbox,
        say; the answer it returns, if any, is answered instead (what the delivery told it), and
        stored again for a replay, unless `replay_recovers(first, after)` says all it changed is
        what `on_replay` works out again before any replay answers (a delivery it reads from the
        outbox): then the answer stored first stands, and no statement is spent on it. It
        cannot undo the change, so a failure there is logged and the answer stands.
        `own_transactions`: the handler commits its work in transactions of its own
        (`shared.db.UnitsOfWork`), the request's holds only the key and its answer (so, on
        SQLite, it does not take the one write lock first)."""
        if after_commit is not None:  # what the change puts in the outbox is sent by it
            settings = self.request.app.state.settings
            lease_on_write(self.session, dt.timedelta(seconds=settings.outbox_lease_seconds))
        key = self.request.headers.get(HEADER)
        if key is None:
            if not own_transactions:
                await self._one_writer_at_a_time()
            outcome = await handler()
            await self.session.commit()
            outcome = await self._after(after_commit, outcome)
            return self._respond(outcome, status_code, location)
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise invalid(["header", HEADER], f"must be 1 to {MAX_KEY_LENGTH} printable characters")
        body = await _canonical_body(self.request)
        print_ = fingerprint(
            self.request.method, self.request.url.path, self.request.url.query, body
        )
        named = {"scope": self.caller.scope, "route_name": self._route(), "given_key": key}
        apart = self.dialect != "postgresql"
        claim = await (self._claim_apart if apart else self._claim)(named, print_)
        if isinstance(claim, Response):
            return await self._replayed(named, claim, on_replay)
        try:
            if not own_transactions:
                await self._one_writer_at_a_time()
            outcome = await handler()
            response = self._respond(outcome, status_code, location)
            stored = await self.session.execute(self.statements.store, {
                **named, "claimed_at": claim, "status": response.status_code,
                "answer": bytes(response.body).decode(),
                "answer_location": response.headers.get("location"),
            })  # fmt: skip
            if not isinstance(stored, CursorResult) or stored.rowcount != 1:
                # Our claim outlived its period and a retry took the key over: that one answers.
                raise _in_use()
            await self.session.commit()
        except BaseException:
            if apart:
                await self._release(named, claim)
            raise
        after = await self._after(after_commit, outcome)
        if after is outcome:
            return response
        answered = self._respond(after, status_code, location)
        if replay_recovers is None or not replay_recovers(outcome, after):
            await self._store_again(named, claim, answered)
        return answered

    async def _replayed(
        self, named: dict[str, str], answer: Response,
        on_replay: Callable[[dict[str, Any]], Awaitable[BaseModel | None]] | None,
    ) -> Response:  # fmt: skip
        """Before a success is replayed, `on_replay` sees it (the stored answer as JSON): what
        the first request's commit left to do after it (an outbox message its process died
        before sending) is done now, so a replay never answers ahead of its effect. What it
        returns, if anything, is the answer now (what the first request would have stored
        again, had its process lived: the case a paid claim's debt went to), replayed and kept
        for the next replay. A failure there is logged; the replay answers as stored."""
        if on_replay is None or answer.headers.get(REPLAYED_HEADER) != "true":
            return answer
        if not 200 <= answer.status_code < 300:
            return answer
        try:
            stored = json.loads(bytes(answer.body))
            now = await on_replay(stored) if isinstance(stored, dict) else None
            if now is None:
                return answer
            body = now.model_dump_json()
            await self.session.execute(self.statements.replace_answer, {
                **named, "status": answer.status_code, "answer": body})  # fmt: skip
            await self.session.commit()
        except Exception:
            log.exception("after the replay of %s %s", self.request.method, self.request.url.path)
            await self.session.rollback()
            return answer
        headers = {k: v for k, v in answer.headers.items() if k.lower() in ("location",)}
        return Response(body, status_code=answer.status_code, media_type="application/json",
                        headers={**headers, REPLAYED_HEADER: "true"})  # fmt: skip

    async def _store_again(
        self, named: dict[str, str], claimed_at: dt.datetime, response: Response
    ) -> None:
        """What the step after the commit added to the answer (a delivery's news: the case a paid
        claim's debt is collected in) is what a replay answers too (api.md: a replay returns the
        first response). A failure here leaves the answer stored before it, as it was."""
        try:
            await self.session.execute(self.statements.restore, {
                **named, "claimed_at": claimed_at, "status": response.status_code,
                "answer": bytes(response.body).decode(),
            })  # fmt: skip
            await self.session.commit()
        except Exception:
            log.exception("storing again the answer of %s %s", self.request.method,
                          self.request.url.path)  # fmt: skip
            await self.session.rollback()

    async def _one_writer_at_a_time(self) -> None:
        """SQLite ignores `FOR UPDATE` and reads outside a write transaction, so a use case that
        reads and then writes (a payment against what a case still owes, a decision on a request
        still referred) would decide on what a concurrent one is changing. There, the database's
        one write lock is taken before the use case reads anything (a write that matches no row),
        so each change sees the one before it. PostgreSQL locks the rows themselves."""
        if self.dialect == "sqlite":
            await write_first(self.session, self.table)

    async def _after(
        self, after_commit: Callable[[Outcome], Awaitable[Outcome | None]] | None, outcome: Outcome
    ) -> Outcome:
        if after_commit is None:
            return outcome
        try:
            return await after_commit(outcome) or outcome
        except Exception:
            log.exception("after the commit of %s %s", self.request.method, self.request.url.path)
            await self.session.rollback()
            return outcome

    def _route(self) -> str:
        route = self.request.scope.get("route")
        template = getattr(route, "path", self.request.url.path)
        return f"{self.request.method} {template}"

    async def _claim(self, named: dict[str, str], print_: str) -> Response | dt.datetime:
        """PostgreSQL: claim the key in the request's own transaction, or return the stored
        answer of the request that claimed it first; the claim time when it is ours. A key past
        its retention (not purged yet) is taken over."""
        settings = self.request.app.state.settings
        claimed_at = utcnow()
        claimed = await self._insert_waiting_briefly(named, print_, claimed_at, settings)
        if claimed:
            return claimed_at
        stored = await self._stored(named)
        retention = dt.timedelta(hours=settings.idempotency_retention_hours)
        if stored is not None and stored.created_at < claimed_at - retention:
            await self.session.execute(
                self.statements.take_over, {**named, "stored_at": stored.created_at}
            )
            if await self._insert_waiting_briefly(named, print_, claimed_at, settings):
                return claimed_at
            stored = await self._stored(named)
        return self._answer(stored, print_)

    async def _insert_waiting_briefly(
        self, named: dict[str, str], print_: str, claimed_at: dt.datetime, settings: Any
    ) -> bool:
        """Claim the key; a twin still running holds the uncommitted key: wait only briefly for
        it (then 409). Whether the key is ours. One statement when the key is free (the claim
        tries the key's advisory lock, which whoever claims it holds to its commit); only a key
        already claimed, still running or answered, takes the statements that wait for it."""
        values = {**named, "request_print": print_, "claimed_at": claimed_at}
        claimed = await self.session.execute(
            self.statements.claim_unless_running,
            {**values, "key_lock": self._key_lock(named)},
        )
        if claimed.first() is not None:
            return True
        await self.session.execute(
            text(f"SET LOCAL lock_timeout = '{int(settings.idempotency_wait_ms)}ms'")
        )
        try:
            waited = await self.session.execute(self.statements.claim, values)
        except DBAPIError as exc:
            if "lock" in str(exc.orig).lower() or "55P03" in str(exc.orig):
                raise _in_use() from None
            raise
        await self.session.execute(_DEFAULT_LOCK_TIMEOUT)
        return waited.first() is not None

    def _key_lock(self, named: dict[str, str]) -> int:
        """The key's advisory lock: 64 bits of its digest (the table's schema included, the
        services may share a database), as PostgreSQL's signed bigint."""
        digest = hashlib.sha256()
        for part in (self.table.schema or "", named["scope"], named["route_name"],
                     named["given_key"]):  # fmt: skip
            digest.update(len(part).to_bytes(4, "big") + part.encode())
        return int.from_bytes(digest.digest()[:8], "big", signed=True)

    async def _claim_apart(self, named: dict[str, str], print_: str) -> Response | dt.datetime:
        """SQLite (one writer): read the committed key without writing, then claim it in a
        transaction of its own, so that a twin sees the claim while the first still runs instead
        of waiting for the file lock. The claim time when it is ours, else the stored answer."""
        settings = self.request.app.state.settings
        fail_fast = True
        for _ in range(5):
            stored = await self._stored(named)
            now = utcnow()
            if stored is not None:
                retention = dt.timedelta(hours=settings.idempotency_retention_hours)
                abandoned = stored.status_code == RUNNING and stored.created_at < now - (
                    dt.timedelta(seconds=settings.idempotency_claim_seconds)
                )
                if not (abandoned or stored.created_at < now - retention):
                    return self._answer(stored, print_)
                # A key past its retention, or held by a request that died: take it over.
                await self.session.execute(
                    self.statements.take_over, {**named, "stored_at": stored.created_at}
                )
            claimed_at = utcnow()
            values = {**named, "request_print": print_, "claimed_at": claimed_at}
            if fail_fast:
                claimed, locked = await self._insert_or_locked(values, settings)
            else:
                claimed = (await self.session.execute(self.statements.claim, values)).first()
                locked = False
            if claimed is not None:
                await self.session.commit()
                return claimed_at
            await self.session.rollback()
            # Locked: a twin may be claiming the key right now, or another request is writing;
            # either way read again (the twin's claim answers 409) and then wait as usual.
            fail_fast = fail_fast and not locked
        raise _in_use()

    async def _insert_or_locked(self, values: dict[str, Any], settings: Any) -> tuple[Any, bool]:
        """Insert with a short busy timeout: the row claimed, or whether the file was locked."""
        previous = (await self.session.execute(text("PRAGMA busy_timeout"))).scalar()
        await self.session.execute(
            text(f"PRAGMA busy_timeout = {int(settings.idempotency_wait_ms)}")
        )
        try:
            return (await self.session.execute(self.statements.claim, values)).first(), False
        except DBAPIError as exc:
            if "locked" not in str(exc.orig).lower():
                raise
            return None, True
        finally:  # the connection goes back to the pool: it must wait as usual again
            await self.session.execute(text(f"PRAGMA busy_timeout = {int(previous or 0)}"))

    async def _release(self, named: dict[str, str], claimed_at: dt.datetime) -> None:
        """A request that failed frees its key at once, so that a retry runs anew (one that died
        frees it when its claim period ends)."""
        try:
            await self.session.rollback()
            await self.session.execute(self.statements.release, {**named, "claimed_at": claimed_at})
            await self.session.commit()
        except Exception:
            log.exception(
                "releasing an Idempotency-Key failed; it is free again after the claim period"
            )

    async def _stored(self, named: dict[str, str]) -> Any:
        return (await self.session.execute(self.statements.stored, named)).one_or_none()

    def _answer(self, stored: Any, print_: str) -> Response:
        """The answer to a key already claimed: reused with another request, still running, or
        the first answer replayed."""
        if stored is None:  # released between the claim attempt and this read
            raise _in_use()
        if stored.fingerprint != print_:
            raise unprocessable(
                IDEMPOTENCY_KEY_REUSED,
                "this Idempotency-Key was used with a different request; use a new key",
            )
        if stored.status_code == RUNNING:
            raise _in_use()
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


def _in_use() -> Problem:
    return conflict(
        IDEMPOTENCY_KEY_IN_USE,
        "a request with this Idempotency-Key is still being processed; retry later",
    )


async def get_command(request: Request, session: SessionDep, caller: CallerDep) -> Command:
    return Command(request, session, caller)


CommandDep = Annotated[Command, Depends(get_command)]
