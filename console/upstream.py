"""The console's calls to the three services, made with the signed-in person's token through the
services' own client base (`shared.http.ServiceClient`); an answer that is not a success becomes
an `UpstreamRefused` carrying the problem's type, detail and field errors, for the page to
explain."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Form, Request

from console.settings import ConsoleSettings
from shared.http import ServiceClient
from shared.idempotency import HEADER as IDEMPOTENCY_HEADER
from shared.idempotency import REPLAYED_HEADER
from shared.problems import Problem

SERVICE_NAMES = ("underwriting", "claims", "collections")
# The most ids one list read names (`?id=a&id=b`: the underwriting API's `IDS_PER_LIST`).
IDS_PER_READ = 100
# A form's key as the console makes them (`form_key`), or near enough; anything else a hand-made
# form sends is replaced by a key of the console's own.
FORM_KEY = re.compile(r"^[A-Za-z0-9-]{16,64}$")
T = TypeVar("T")
# A problem's members every problem has (RFC 9457's, and a validation problem's `errors`).
PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance", "errors")


@dataclass(frozen=True)
class FieldError:
    """One field a service's validation problem names (`errors`): where (`loc`) and why."""

    loc: tuple[str | int, ...]
    msg: str


class UpstreamRefused(Exception):
    """A service answered with a problem: its HTTP status, its type's slug, its detail, for a
    validation problem the fields it names, and the problem's other members (`members`: what a
    problem type adds, such as `assessment-outdated`'s `limit_used_by`)."""

    def __init__(self, status: int, slug: str, detail: str = "",
                 errors: tuple[FieldError, ...] = (), retry_after: str | None = None,
                 members: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(f"{status} {slug}: {detail}")
        self.status, self.slug, self.detail, self.errors = status, slug, detail, errors
        self.retry_after = retry_after  # a 429's or 503's `Retry-After`, passed on to the browser
        self.members: Mapping[str, Any] = members or {}


def build_clients(settings: ConsoleSettings) -> dict[str, ServiceClient]:
    urls = {"underwriting": settings.underwriting_url, "claims": settings.claims_url,
            "collections": settings.collections_url}  # fmt: skip
    return {
        name: ServiceClient(url, jwt_secret=settings.jwt_secret, caller_name="console",
                            timeout_seconds=settings.http_timeout_seconds)
        for name, url in urls.items()
    }  # fmt: skip


def _slug_of(body: Any, status: int) -> str:
    kind = body.get("type") if isinstance(body, dict) else None
    if isinstance(kind, str) and kind:
        return kind.rstrip("/").rsplit("/", 1)[-1]
    return {401: "unauthorized", 403: "forbidden", 404: "not-found"}.get(status, "upstream-error")


def _field_errors(body: Any) -> tuple[FieldError, ...]:
    """The `errors` of a problem, each with a `loc` of names and indexes and a `msg` (anything
    else a body holds there is left out)."""
    found = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(found, list):
        return ()
    return tuple(
        FieldError(tuple(p for p in e["loc"] if isinstance(p, str | int)), e["msg"])
        for e in found
        if isinstance(e, dict) and isinstance(e.get("loc"), list) and isinstance(e.get("msg"), str)
    )


def _members(body: Any) -> dict[str, Any]:
    """A problem's members beyond RFC 9457's own and the validation errors."""
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if k not in PROBLEM_FIELDS}


@dataclass
class Upstream:
    """The services as the signed-in person sees them."""

    clients: Mapping[str, ServiceClient]
    token: str
    # Why reads a page could do without were left out (their problems' slugs): the page says so.
    unread: list[str] = field(default_factory=list)

    async def send(self, service: str, method: str, path: str, *, json: Any = None,
                   params: dict[str, Any] | None = None) -> Any:  # fmt: skip
        """The JSON a service answers, or `UpstreamRefused`."""
        response = await self.raw(service, method, path, json=json, params=params)
        return response.json() if response.content else None

    async def raw(self, service: str, method: str, path: str, *, json: Any = None,
                  params: dict[str, Any] | None = None,
                  idempotency_key: str | None = None) -> Any:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        try:
            response = await self.clients[service].request(
                method, path, json=json, params=params, headers=headers
            )
        except Problem:
            raise UpstreamRefused(503, "service-unavailable") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            detail = body.get("detail", "") if isinstance(body, dict) else ""
            raise UpstreamRefused(response.status_code, _slug_of(body, response.status_code),
                                  str(detail or ""), _field_errors(body),
                                  response.headers.get("retry-after"),
                                  _members(body))  # fmt: skip
        return response

    async def get(self, service: str, path: str, **params: Any) -> Any:
        return await self.send(service, "GET", path, params=params or None)

    async def act(self, service: str, path: str, body: Any, *, key: str) -> Done:
        """A form's POST, sent with the form's key as its `Idempotency-Key` (a key that is not
        one of the console's is replaced by a fresh one); `UpstreamRefused` when refused."""
        given = key if FORM_KEY.match(key) else form_key()
        response = await self.raw(service, "POST", path, json=body, idempotency_key=given)
        replayed = response.headers.get(REPLAYED_HEADER, "").lower() == "true"
        return Done(response.json() if response.content else None, replayed)

    async def every(self, service: str, path: str, limit: int, **params: Any) -> list[Any]:
        """The items of a paginated list, page after page, at most `limit` of them."""
        items: list[Any] = []
        cursor: str | None = None
        while len(items) < limit:
            query = {**params, "limit": min(500, limit - len(items))}
            if cursor:
                query["cursor"] = cursor
            page = await self.get(service, path, **query)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items

    async def by_ids(self, service: str, path: str, ids: set[str], *,
                     key: str = "id") -> dict[str, Any]:  # fmt: skip
        """The items of a list with the ids named (`?id=`, or the `key` its items are named by:
        `?buyer_id=`), by that id, read IDS_PER_READ at a time
        (one request for a page's worth), side by side: never one request per item, which a
        page of a hundred rows would pay for in the person's rate limit. A read refused is left
        out and noted (`unread`); a 401 still signs the person out."""
        wanted = sorted(ids)
        chunks = [wanted[i : i + IDS_PER_READ] for i in range(0, len(wanted), IDS_PER_READ)]
        pages = await gather_all(*(self.optional(self.every(service, path, len(chunk),
                                                            **{key: chunk}))
                                   for chunk in chunks))  # fmt: skip
        return {item[key]: item for page in pages for item in page or []}

    async def optional(self, read: Awaitable[T]) -> T | None:
        """A read the page can show itself without (a name beside an id, a calendar's
        corrections): None when refused, and the refusal noted for the page to say so."""
        try:
            return await read
        except UpstreamRefused as refusal:
            if refusal.status == 401:
                raise
            self.unread.append(refusal.slug)
            return None


def form_key() -> str:
    """A fresh key for one rendering of a form: sent again, the form is done once."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Done:
    """A service's answer to a form: its JSON, and whether it was the answer to the same form
    sent before (`Idempotent-Replayed`: nothing was done this time)."""

    body: Any
    replayed: bool


# The form field carrying the key (`idempotency_key`); empty when a form has none.
FormKey = Annotated[str, Form()]


async def gather_all(*calls: Awaitable[T]) -> list[T]:
    return list(await asyncio.gather(*calls))


def get_upstream(request: Request) -> Upstream:
    from console.session import require_caller

    _, token = require_caller(request)
    upstream = Upstream(request.app.state.clients, token)
    request.state.upstream = upstream  # its `unread`, for the page rendered
    return upstream


UpstreamDep = Annotated[Upstream, Depends(get_upstream)]
