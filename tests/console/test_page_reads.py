"""A page reads what it shows in as few requests as the API allows: the buyers of a queue of a
hundred and fifty referrals on as many buyers in two list reads (`?id=`), never one read per row,
which a person's own rate limit (100 a second) refuses from the hundred-and-first on; a read the
page does without that is refused anyway is said on the page, never left as a half-filled row;
a read the page cannot do without that is rate limited is a 429 page saying so, with the
service's Retry-After, not a 502."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from console.main import create_app
from console.session import SESSION_COOKIE
from console.settings import ConsoleSettings
from console.underwriting import limits_with_exposure
from console.upstream import IDS_PER_READ, SERVICE_NAMES, Upstream
from shared.auth import mint_token
from shared.http import ServiceClient
from shared.settings import DEVELOPMENT_JWT_SECRET

RATE = 100  # a person's requests a second (TCI_RATE_LIMIT's default)
REFERRALS = 150
RATE_LIMITED = {"type": "https://tci.example/problems/rate-limited", "title": "Too Many Requests",
                "status": 429, "detail": "too many requests; retry in 1 s"}  # fmt: skip


def referral(n: int) -> dict[str, Any]:
    return {"id": f"lrq_{n:03}", "buyer_id": f"buy_{n:03}", "policy_id": "pol_1", "grade": 8,
            "created_at": "2026-01-05T09:00:00+00:00", "status": "referred",
            "requested_amount": {"amount": "10000.00", "currency": "EUR"},
            "payment_terms_days": 60, "reasons": [{"code": "grade_referral", "message": "-"}]}  # fmt: skip


def buyer(buyer_id: str) -> dict[str, Any]:
    return {"id": buyer_id, "name": f"Buyer {buyer_id[4:]} GmbH", "country": "DE", "grade": 8}


class RateLimitedUnderwriting:
    """The underwriting API as a person's token sees it within its rate: the referral queue, the
    buyers (one by one, or listed by `?id=`), refusing every request past `RATE` with 429."""

    def __init__(self, *, buyers_refused: bool = False) -> None:
        self.asked: list[httpx.Request] = []
        self.buyers_refused = buyers_refused

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        path, params = request.url.path, request.url.params
        if len(self.asked) > RATE:
            return httpx.Response(429, json=RATE_LIMITED, headers={"Retry-After": "1"})
        if path == "/v1/limit-requests":
            return httpx.Response(200, json={"items": [referral(n) for n in range(REFERRALS)],
                                             "next_cursor": None})  # fmt: skip
        if path.startswith("/v1/buyers") and self.buyers_refused:
            return httpx.Response(429, json=RATE_LIMITED, headers={"Retry-After": "1"})
        if path == "/v1/buyers":
            return httpx.Response(200, json={"items": [buyer(i) for i in params.get_list("id")],
                                             "next_cursor": None})  # fmt: skip
        if path.startswith("/v1/buyers/"):
            return httpx.Response(200, json=buyer(path.rsplit("/", 1)[1]))
        if path.startswith("/v1/policies/"):
            return httpx.Response(429, json=RATE_LIMITED, headers={"Retry-After": "1"})
        return httpx.Response(404, json={"type": "https://tci.example/problems/not-found"})


@asynccontextmanager
async def underwriter_console(service: RateLimitedUnderwriting) -> AsyncIterator[httpx.AsyncClient]:
    settings = ConsoleSettings(TCI_ENV="development", TCI_JWT_SECRET=DEVELOPMENT_JWT_SECRET)
    app = create_app(settings)
    app.state.clients = {
        name: ServiceClient(f"http://{name}.test", jwt_secret=DEVELOPMENT_JWT_SECRET,
                            caller_name="console", transport=httpx.MockTransport(service))
        for name in SERVICE_NAMES
    }  # fmt: skip
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="underwriter", subject="u", ttl_seconds=600)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://console.test") as client:  # fmt: skip
        client.cookies.set(SESSION_COOKIE, token)
        yield client


def queue_rows(page: httpx.Response) -> list[str]:
    return [row for row in re.findall(r"<tr>(.*?)</tr>", page.text, re.S) if "row-link" in row]


async def test_a_queue_of_150_referrals_on_150_buyers_reads_the_buyers_in_two_list_requests(
) -> None:  # fmt: skip
    service = RateLimitedUnderwriting()
    async with underwriter_console(service) as client:
        page = await client.get("/underwriting/queue")
    assert page.status_code == 200
    rows = queue_rows(page)
    assert len(rows) == REFERRALS
    assert all(re.search(r"Buyer \d{3} GmbH</a></td>\s*<td>DE</td>", row) for row in rows)
    assert 'id="unread"' not in page.text
    buyer_reads = [r for r in service.asked if r.url.path.startswith("/v1/buyers")]
    assert [r.url.path for r in buyer_reads] == ["/v1/buyers", "/v1/buyers"]
    assert sorted(len(r.url.params.get_list("id")) for r in buyer_reads) == [
        REFERRALS - IDS_PER_READ,
        IDS_PER_READ,
    ]
    assert len(service.asked) == 3


async def test_buyers_that_cannot_be_read_are_said_on_the_page_not_left_as_bare_ids() -> None:
    service = RateLimitedUnderwriting(buyers_refused=True)
    async with underwriter_console(service) as client:
        page = await client.get("/underwriting/queue", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200
    assert len(queue_rows(page)) == REFERRALS  # the queue itself was read: every row is there
    said = re.search(r'<div class="error" role="alert" id="unread">(.*?)</div>', page.text, re.S)
    assert said is not None
    assert "本页有部分内容未能读取" in said.group(1) and "请求过于频繁" in said.group(1)


async def test_a_page_whose_own_read_is_rate_limited_answers_429_with_retry_after() -> None:
    async with underwriter_console(RateLimitedUnderwriting()) as client:
        page = await client.get("/underwriting/policies/pol_1")
    assert page.status_code == 429
    assert page.headers["Retry-After"] == "1"
    assert "Too many requests; wait a moment." in page.text


class PolicyBook:
    """A policy's limits (a limit on every other buyer, the newest buyers' first) and its
    exposure, which lists every buyer of the book by buyer id: those with a limit and those only
    owed (`?buyer_id=`: those named)."""

    def __init__(self, buyers: int) -> None:
        self.ids = [f"buy_{n:03}" for n in range(buyers)]
        self.limited = self.ids[::-2]
        self.asked: list[httpx.Request] = []

    def exposure(self, buyer_id: str) -> dict[str, Any]:
        limit = f"lim_{buyer_id[4:]}" if buyer_id in self.limited else None
        return {"buyer_id": buyer_id, "limit_id": limit,
                "exposure": {"amount": f"{buyer_id[4:]}.00", "currency": "EUR"}}  # fmt: skip

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        path, params = request.url.path, request.url.params
        if path == "/v1/policies/pol_1/limits":
            items = [{"id": f"lim_{b[4:]}", "buyer_id": b} for b in self.limited]
            return httpx.Response(200, json={"items": items[: int(params["limit"])],
                                             "next_cursor": None})  # fmt: skip
        if path == "/v1/policies/pol_1/exposure":
            named = params.get_list("buyer_id")
            book = [b for b in self.ids if not named or b in named]
            return httpx.Response(200, json={
                "items": [self.exposure(b) for b in book[: int(params["limit"])]],
                "next_cursor": None})  # fmt: skip
        return httpx.Response(404, json={"type": "https://tci.example/problems/not-found"})


async def test_a_policys_limits_read_their_own_buyers_exposure_matched_by_buyer() -> None:
    """The exposure lists buyers owed without a limit too, by buyer id: the limits shown read the
    exposure of exactly their buyers (`?buyer_id=`, a list read per hundred), each matched by
    its buyer, not the exposure list's first page."""
    book = PolicyBook(buyers=300)
    clients = {name: ServiceClient(f"http://{name}.test", jwt_secret=DEVELOPMENT_JWT_SECRET,
                                   caller_name="console", transport=httpx.MockTransport(book))
               for name in SERVICE_NAMES}  # fmt: skip
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="underwriter", subject="u", ttl_seconds=600)
    rows = await limits_with_exposure(Upstream(clients, token), "pol_1", 120)
    assert [row["limit"]["buyer_id"] for row in rows] == book.limited[:120]
    assert all(row["exposure"] == book.exposure(row["limit"]["buyer_id"]) for row in rows)
    reads = [
        r.url.params.get_list("buyer_id") for r in book.asked if r.url.path.endswith("/exposure")
    ]
    assert sorted(len(named) for named in reads) == [120 - IDS_PER_READ, IDS_PER_READ]
    assert sorted(b for named in reads for b in named) == sorted(book.limited[:120])
