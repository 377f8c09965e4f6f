"""What a service answers when a peer did not answer as it should."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.http import ServiceClient
from shared.peers import fetch_policy
from shared.problems import Problem
from shared.settings import DEVELOPMENT_JWT_SECRET


def _peer_answering(status: int) -> ServiceClient:
    """An underwriting peer that answers every request with `status`."""

    async def answer(request: Request) -> JSONResponse:
        return JSONResponse({"type": "x", "status": status}, status_code=status)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
    return ServiceClient("http://underwriting", jwt_secret=DEVELOPMENT_JWT_SECRET,
                         caller_name="claims", transport=httpx.ASGITransport(app=app))  # fmt: skip


@pytest.mark.parametrize("status", [429, 503, 504])
async def test_a_peer_that_cannot_answer_now_makes_the_caller_unavailable_too(status: int) -> None:
    peer = _peer_answering(status)
    with pytest.raises(Problem) as raised:
        await fetch_policy({"underwriting": peer}, "pol-1")
    await peer.aclose()
    assert (raised.value.status, raised.value.type) == (503, "service-unavailable")


@pytest.mark.parametrize("status", [400, 500])
async def test_a_peer_answering_wrongly_is_a_bad_gateway(status: int) -> None:
    peer = _peer_answering(status)
    with pytest.raises(Problem) as raised:
        await fetch_policy({"underwriting": peer}, "pol-1")
    await peer.aclose()
    assert (raised.value.status, raised.value.type) == (502, "upstream-error")
