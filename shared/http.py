"""The one HTTP client base the services use to call each other: timeouts, request id, retries
only where the call is idempotent, and a service identity."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from shared.auth import mint_token
from shared.logging import current_request_id
from shared.problems import SERVICE_UNAVAILABLE, Problem
from shared.tracing import trace_peer_calls

RETRYABLE = frozenset({502, 503, 504})
TOKEN_TTL_SECONDS = 300
# A token is reused for this share of its life, then a fresh one is minted: the peer verifies a
# token once and then knows it (shared.auth.VerifiedTokens), so one token per request would cost
# a signature here and a verification there on every call.
TOKEN_REUSE_SHARE = 0.5


class ServiceClient:
    """A client for one service, authenticated with a short-lived `service` token."""

    def __init__(
        self,
        base_url: str,
        *,
        jwt_secret: str,
        caller_name: str,
        timeout_seconds: float = 10.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        one_at_a_time: bool | None = None,
    ) -> None:
        self._secret = jwt_secret
        self._caller_name = caller_name
        self._retries = retries
        self._timeout_seconds = timeout_seconds
        self._token = ""
        self._token_renewal = 0.0  # monotonic time after which a fresh token is minted
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout_seconds), transport=transport
        )
        trace_peer_calls(self._client)
        # A transport of its own is an app in-process (tests), which may serve every request
        # from one session: its requests go one at a time unless told otherwise. Over the
        # network they go at once.
        serial = transport is not None if one_at_a_time is None else one_at_a_time
        self._one_at_a_time = asyncio.Lock() if serial else None

    def _bearer(self) -> str:
        """This service's token, minted again once half its life has passed."""
        now = time.monotonic()
        if now >= self._token_renewal:
            self._token = mint_token(self._secret, role="service", subject=self._caller_name,
                                     ttl_seconds=TOKEN_TTL_SECONDS)  # fmt: skip
            self._token_renewal = now + TOKEN_TTL_SECONDS * TOKEN_REUSE_SHARE
        return self._token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._bearer()}"}
        request_id = current_request_id()
        if request_id:
            headers["X-Request-ID"] = request_id
        headers.update(extra or {})
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        timeout_seconds: float | None = None,
    ) -> httpx.Response:
        """Send a request; retried on a connection failure or 502–504 only when it is idempotent
        (a GET, or a POST carrying an Idempotency-Key). The call, its retries included, takes at
        most the client's timeout (`TCI_HTTP_TIMEOUT_SECONDS`; `timeout_seconds`, when the caller
        allows less): a peer that does not answer in that time is not asked again (it hangs, and
        a retry would only wait as long again), and the caller answers 503 at once."""
        all_headers = self._headers(headers)
        if idempotent is None:
            idempotent = method.upper() == "GET" or "Idempotency-Key" in all_headers
        budget = self._timeout_seconds if timeout_seconds is None else timeout_seconds
        deadline = time.monotonic() + budget
        attempts = 1 + (self._retries if idempotent else 0)
        for attempt in range(attempts):
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    response = await self._send(method, path, json, params, all_headers)
            except (httpx.TimeoutException, TimeoutError):
                # Answered 503 `service-unavailable` with Retry-After (shared.app adds it).
                raise Problem(
                    SERVICE_UNAVAILABLE, f"a peer service did not answer {path} within {budget:g} s"
                ) from None
            except httpx.TransportError:
                if attempt + 1 >= attempts:
                    raise Problem(
                        SERVICE_UNAVAILABLE, f"a peer service did not answer {path}"
                    ) from None
            else:
                if response.status_code not in RETRYABLE or attempt + 1 >= attempts:
                    return response
                if time.monotonic() + 0.1 * 2**attempt >= deadline:
                    return response  # no time left to ask again: its answer stands
            await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def _send(
        self, method: str, path: str, json: Any, params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> httpx.Response:  # fmt: skip
        if self._one_at_a_time is None:
            return await self._client.request(
                method, path, json=json, params=params, headers=headers
            )
        async with self._one_at_a_time:
            return await self._client.request(
                method, path, json=json, params=params, headers=headers
            )

    async def aclose(self) -> None:
        await self._client.aclose()
