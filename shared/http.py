"""The one HTTP client base the services use to call each other: timeouts, request id, retries
only where the call is idempotent, and a service identity."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shared.auth import mint_token
from shared.logging import current_request_id
from shared.problems import SERVICE_UNAVAILABLE, Problem

RETRYABLE = frozenset({502, 503, 504})


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
    ) -> None:
        self._secret = jwt_secret
        self._caller_name = caller_name
        self._retries = retries
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout_seconds), transport=transport
        )

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        token = mint_token(self._secret, role="service", subject=self._caller_name, ttl_seconds=300)
        headers = {"Authorization": f"Bearer {token}"}
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
    ) -> httpx.Response:
        """Send a request; retried on a connection failure or 502–504 only when it is idempotent
        (a GET, or a POST carrying an Idempotency-Key)."""
        all_headers = self._headers(headers)
        if idempotent is None:
            idempotent = method.upper() == "GET" or "Idempotency-Key" in all_headers
        attempts = 1 + (self._retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                response = await self._client.request(
                    method, path, json=json, params=params, headers=all_headers
                )
            except httpx.TransportError:
                if attempt + 1 >= attempts:
                    # Answered 503 `service-unavailable` with Retry-After (shared.app adds it).
                    raise Problem(
                        SERVICE_UNAVAILABLE, f"a peer service did not answer {path}"
                    ) from None
            else:
                if response.status_code not in RETRYABLE or attempt + 1 >= attempts:
                    return response
            await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._client.aclose()
