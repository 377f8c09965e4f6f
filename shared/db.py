"""The database: one async engine per service, exact money columns, sessions as units of work."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    MetaData,
    Numeric,
    Select,
    String,
    Table,
    Update,
    bindparam,
    delete,
    event,
    false,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import CompoundSelect
from sqlalchemy.types import Boolean, TypeDecorator
from sqlalchemy.util import greenlet_spawn

from shared.settings import async_database_url

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SERVICE_SCHEMAS = ("underwriting", "claims", "collections")


def service_metadata(schema: str) -> MetaData:
    """The metadata of one service: its own PostgreSQL schema and the naming conventions."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


class Exact(TypeDecorator[Decimal]):
    """An exact decimal on both engines: NUMERIC on PostgreSQL, a scaled integer on SQLite
    (SQLite keeps NUMERIC as a float). Values with more decimals than the scale are refused."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 20, scale: int = 4) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value) if isinstance(value, int) else value
        if not isinstance(value, Decimal):
            raise TypeError(f"an exact column takes a Decimal, not {type(value).__name__}")
        scaled = value.scaleb(self.scale)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.scale} decimals")
        if dialect.name == "sqlite":
            return int(scaled)
        return value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.driver == "asyncpg":
            return None  # asyncpg returns NUMERIC as Decimal: nothing to convert, row by row
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale)
        return value if isinstance(value, Decimal) else Decimal(str(value))


class Amount(Exact):
    """A money amount (its currency lives in a sibling column or on the policy)."""

    cache_ok = True


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """A time-ordered id: prefix, 48 bits of milliseconds and 80 random bits in Crockford base32."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(secrets.token_bytes(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def new_ids_sql(dialect: str, prefix: str, *, order_by: Any = None) -> Any:
    """`new_id` in SQL, an id per row of an `INSERT … SELECT`: this moment's prefix (the
    millisecond), then on PostgreSQL 6 random characters drawn once for the statement and the
    row's number in it (by `order_by`, the order the rows are inserted in; None: as they come)
    as 10 hexadecimal digits. The ids of one statement thus rise in the order written, so their
    index takes each at its right edge, where random ids split a page of it every few rows
    (−30 % for the grade entries of a whole-book re-grade). Elsewhere 16 random hexadecimal
    digits per row."""
    if dialect == "postgresql":
        start = new_id(prefix)[: len(prefix) + 17]
        number = func.row_number().over(order_by=order_by)
        return literal_column(f"'{start}'", String) + func.lpad(func.to_hex(number), 10, "0")
    start = new_id(prefix)[: len(prefix) + 11]
    return literal_column(f"'{start}'", String) + func.lower(func.hex(func.randomblob(8)))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def build_engine(
    url: str, *, pool_size: int = 20, echo: bool = False, pool_timeout: float = 30
) -> AsyncEngine:
    """The async engine for a service; on SQLite the service schemas are mapped away.

    On PostgreSQL the pool holds `pool_size` connections and opens no overflow: a request beyond
    them waits for one to come back, rather than paying a fresh connection (TLS negotiation,
    statement preparation) that is thrown away again at once.

    Bound parameters are never rendered into an error's text (`hide_parameters`): a failed
    statement's log line names the statement, not the row it carried. A connection is waited
    for `pool_timeout` seconds at most (then the database counts as unavailable: 503)."""
    url = async_database_url(url)
    if is_sqlite(url):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_async_engine(
            url, echo=echo, hide_parameters=True, connect_args={"timeout": 30}
        )
        _sqlite_pragmas(engine)
        return engine.execution_options(schema_translate_map=dict.fromkeys(SERVICE_SCHEMAS))
    return create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_pre_ping=False,
    )


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def build_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: nothing is kept unless it is committed explicitly; leaving the
    block without a commit rolls back."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


# The locks of `UnitsOfWork.hold` where the database has no advisory locks, per database and key.
_LOCAL_LOCKS: dict[tuple[str, int], asyncio.Lock] = {}
_LOCK_RETRY_SECONDS = 0.05


async def take_turns(session: AsyncSession, lock: str, pair: tuple[str, str],
                     claim_on_sqlite: Update) -> None:  # fmt: skip
    """Until the transaction ends, no other transaction that takes turns on the same `lock` and
    `pair` runs past this point: PostgreSQL takes an advisory lock on them; SQLite has a single
    writer, and `claim_on_sqlite` (a write that changes nothing, touching only the pair's rows)
    makes this transaction it, so that the reads that follow see every write committed before."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(
            func.hashtext(lock), func.hashtext(f"{pair[0]}\x1f{pair[1]}"))))  # fmt: skip
        return
    await session.execute(claim_on_sqlite.execution_options(synchronize_session=False))


async def write_first(session: AsyncSession, table: Table) -> None:
    """SQLite: take the database's one write lock now, before anything is read (a write to
    `table` that matches no row), so that the transaction sees every write committed before it
    and can write later. A transaction that read first could not write once another committed."""
    await session.execute(delete(table).where(false()))


class UnitsOfWork:
    """Transactions of their own, for a use case that commits a long piece of work in parts
    (each part one transaction, `open()`), up to `parallel` parts at once, under a lock of its
    own for the whole work (`hold(key)` on a connection of `engine`: one such work at a time per
    key, across the replicas on PostgreSQL: a session-level advisory lock, released with its
    connection if the process dies)."""

    def __init__(
        self,
        open_: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        *,
        parallel: int,
        engine: AsyncEngine | None,
        one_key: bool = False,
    ) -> None:
        self.open = open_
        self.parallel = parallel
        self.engine = engine
        self.one_key = one_key  # every key is the same lock

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        if self.engine is not None and self.engine.dialect.name == "postgresql":
            while True:  # tried now and then: a waiter holds no connection of the pool meanwhile
                async with self.engine.connect() as connection:
                    autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                    taken = await autocommit.execute(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
                    )
                    if taken.scalar_one():
                        try:
                            yield
                        finally:
                            await autocommit.execute(
                                text("SELECT pg_advisory_unlock(:key)"), {"key": key}
                            )
                        return
                await asyncio.sleep(_LOCK_RETRY_SECONDS)
        # One process writes an embedded database (or a test's one connection): a lock in it.
        name = str(self.engine.url) if self.engine is not None else ""
        lock = _LOCAL_LOCKS.setdefault((name, 0 if self.one_key else key), asyncio.Lock())
        async with lock:
            yield


async def get_units_of_work(request: Request) -> UnitsOfWork:
    """The app's transactions for work committed in parts, on a pool of their own (a part waits
    its turn for a connection however long another work takes): on PostgreSQL as many at once as
    it has connections, the work's lock held on a connection of the app's pool. SQLite has one
    writer: one part at a time, each taking the write lock before it reads (as a request does,
    `shared.idempotency.Command`: a transaction that read first could not write once another had
    committed), and one such work at a time whatever its key."""
    units: AsyncEngine = request.app.state.units_engine
    if not is_sqlite(str(units.url)):
        return UnitsOfWork(request.app.state.units_sessionmaker, parallel=units.pool.size(),  # type: ignore[attr-defined]
                           engine=request.app.state.engine)  # fmt: skip
    sessionmaker = request.app.state.units_sessionmaker
    table: Table = request.app.state.idempotency_table

    @contextlib.asynccontextmanager
    async def writing_first() -> AsyncIterator[AsyncSession]:
        async with sessionmaker() as session:
            await write_first(session, table)
            yield session

    return UnitsOfWork(writing_first, parallel=1, engine=units, one_key=True)


UnitsOfWorkDep = Annotated[UnitsOfWork, Depends(get_units_of_work)]


async def get_read_session(session: SessionDep) -> AsyncSession:
    """The session of a route that only reads: on PostgreSQL its statements run outside a
    transaction (no BEGIN and no ROLLBACK round trip), which sees what a transaction would at
    READ COMMITTED, where each statement takes its own snapshot anyway. Nothing may be written
    through it. A session bound to a connection (a test's transaction) reads in that one."""
    bind = session.bind
    if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]


class TextList(TypeDecorator[list[str]]):
    """A list of strings bound as one parameter (`among`): an array on PostgreSQL, JSON text on
    SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(String()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Sequence[str] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps(list(value))


class _Among(FunctionElement[bool]):
    """`column` among the list bound as `values` (its two clauses), compiled per dialect."""

    inherit_cache = True
    type = Boolean()


def _among_parts(element: _Among, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, values = element.clauses.clauses
    return compiler.process(column, **kw), compiler.process(values, **kw)


@compiles(_Among, "postgresql")
def _among_on_postgresql(element: _Among, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = _among_parts(element, compiler, **kw)
    return f"{column} = ANY ({values})"


@compiles(_Among)
def _among_elsewhere(element: _Among, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = _among_parts(element, compiler, **kw)
    return f"({column} IN (SELECT value FROM json_each({values})))"


def among(column: ColumnElement[str], name: str) -> ColumnElement[bool]:
    """`column` is one of the strings of the list given as the parameter `name`: one parameter
    however long the list, so the statement is the same for every list (built once, prepared
    once: `Query`). `= ANY` of an array on PostgreSQL, `IN` the list's JSON on SQLite."""
    return _Among(column, bindparam(name, type_=TextList()))


class Query:
    """A Core SELECT built once, for a hot read path: compiled once per dialect and, on
    PostgreSQL, run straight on the asyncpg connection (which prepares it once per connection),
    with SQLAlchemy's own type processing of every column."""

    def __init__(self, statement: Select[Any] | CompoundSelect[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...], dict[str, Any], list[Any]]] = {}

    def for_asyncpg(
        self, dialect: Dialect
    ) -> tuple[str, tuple[str, ...], dict[str, Any], list[Any]]:
        """SQL text, parameter order, literal parameters and the result processors of the
        columns that have one, as (position, processor)."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            statement = self.statement.compile(dialect=dialect)
            processors = [
                (position, process)
                for position, column in enumerate(self.statement.selected_columns)
                if (process := column.type.result_processor(dialect, None)) is not None
            ]
            compiled = (
                str(statement),
                tuple(statement.positiontup or ()),
                dict(statement.params),
                processors,
            )
            self._compiled[dialect.name] = compiled
        return compiled


class Reader:
    """One-statement reads outside any transaction: a pool checkout and one round trip, no
    BEGIN or ROLLBACK (a single statement sees one consistent snapshot on its own)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.dialect = engine.dialect.name
        self.asyncpg = engine.dialect.driver == "asyncpg"

    async def first(self, query: Query, params: dict[str, Any]) -> tuple[Any, ...] | None:
        rows = await self._run(query, params, one=True)
        return rows[0] if rows else None

    async def all(self, query: Query, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return await self._run(query, params, one=False)

    async def each(
        self, query: Query, param_sets: Sequence[dict[str, Any]], *, parallel: int = 4
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows of one run per parameter set, in order, each as soon as it is ready: up to
        `parallel` runs at once on their own connections, so the caller works on one result
        while the database computes the next ones."""
        gate = asyncio.Semaphore(max(1, parallel))

        async def run(params: dict[str, Any]) -> list[tuple[Any, ...]]:
            async with gate:
                return await self.all(query, params)

        tasks = [asyncio.ensure_future(run(params)) for params in param_sets]
        try:
            for task in tasks:
                yield await task
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def one_connection(self) -> AsyncIterator[Reader]:
        """A reader whose statements all go on one connection of the pool, taken once for
        several reads (each statement still on its own, outside any transaction)."""
        if not self.asyncpg:
            async with self.autocommit.connect() as connection:
                yield TransactionReader(connection)
            return
        held = _CheckedOut(await self._checkout(), self.engine.dialect)
        try:
            yield held
        finally:
            await held.give_back()

    async def _run(
        self, query: Query, params: dict[str, Any], *, one: bool
    ) -> list[tuple[Any, ...]]:
        if not self.asyncpg:
            async with self.autocommit.connect() as connection:
                return await _via_core(connection, query, params, one)
        held = _CheckedOut(await self._checkout(), self.engine.dialect)
        try:
            return await held._run(query, params, one=one)
        finally:
            await held.give_back()

    async def _checkout(self) -> PoolProxiedConnection:
        try:
            return await self.engine.raw_connection()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            # As a session's connection would raise it (`is_unavailable` knows it: 503): the
            # pool hands the driver's own error up when it cannot connect.
            raise sa_exc.DBAPIError.instance(
                None, None, exc, self.engine.dialect.loaded_dbapi.Error
            ) from exc


class TransactionReader(Reader):
    """Reads inside an open connection's transaction (tests read what they have not committed),
    or on one connection of the pool (`Reader.one_connection` on SQLite)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.asyncpg = connection.dialect.driver == "asyncpg"

    @contextlib.asynccontextmanager
    async def one_connection(self) -> AsyncIterator[Reader]:
        yield self

    async def each(
        self, query: Query, param_sets: Sequence[dict[str, Any]], *, parallel: int = 4
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """One connection runs one statement at a time: the runs go in turn."""
        for params in param_sets:
            yield await self.all(query, params)

    async def _run(
        self, query: Query, params: dict[str, Any], *, one: bool
    ) -> list[tuple[Any, ...]]:
        if not self.asyncpg:
            return await _via_core(self.connection, query, params, one)
        raw = await self.connection.get_raw_connection()
        return await _via_asyncpg(
            raw.driver_connection, self.connection.dialect, query, params, one
        )


class _CheckedOut(TransactionReader):
    """Reads on an asyncpg connection taken from the pool, outside any transaction, until it is
    given back; a connection a statement failed on (or was cancelled on) is not used again."""

    def __init__(self, raw: PoolProxiedConnection, dialect: Dialect) -> None:
        self.raw = raw
        self.sql_dialect = dialect
        self.dialect = dialect.name
        self.asyncpg = True
        self.broken = False

    async def _run(
        self, query: Query, params: dict[str, Any], *, one: bool
    ) -> list[tuple[Any, ...]]:
        try:
            return await _via_asyncpg(
                self.raw.driver_connection, self.sql_dialect, query, params, one
            )
        except BaseException:
            self.broken = True
            raise

    async def give_back(self) -> None:
        if self.broken:
            self.raw.invalidate()
        await greenlet_spawn(self.raw.close)


async def _via_core(
    connection: AsyncConnection, query: Query, params: dict[str, Any], one: bool
) -> list[tuple[Any, ...]]:
    result = await connection.execute(query.statement, params)
    rows = [result.first()] if one else result.all()
    return [tuple(row) for row in rows if row is not None]


async def _via_asyncpg(
    driver: Any, dialect: Dialect, query: Query, params: dict[str, Any], one: bool
) -> list[tuple[Any, ...]]:
    sql, order, literals, processors = query.for_asyncpg(dialect)
    args = [params[n] if n in params else literals[n] for n in order]
    if one:
        record = await driver.fetchrow(sql, *args)
        records = [] if record is None else [record]
    else:
        records = await driver.fetch(sql, *args)
    if not processors:
        return [tuple(record) for record in records]
    rows = []
    for record in records:
        row = list(record)
        for position, process in processors:
            row[position] = process(row[position])
        rows.append(tuple(row))
    return rows


async def get_reader(request: Request) -> Reader:
    """The app's reader (a dependency, so tests can read inside their own transaction)."""
    reader: Reader = request.app.state.reader
    return reader


ReaderDep = Annotated[Reader, Depends(get_reader)]


# SQLSTATE classes that say the database cannot be reached or is going away: connection
# exceptions (08), operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
# connect now), too many connections.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53300")


# Errors of drivers and clients, by (module prefix, class name: the drivers are imported only
# where used), that mean the database or a peer cannot be reached now, with what else the error
# must say (None: nothing).
_UNAVAILABLE_ERRORS: dict[tuple[str, str], str | None] = {
    # "connection is closed": the connection was lost before.
    ("asyncpg", "InterfaceError"): "closed",
    # The protocol of a connection the server was terminating ("cannot switch to state 12;
    # another operation is in progress"): that connection is dropped, a retry gets another.
    ("asyncpg", "InternalClientError"): None,
    ("psycopg", "OperationalError"): None,
    ("httpx", "TransportError"): None,  # a peer service did not answer
}


def _means_unavailable(kind: type, error: BaseException) -> bool:
    """Whether `error`, seen as its class or base class `kind`, is one of `_UNAVAILABLE_ERRORS`."""
    package = kind.__module__.partition(".")[0]
    if (package, kind.__name__) not in _UNAVAILABLE_ERRORS:
        return False
    needed = _UNAVAILABLE_ERRORS[package, kind.__name__]
    return needed is None or needed in str(error)


def is_unavailable(error: BaseException) -> bool:
    """Whether an error means the database (or another service) cannot be reached right now, so
    that the answer is 503 with Retry-After rather than 500: a refused or dropped connection, a
    terminated backend, a connection SQLAlchemy invalidated, a pool that timed out, an error
    while connecting (a database not accepting connections), a socket error. The one place
    where such errors are recognised, whatever the driver (asyncpg, psycopg, aiosqlite)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or len(seen) > 16:
            continue
        seen.add(id(current))
        if isinstance(current, sa_exc.TimeoutError | OSError):
            return True  # the pool's wait, or a socket (refused, reset, unreachable, timed out)
        if isinstance(current, sa_exc.DBAPIError):
            if current.connection_invalidated or current.statement is None:
                return True  # a dropped connection, or a failure to connect at all
            if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
                return True
            pending.append(current.orig)
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if any(_means_unavailable(kind, current) for kind in type(current).__mro__):
            return True
        pending.extend((current.__cause__, current.__context__))
    return False
