"""Webhook endpoints and their delivery (api.md, "Events and webhooks"): the tables, the URL rules
that keep deliveries off private networks, Standard Webhooks signing, the endpoint use cases the
routes call, and the dispatcher that posts each endpoint's events in order.

Delivery claims endpoints, not events: a dispatcher run takes the active endpoints that have an
event waiting (a lease, taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL so that any number of
replicas share the work), posts each one's events one at a time in `seq` order, each only once
the one before it is recorded, and moves the endpoint's `after_seq` on only while it still holds
the lease. A receiver's 2xx delivers the event; 410 disables the endpoint; anything else holds the
endpoint on that event (no later event overtakes it) and retries with exponential backoff until
the retry span has passed, after which the endpoint is `failing` until a successful test
(`POST …/{id}/test`) makes it active again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import ipaddress
import logging
import random
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import httpx
import orjson
from pydantic import BaseModel, Field, create_model
from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from shared.auth import Caller
from shared.contracts import Ident, Schema, named_enum
from shared.db import UTCDateTime, new_id, utcnow
from shared.events import SEQ, Event, EventTables, Party, event_json, party_key_sql
from shared.metrics import count_webhook_attempt
from shared.pagination import Page, PageRequest
from shared.periodic import run_periodically, running
from shared.problems import WEBHOOK_URL_REFUSED, invalid, not_found, unprocessable
from shared.settings import Settings

log = logging.getLogger("tci.webhooks")

TEST_EVENT_TYPE = "webhook.test"
SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2000
USER_AGENT = "tci-webhooks/1"
# What of a receiver's answer is kept in the attempts log (its body is not otherwise read).
MAX_ANSWER_EXCERPT = 300
MAX_ANSWER_READ = 64 * 1024
# A post starts only while the lease has its timeout and this much left (clock skew, the mark).
LEASE_MARGIN_SECONDS = 1.0
_EndpointStatus = Literal["active", "failing", "disabled"]
EndpointStatus = Annotated[_EndpointStatus, named_enum("WebhookEndpointStatus", _EndpointStatus)]
# The roles that own endpoints (and hear events): `shared.auth.PARTY_ROLES`.
_PartyRole = Literal["policyholder", "bank"]
PartyRole = Annotated[_PartyRole, named_enum("PartyRole", _PartyRole)]


# ---------------------------------------------------------------- tables


@dataclass(frozen=True)
class WebhookTables:
    endpoints: Table
    attempts: Table

    async def mark(
        self, session: AsyncSession, endpoint_id: str, owner: str, values: Mapping[str, Any],
        attempt: Mapping[str, Any],
    ) -> bool:  # fmt: skip
        """Set the endpoint's `values` and record the attempt, both or neither, if `owner` still
        holds its lease; whether it did (the caller's session is committed).

        On PostgreSQL one statement does both (`WITH moved AS (UPDATE … RETURNING) INSERT …
        SELECT … FROM moved`), committed on its own: one round trip per event delivered."""
        params = {"m_endpoint": endpoint_id, "m_owner": owner,
                  **{f"v_{k}": v for k, v in values.items()},
                  **{f"a_{k}": v for k, v in attempt.items()}}  # fmt: skip
        moved, both = self._marks(tuple(values), tuple(attempt))
        if session.get_bind().dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            result = await session.execute(both, params)
            return getattr(result, "rowcount", 0) == 1
        if not (await session.execute(moved, params)).first():
            await session.rollback()
            return False
        await session.execute(self.attempts.insert().values(**attempt))
        await session.commit()
        return True

    @functools.lru_cache(maxsize=16)  # noqa: B019 - a few shapes per service, for its life
    def _marks(
        self, value_names: tuple[str, ...], attempt_names: tuple[str, ...]
    ) -> tuple[Any, Any]:
        """The statements of `mark` for one shape of values, built once (their parameters
        `m_endpoint`, `m_owner`, `v_<column>`, `a_<column>`): the guarded update alone, and the
        update with the attempt's insert in one statement."""
        endpoints, attempts = self.endpoints, self.attempts
        moved = (
            update(endpoints)
            .where(endpoints.c.id == bindparam("m_endpoint"),
                   endpoints.c.lease_owner == bindparam("m_owner"))
            .values({k: bindparam(f"v_{k}", type_=endpoints.c[k].type) for k in value_names})
            .returning(endpoints.c.id)
        )  # fmt: skip
        columns = [bindparam(f"a_{k}", type_=attempts.c[k].type).label(k) for k in attempt_names]
        cte = moved.cte("moved")
        both = attempts.insert().from_select(list(attempt_names), select(*columns).select_from(cte))
        return moved, both


def webhook_tables(metadata: MetaData) -> WebhookTables:
    """The `webhook_endpoints` and `webhook_attempts` tables of one service."""
    endpoints = Table(
        "webhook_endpoints",
        metadata,
        Column("id", String(40), primary_key=True),
        # The owner: a role (`policyholder`, `bank`) and an id, heard as `Party(role, id)`. Null
        # only for an endpoint whose role could not be told when owners became role and id
        # (un0015, cl0010, co0014): staff alone see it, and it hears nothing.
        Column("party_role", String(16), nullable=True),
        Column("party_id", String(200), nullable=False, index=True),
        Column("url", Text, nullable=False),
        Column("event_types", JSON, nullable=False),
        Column("secret", String(64), nullable=False),
        Column("status", String(16), nullable=False),
        Column("disabled_reason", Text, nullable=True),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("created_by", String(200), nullable=False),
        # The last event seq delivered or skipped (not of the endpoint's types).
        Column("after_seq", SEQ, nullable=False),
        # The head event (the one after `after_seq`) is retried no sooner than this.
        Column("next_attempt_at", UTCDateTime(), nullable=True),
        Column("head_attempts", Integer, nullable=False),
        Column("head_failing_since", UTCDateTime(), nullable=True),
        # Which dispatcher run serves the endpoint, and until when (a lease, not a row lock).
        Column("lease_owner", String(40), nullable=True),
        Column("lease_until", UTCDateTime(), nullable=True),
    )
    attempts = Table(
        "webhook_attempts",
        metadata,
        Column("id", String(40), primary_key=True),
        Column(
            "endpoint_id",
            String(40),
            # By name, not by column: the schemaless copy SQLite's comparison uses keeps it.
            ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("event_id", String(40), nullable=False),
        Column("event_seq", SEQ, nullable=True),  # none for a test message
        Column("attempt", Integer, nullable=False),
        Column("attempted_at", UTCDateTime(), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("error", Text, nullable=True),
        Column("duration_ms", Integer, nullable=False),
        Index(None, "endpoint_id", "attempted_at", "id"),
    )
    return WebhookTables(endpoints, attempts)


# ---------------------------------------------------------------- schemas


class WebhookTestData(Schema):
    endpoint_id: str


class WebhookTestEvent(Event):
    """The message `POST /v1/webhook-endpoints/{id}/test` sends: signed as any event, its id a
    message id of its own (`msg_...`: no event of the feed)."""

    type: Literal["webhook.test"]
    data: WebhookTestData


class WebhookEndpointCreate(Schema):
    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH,
                              examples=["https://hooks.example.com/tci"])]  # fmt: skip
    event_types: Annotated[list[Annotated[str, Field(max_length=64)]],
                           Field(min_length=1, max_length=20)]  # fmt: skip
    # Staff name the party the endpoint belongs to, its role and id; a policyholder or bank leaves
    # both out (the endpoint is its own).
    party_role: PartyRole | None = None
    party_id: Ident | None = None


def endpoint_create_model(event_types: Sequence[str]) -> type[WebhookEndpointCreate]:
    """`WebhookEndpointCreate` as one service publishes it: its `event_types` items the named
    enum `EventType` of the types it owns (a generated client has one enum; the service still
    answers an unknown type with a 422 naming its types, `Webhooks._known_types`)."""
    event_type = Annotated[str, Field(max_length=64),
                           named_enum("EventType", tuple(event_types), "an event type of this service")]  # fmt: skip
    model: type[WebhookEndpointCreate] = create_model(
        "WebhookEndpointCreate", __base__=WebhookEndpointCreate,
        event_types=(Annotated[list[event_type], Field(min_length=1, max_length=20)], ...),
    )  # fmt: skip
    return model


class WebhookEndpointRead(BaseModel):
    id: str
    # The owner, role and id: only that role with that id reads the endpoint (and staff); it
    # hears the events of that party. Null: an endpoint registered before owners had a role whose
    # role could not be told; staff alone see it, it hears nothing (re-register it).
    party_role: PartyRole | None
    party_id: str
    url: str
    event_types: list[str]
    status: EndpointStatus
    disabled_reason: str | None
    created_at: dt.datetime
    created_by: str
    # When the event the endpoint waits on is tried again (null: as soon as there is one).
    next_attempt_at: dt.datetime | None


class WebhookEndpointCreated(WebhookEndpointRead):
    # The signing secret (Standard Webhooks `whsec_…`): shown in this answer only.
    secret: str


class WebhookAttemptRead(BaseModel):
    id: str
    created_at: dt.datetime  # an attempt is recorded as it is made: its `attempted_at`
    event_id: str
    attempt: int
    attempted_at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool


# ---------------------------------------------------------------- URL rules


@dataclass(frozen=True)
class Target:
    """A vetted URL: where to connect (an address that passed the rules), and as whom."""

    url: httpx.URL
    host: str  # the host as named (sent as `Host` and as the TLS server name)
    address: str


def address_refusal(address: str, *, development: bool) -> str | None:
    """Why a delivery may not go to this address (None: it may): private, loopback, link-local,
    multicast, reserved or unspecified, in IPv4 or IPv6, also when an IPv6 address carries an
    IPv4 one (mapped, 6to4, Teredo). In development loopback is allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if carried is not None:
            return address_refusal(str(carried), development=development)
    if ip.is_loopback:
        return None if development else "a loopback address"
    for kind, yes in (("an unspecified", ip.is_unspecified), ("a multicast", ip.is_multicast),
                      ("a link-local", ip.is_link_local), ("a private", ip.is_private),
                      ("a reserved", ip.is_reserved)):  # fmt: skip
        if yes:
            return f"{kind} address"
    if not ip.is_global:
        return "not a public address"
    return None


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to (an address literal: itself)."""
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UrlRefused(Exception):
    """A URL a webhook may not be delivered to, and why."""


async def vet_url(
    url: str, *, development: bool, resolve_within: float, resolver: Resolver = resolve
) -> Target:
    """The URL as a delivery target, or `UrlRefused`: https only (http too in development), no
    user or password, a port from 1 to 65535, and every address its host resolves to allowed
    by `address_refusal` (checked again before each delivery, which connects to the address
    vetted here)."""
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError, TypeError) as exc:
        raise UrlRefused(f"not a URL: {exc}") from None
    schemes = ("https", "http") if development else ("https",)
    if parsed.scheme not in schemes:
        allowed = "https or http (development)" if development else "https"
        raise UrlRefused(f"the URL must be {allowed}, not {parsed.scheme or 'schemeless'}")
    if parsed.userinfo:
        raise UrlRefused("the URL must not carry a user name or password")
    if not host:
        raise UrlRefused("the URL names no host")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UrlRefused(f"the URL names port {parsed.port}, which no connection can use")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(resolve_within):
            addresses = await resolver(host, port)
    except (OSError, UnicodeError, ValueError, TimeoutError) as exc:
        raise UrlRefused(f"the host {host} does not resolve ({exc or 'timed out'})") from None
    if not addresses:
        raise UrlRefused(f"the host {host} does not resolve")
    for address in addresses:
        reason = address_refusal(address, development=development)
        if reason is not None:
            raise UrlRefused(
                f"the host {host} resolves to {address}, {reason}: webhooks go to public "
                "addresses only"
            )
    return Target(parsed.copy_with(fragment=None), host, addresses[0])


# ---------------------------------------------------------------- signing and posting


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes it: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(secret: str, message_id: str, body: str, now: dt.datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one message (`webhook-signature: v1,<base64>`)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


@dataclass(frozen=True)
class Outcome:
    """One attempt: when, the receiver's status (none if it did not answer), why it failed."""

    attempted_at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_TLS = ssl.create_default_context()


def sending_client(timeout: float) -> httpx.AsyncClient:
    """A client for one endpoint's deliveries (its own connections: each is made to the vetted
    address, with the endpoint's host name for TLS): no redirects, no proxy from the
    environment, the timeout on every phase."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, verify=_TLS,
        headers={"user-agent": USER_AGENT, "content-type": "application/json"},
    )  # fmt: skip


async def post_message(
    client: httpx.AsyncClient, url: str, secret: str, message: Mapping[str, Any],
    settings: Settings, *, resolver: Resolver = resolve,
) -> Outcome:  # fmt: skip
    """Vet the URL (again: DNS may have changed), then post the signed message (an event as the
    feed lists it: `event_json`) to the vetted address; the attempt as it went. Resolving and
    posting together end within the timeout: a dispatcher's lease is sure to last one timeout
    when it starts a post (`_Run._lease_lasts`), and no post of its may outlive the lease."""
    attempted_at = utcnow()
    started = time.perf_counter()

    def outcome(status: int | None, error: str | None) -> Outcome:
        took = round((time.perf_counter() - started) * 1000)
        # What a receiver answered is stored as text: no NUL (PostgreSQL's text refuses it).
        return Outcome(attempted_at, status, error and error.replace("\x00", "\ufffd"), took)

    timeout = settings.webhook_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            try:
                target = await vet_url(url, development=settings.environment == "development",
                                       resolve_within=timeout, resolver=resolver)  # fmt: skip
            except UrlRefused as exc:
                return outcome(None, f"URL refused: {exc}")
            body = orjson.dumps(message).decode()
            headers = {**signed_headers(secret, message["id"], body, utcnow()),
                       "host": target.url.netloc.decode("ascii")}  # fmt: skip
            extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
            async with client.stream(
                "POST", target.url.copy_with(host=target.address), content=body.encode(),
                headers=headers, extensions=extensions,
            ) as response:  # fmt: skip
                excerpt = await _excerpt(response)
    except TimeoutError:
        return outcome(None, f"no answer within {timeout:g} s")
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ANSWER_EXCERPT])
    status = response.status_code
    if 200 <= status < 300:
        return outcome(status, None)
    return outcome(status, f"answered {status}{': ' + excerpt if excerpt else ''}")


async def _excerpt(response: httpx.Response) -> str:
    """The start of an answer's body. A short body is read to its end, so that the connection
    serves the next message; past `MAX_ANSWER_READ` bytes the rest is not read (the connection
    is closed instead)."""
    chunks = b""
    async for chunk in response.aiter_raw():
        chunks += chunk
        if len(chunks) >= MAX_ANSWER_READ:
            break
    return chunks[:MAX_ANSWER_EXCERPT].decode("utf-8", "replace")


# ---------------------------------------------------------------- retries


def retry_delay(attempts: int, *, base: float, cap: float, jitter: float) -> float:
    """The pause after the `attempts`-th failure in a row: base × 2^(attempts-1) seconds, at most
    `cap`, of which `jitter` (in [0, 1)) takes away up to half, so that endpoints failing
    together do not all retry at the same moment."""
    full = min(cap, base * 2.0 ** min(attempts - 1, 64))
    return full * (1.0 - jitter / 2.0)


def next_retry(
    attempts: int, failing_since: dt.datetime, now: dt.datetime, settings: Settings,
    jitter: float,
) -> dt.datetime | None:  # fmt: skip
    """When the head event is tried again after its `attempts`-th failure, or None once it has
    failed for the whole retry span (the endpoint is then `failing`)."""
    if (now - failing_since).total_seconds() >= settings.webhook_retry_span_seconds:
        return None
    pause = retry_delay(attempts, base=settings.webhook_retry_base_seconds,
                        cap=settings.webhook_max_backoff_seconds, jitter=jitter)  # fmt: skip
    return now + dt.timedelta(seconds=pause)


# ---------------------------------------------------------------- the endpoint use cases


@dataclass(frozen=True)
class Webhooks:
    """One service's webhooks: its tables, its events and the types it owns."""

    service: str
    tables: WebhookTables
    events: EventTables
    # The types the service owns: its events module lists them, once (`EVENT_TYPES`).
    event_types: tuple[str, ...]

    async def register(
        self, session: AsyncSession, caller: Caller, body: WebhookEndpointCreate,
        settings: Settings,
    ) -> WebhookEndpointCreated:  # fmt: skip
        """A new endpoint of the caller's party (staff: the party named, role and id), active,
        hearing the events from now on (earlier ones are in the feed); its secret is answered only
        here."""
        party = _party_of(caller, body)
        types = self._known_types(body.event_types)
        try:
            await vet_url(body.url, development=settings.environment == "development",
                          resolve_within=settings.webhook_timeout_seconds)  # fmt: skip
        except UrlRefused as exc:
            raise unprocessable(WEBHOOK_URL_REFUSED, str(exc)) from None
        last = (await session.execute(select(func.max(self.events.events.c.seq)))).scalar()
        row = {
            "id": new_id("whe"), "party_role": party.role, "party_id": party.id, "url": body.url,
            "event_types": types,
            "secret": new_secret(), "status": "active", "disabled_reason": None,
            "created_at": utcnow(), "created_by": caller.subject, "after_seq": last or 0,
            "next_attempt_at": None, "head_attempts": 0, "head_failing_since": None,
        }  # fmt: skip
        await session.execute(self.tables.endpoints.insert().values(**row))
        return WebhookEndpointCreated(**row)

    def _known_types(self, requested: Sequence[str]) -> list[str]:
        for index, name in enumerate(requested):
            if name not in self.event_types:
                raise invalid(["body", "event_types", index],
                              f"{self.service} has no event type {name!r}; its types are "
                              f"{', '.join(self.event_types)}")  # fmt: skip
        return list(dict.fromkeys(requested))

    async def endpoints(
        self, session: AsyncSession, caller: Caller, party_id: str | None, page: PageRequest,
        party_role: str | None = None,
    ) -> Page[WebhookEndpointRead]:  # fmt: skip
        """A party's own endpoints (its role and id); staff every endpoint (`party_id`,
        `party_role` for one party's)."""
        table = self.tables.endpoints
        statement = select(table)
        if not caller.is_staff:
            statement = statement.where(table.c.party_role == caller.role,
                                        table.c.party_id == (caller.party_id or ""))  # fmt: skip
        if party_id is not None:
            statement = statement.where(table.c.party_id == party_id)
        if party_role is not None:
            statement = statement.where(table.c.party_role == party_role)
        rows, cursor = await _page(session, statement, page, table.c.created_at, table.c.id)
        return Page(items=[_endpoint_read(r) for r in rows], next_cursor=cursor)

    async def endpoint(
        self, session: AsyncSession, caller: Caller, endpoint_id: str
    ) -> WebhookEndpointRead:
        return _endpoint_read(await self._visible(session, caller, endpoint_id))

    async def _visible(
        self, session: AsyncSession, caller: Caller, endpoint_id: str
    ) -> Mapping[str, Any]:
        """The endpoint, if the caller may see it (its party: the same role and id; or staff);
        else the missing id's 404."""
        table = self.tables.endpoints
        row = (await session.execute(select(table).where(table.c.id == endpoint_id))).first()
        if row is None or not (caller.is_staff or _owns(caller, dict(row._mapping))):
            raise not_found("webhook endpoint", endpoint_id)
        return dict(row._mapping)

    async def remove(self, session: AsyncSession, caller: Caller, endpoint_id: str) -> None:
        """Delete an endpoint and its attempts: nothing more is delivered to it."""
        await self._visible(session, caller, endpoint_id)
        await session.execute(
            delete(self.tables.attempts).where(self.tables.attempts.c.endpoint_id == endpoint_id)
        )
        await session.execute(
            delete(self.tables.endpoints).where(self.tables.endpoints.c.id == endpoint_id)
        )
        await session.commit()

    async def deliveries(
        self, session: AsyncSession, caller: Caller, endpoint_id: str, page: PageRequest
    ) -> Page[WebhookAttemptRead]:
        """The endpoint's attempts, oldest first: when, the receiver's status, the error."""
        await self._visible(session, caller, endpoint_id)
        table = self.tables.attempts
        statement = select(table).where(table.c.endpoint_id == endpoint_id)
        rows, cursor = await _page(session, statement, page, table.c.attempted_at, table.c.id)
        return Page(items=[_attempt_read(r) for r in rows], next_cursor=cursor)

    async def test(
        self, session: AsyncSession, caller: Caller, endpoint_id: str, settings: Settings
    ) -> WebhookAttemptRead:
        """Post a signed `webhook.test` message now; the attempt is recorded and answered. A
        2xx makes a `failing` or `disabled` endpoint active again: its waiting event is retried
        at once."""
        endpoint = await self._visible(session, caller, endpoint_id)
        message = event_json(SimpleNamespace(id=new_id("msg"), type=TEST_EVENT_TYPE,
                                             occurred_at=utcnow(),
                                             data={"endpoint_id": endpoint_id}))  # fmt: skip
        async with sending_client(settings.webhook_timeout_seconds) as client:
            outcome = await post_message(client, endpoint["url"], endpoint["secret"], message,
                                         settings)  # fmt: skip
        row = _attempt_row(endpoint_id, message["id"], None, 1, outcome)
        await session.execute(self.tables.attempts.insert().values(**row))
        if outcome.delivered and endpoint["status"] != "active":
            await session.execute(
                update(self.tables.endpoints)
                .where(self.tables.endpoints.c.id == endpoint_id)
                .values(status="active", disabled_reason=None, next_attempt_at=None,
                        head_attempts=0, head_failing_since=None)
            )  # fmt: skip
        return _attempt_read(row)

    # ------------------------------------------------------------ delivery

    async def dispatch_once(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
    ) -> int:
        """One dispatcher run to its end: claim the endpoints due (up to the batch size) and
        serve them side by side until each has nothing left or must wait; how many were
        claimed."""
        owner, leased_at = new_id("lease"), time.monotonic()
        claimed = await self._claim(sessionmaker, owner, settings.webhook_batch_size, settings)
        runs = [_Run(self, sessionmaker, e, owner, settings, leased_at) for e in claimed]
        await asyncio.gather(*(self._serve(run) for run in runs))
        return len(claimed)

    async def dispatch_periodically(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        """Run for the life of the app: every poll interval, claim endpoints due while fewer
        than the batch size are being served, and serve each in a task of its own."""
        serving: dict[asyncio.Task[None], str] = {}

        async def claim_more() -> None:
            free = settings.webhook_batch_size - len(serving)
            if free <= 0:
                return
            owner, leased_at = new_id("lease"), time.monotonic()
            busy = set(serving.values())  # never two runs of this process on one endpoint
            for endpoint in await self._claim(sessionmaker, owner, free, settings, busy):
                run = _Run(self, sessionmaker, endpoint, owner, settings, leased_at)
                task = asyncio.create_task(self._serve(run))
                serving[task] = endpoint["id"]
                task.add_done_callback(lambda done: serving.pop(done, None))

        try:
            await run_periodically("delivering webhooks", claim_more,
                                   every=settings.webhook_poll_seconds)  # fmt: skip
        finally:
            for task in list(serving):
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def dispatching(self, app: Any, settings: Settings) -> AsyncIterator[None]:
        """The dispatcher at work for as long as the block runs (an app's lifespan): on the
        app's sessions, cancelled at the end."""
        async with running(self.dispatch_periodically(app.state.sessionmaker, settings)):
            yield

    async def _claim(
        self, sessionmaker: async_sessionmaker[AsyncSession], owner: str, limit: int,
        settings: Settings, busy: Collection[str] = (),
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Take the lease of up to `limit` active endpoints whose lease is free, whose retry is
        due and that have an event after their `after_seq`, in one committed statement."""
        table, parties = self.tables.endpoints, self.events.parties
        now = utcnow()
        # The events of the endpoint's party, role and id (an endpoint with no role hears none).
        heard_as = party_key_sql(table.c.party_role, table.c.party_id)
        waiting = exists().where(parties.c.party_id == heard_as,
                                 parties.c.event_seq > table.c.after_seq)  # fmt: skip
        due = (
            select(table.c.id)
            .where(
                table.c.status == "active",
                or_(table.c.lease_until.is_(None), table.c.lease_until < now),
                or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now),
                waiting,
            )
            .order_by(table.c.next_attempt_at.nulls_first(), table.c.id)
            .limit(limit)
        )
        if busy:
            due = due.where(table.c.id.not_in(sorted(busy)))
        async with sessionmaker() as session:
            if session.get_bind().dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True, of=table)
            lease = dt.timedelta(seconds=settings.webhook_lease_seconds)
            result = await session.execute(
                update(table)
                .where(table.c.id.in_(due.scalar_subquery()))
                .values(lease_owner=owner, lease_until=now + lease)
                .returning(*table.c)
            )
            rows = [dict(row) for row in result.mappings().all()]
            await session.commit()
        return rows

    @staticmethod
    async def _serve(run: _Run) -> None:
        """Post the endpoint's events in order until none is left, one is refused, or the lease
        is lost; then give the lease back with the progress made (events skipped included)."""
        settings, endpoint = run.settings, run.endpoint
        try:
            async with sending_client(settings.webhook_timeout_seconds) as client:
                await run.deliver(client)
        except Exception:
            log.exception("webhook endpoint %s: delivery run failed", endpoint["id"])
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(settings.webhook_timeout_seconds):
                    await run.release()

    async def events_after(
        self, session: AsyncSession, party: Party, after_seq: int, limit: int
    ) -> Sequence[Any]:
        """The party's events (its role and id) after `after_seq`, in `seq` order."""
        events, parties = self.events.events, self.events.parties
        statement = (
            select(events.c.seq, events.c.id, events.c.type, events.c.occurred_at, events.c.data)
            .join(parties, parties.c.event_seq == events.c.seq)
            .where(parties.c.party_id == party.key, parties.c.event_seq > after_seq)
            .order_by(parties.c.event_seq)
            .limit(limit)
        )
        return list((await session.execute(statement)).all())


class _Run:
    """One claim of one endpoint: its progress (`after_seq`) and the state of its head event."""

    def __init__(
        self, hooks: Webhooks, sessionmaker: async_sessionmaker[AsyncSession],
        endpoint: dict[str, Any], owner: str, settings: Settings, leased_at: float,
    ) -> None:  # fmt: skip
        self.hooks, self.sessionmaker, self.settings = hooks, sessionmaker, settings
        self.endpoint, self.owner = endpoint, owner
        self.party = Party(endpoint["party_role"], endpoint["party_id"])
        self.progress: int = endpoint["after_seq"]
        self.types = frozenset(endpoint["event_types"])
        self.held = True
        self.marking: asyncio.Future[bool] | None = None  # the last mark, shielded (`_record`)
        # When the lease runs out at the latest (this process's monotonic clock).
        self.lease_ends = leased_at + settings.webhook_lease_seconds

    async def deliver(self, client: httpx.AsyncClient) -> None:
        """Post the events one at a time, in order: an event is posted only once the one before
        it was answered 2xx and that answer is recorded (the endpoint moved past it). A stop at
        any point (a crash, a lost lease) then leaves the first unrecorded event to be posted
        again before any later one: on the wire N, N, N+1 at worst, never N+1 before N."""
        cursor = self.progress  # the last event read (posted or skipped) in this run
        while self.held:
            async with self.sessionmaker() as session:
                batch = await self.hooks.events_after(
                    session, self.party, cursor,
                    self.settings.webhook_batch_size * 10,
                )  # fmt: skip
            if not batch:
                return
            for event in batch:
                cursor = event.seq
                if event.type not in self.types:
                    self.progress = event.seq  # skipped: saved with the next mark
                    continue
                if not await self._lease_lasts():
                    return
                outcome = await post_message(client, self.endpoint["url"],
                                             self.endpoint["secret"], event_json(event),
                                             self.settings)  # fmt: skip
                if not await self._record(dict(event._mapping), outcome):
                    return

    async def _record(self, event: Mapping[str, Any], outcome: Outcome) -> bool:
        """`_mark`, carried to its end even when the run is cancelled meanwhile (a stop): a mark
        cut off may still have committed, and `release` must know the progress it made before it
        gives the lease back; whether to go on with the next event."""
        self.marking = asyncio.ensure_future(self._mark(event, outcome))
        return await asyncio.shield(self.marking)

    async def _mark(self, event: Mapping[str, Any], outcome: Outcome) -> bool:
        """Record the attempt and move the endpoint on, while the lease is still ours; whether
        to go on with the next event."""
        endpoint = self.endpoint
        renewed_at = time.monotonic()
        values, go_on = self._after(event, outcome)
        attempt = endpoint["head_attempts"] + 1
        row = _attempt_row(endpoint["id"], event["id"], event["seq"], attempt, outcome)
        async with self.sessionmaker() as session:
            held = await self.hooks.tables.mark(session, endpoint["id"], self.owner, values, row)
        if not held:
            log.warning("webhook endpoint %s: lease lost before %s was marked (%s)",
                        endpoint["id"], event["id"], outcome.status_code)  # fmt: skip
            self.held = False
            return False
        count_webhook_attempt(self.hooks.service, _attempt_outcome(outcome, values))
        if go_on:
            self.progress = max(self.progress, event["seq"])
            self.lease_ends = renewed_at + self.settings.webhook_lease_seconds
            endpoint.update(head_attempts=0, head_failing_since=None)
        else:
            self.held = False  # the marks above gave the lease back
        return go_on

    async def _lease_lasts(self) -> bool:
        """Whether the lease surely lasts through one more post, renewing it first if it might
        not: a post never runs past the lease (it is cut at the timeout), so no other dispatcher
        can be posting to the endpoint at the same time."""
        settings = self.settings
        if time.monotonic() + settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS < (
            self.lease_ends
        ):
            return True
        renewed_at, table = time.monotonic(), self.hooks.tables.endpoints
        lease = dt.timedelta(seconds=settings.webhook_lease_seconds)
        async with self.sessionmaker() as session:
            held = await session.execute(
                update(table)
                .where(table.c.id == self.endpoint["id"], table.c.lease_owner == self.owner)
                .values(lease_until=utcnow() + lease)
            )
            await session.commit()
        if getattr(held, "rowcount", 0) != 1:
            log.warning("webhook endpoint %s: lease lost", self.endpoint["id"])
            self.held = False
            return False
        self.lease_ends = renewed_at + settings.webhook_lease_seconds
        return True

    def _after(self, event: Mapping[str, Any], outcome: Outcome) -> tuple[dict[str, Any], bool]:
        """The endpoint's columns after an attempt, and whether to go on: delivered (on, lease
        renewed), 410 (disabled), else held on the event until its retry (or `failing`)."""
        now = outcome.attempted_at
        if outcome.delivered:
            lease = dt.timedelta(seconds=self.settings.webhook_lease_seconds)
            return {"after_seq": event["seq"], "head_attempts": 0, "head_failing_since": None,
                    "next_attempt_at": None, "lease_until": utcnow() + lease}, True  # fmt: skip
        free = {"after_seq": self.progress, "lease_owner": None, "lease_until": None}
        if outcome.status_code == 410:
            reason = f"the receiver answered 410 Gone to {event['id']} at {now.isoformat()}"
            return {**free, "status": "disabled", "disabled_reason": reason}, False
        attempts = self.endpoint["head_attempts"] + 1
        since = self.endpoint["head_failing_since"] or now
        retry = next_retry(attempts, since, now, self.settings, random.random())
        values = {**free, "head_attempts": attempts, "head_failing_since": since,
                  "next_attempt_at": retry}  # fmt: skip
        if retry is None:
            values.update(status="failing", disabled_reason=(
                f"{event['id']} not delivered in {attempts} attempts since {since.isoformat()}; "
                f"the last: {outcome.error}")[:2000])  # fmt: skip
        return values, False

    async def release(self) -> None:
        """Give the lease back, saving the progress (events skipped at the end included), once
        the last mark has finished. The endpoint's `after_seq` only ever moves on: a mark whose
        answer was lost (cancelled, or the connection dropped after its commit) may have moved
        it past `progress`, and moving it back would post and record that event again."""
        if self.marking is not None:
            await asyncio.wait([self.marking])  # its failure, if any, was the run's
        if not self.held:
            return
        table = self.hooks.tables.endpoints
        progress = literal(self.progress, table.c.after_seq.type)
        async with self.sessionmaker() as session:
            await session.execute(
                update(table)
                .where(table.c.id == self.endpoint["id"], table.c.lease_owner == self.owner)
                .values(after_seq=case((table.c.after_seq < progress, progress),
                                       else_=table.c.after_seq),
                        lease_owner=None, lease_until=None)
            )  # fmt: skip
            await session.commit()
        self.held = False


# ---------------------------------------------------------------- helpers


def _party_of(caller: Caller, body: WebhookEndpointCreate) -> Party:
    """Whose endpoint a registration makes: a party's own (its role and id); for staff, the party
    named, role and id."""
    if caller.is_staff:
        if body.party_id is None:
            raise invalid(["body", "party_id"], "staff name the party the endpoint belongs to")
        if body.party_role is None:
            raise invalid(["body", "party_role"],
                          "staff name the role of the party the endpoint belongs to: "
                          "policyholder or bank")  # fmt: skip
        return Party(body.party_role, body.party_id)
    for name, given, own in (("party_id", body.party_id, caller.party_id),
                             ("party_role", body.party_role, caller.role)):  # fmt: skip
        if given is not None and given != own:
            raise invalid(["body", name],
                          f"a {caller.role} registers endpoints for itself: leave {name} out")  # fmt: skip
    assert caller.party_id is not None  # a party token always names its party
    return Party(caller.role, caller.party_id)


def _owns(caller: Caller, endpoint: Mapping[str, Any]) -> bool:
    """Whether the endpoint is the caller's own: the same role and the same id."""
    return (
        caller.party_id is not None
        and endpoint["party_role"] == caller.role and endpoint["party_id"] == caller.party_id
    )  # fmt: skip


def _attempt_outcome(outcome: Outcome, values: Mapping[str, Any]) -> str:
    """An attempt as counted: delivered, failed (retried later), given_up (the endpoint is now
    `failing`) or gone (410: the endpoint is disabled)."""
    if outcome.delivered:
        return "delivered"
    return {"failing": "given_up", "disabled": "gone"}.get(values.get("status", ""), "failed")


def _attempt_row(
    endpoint_id: str, event_id: str, seq: int | None, attempt: int, outcome: Outcome
) -> dict[str, Any]:
    return {
        "id": new_id("wha"), "endpoint_id": endpoint_id, "event_id": event_id, "event_seq": seq,
        "attempt": attempt, "attempted_at": outcome.attempted_at,
        "status_code": outcome.status_code, "error": outcome.error,
        "duration_ms": outcome.duration_ms,
    }  # fmt: skip


def _endpoint_read(row: Mapping[str, Any]) -> WebhookEndpointRead:
    return WebhookEndpointRead.model_validate(
        {name: row[name] for name in WebhookEndpointRead.model_fields}
    )


def _attempt_read(row: Mapping[str, Any]) -> WebhookAttemptRead:
    status = row["status_code"]
    return WebhookAttemptRead(
        id=row["id"], created_at=row["attempted_at"], event_id=row["event_id"],
        attempt=row["attempt"], attempted_at=row["attempted_at"], status_code=status,
        error=row["error"],
        duration_ms=row["duration_ms"], delivered=status is not None and 200 <= status < 300,
    )  # fmt: skip


async def _page(
    session: AsyncSession, statement: Any, page: PageRequest, moment: Column[Any],
    ident: Column[Any],
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """One page of a Core statement's rows, ordered by (`moment`, `ident`), and the next cursor."""
    if page.after is not None:
        at, after_id = page.after
        position = tuple_(literal(at, moment.type), literal(after_id, ident.type))
        statement = statement.where(tuple_(moment, ident) > position)
    statement = statement.order_by(moment, ident).limit(page.limit + 1)
    rows = [dict(row._mapping) for row in (await session.execute(statement)).all()]
    if len(rows) <= page.limit:
        return rows, None
    last = rows[page.limit - 1]
    return rows[: page.limit], page.cursor(last[moment.name], last[ident.name])
