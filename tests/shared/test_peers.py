"""How a service calls its peers: over connections kept open (httpx's pool), and what it answers
when a peer did not answer as it should."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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


def _peer_saying(status: int, body: bytes, content_type: str) -> ServiceClient:
    """An underwriting peer that answers every request with `status` and `body`."""

    async def answer(request: Request) -> Response:
        return Response(body, status_code=status, media_type=content_type)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
    return ServiceClient("http://underwriting", jwt_secret=DEVELOPMENT_JWT_SECRET,
                         caller_name="claims", transport=httpx.ASGITransport(app=app))  # fmt: skip


async def test_a_bad_gateway_passes_on_no_page_a_peer_answered_that_is_not_a_problem() -> None:
    """An HTML error page (a proxy's, a crash's) is the operators' to read, in the logs: the
    partner is told which peer answered what status, and nothing of the page."""
    page = b"<html><body><h1>500 Internal Server Error</h1>" + b"x" * 5000 + b"</body></html>"
    peer = _peer_saying(500, page, "text/html")
    with pytest.raises(Problem) as raised:
        await fetch_policy({"underwriting": peer}, "pol-1")
    await peer.aclose()
    body = raised.value.body()
    assert (body["status"], body["type"]) == (502, "upstream-error")
    assert "underwriting answered 500" in body["detail"]
    assert set(body) == {"type", "title", "status", "detail"}


async def test_a_bad_gateway_passes_on_the_peers_problem_in_short() -> None:
    """A peer's problem+json is passed on as a problem: its type, title, status and a short
    detail, nothing else it carried."""
    problem = {"type": "validation", "title": "Unprocessable Entity", "status": 422,
               "detail": "d" * 5000, "errors": [{"loc": ["body"], "msg": "x" * 5000}],
               "secret_thing": "y"}  # fmt: skip
    peer = _peer_saying(422, json.dumps(problem).encode(), "application/problem+json")
    with pytest.raises(Problem) as raised:
        await fetch_policy({"underwriting": peer}, "pol-1")
    await peer.aclose()
    body = raised.value.body()
    assert (body["status"], body["type"]) == (502, "upstream-error")
    assert "upstream_body" not in body
    passed = body["upstream_error"]
    assert set(passed) == {"type", "title", "status", "detail"}
    assert (passed["type"], passed["status"]) == ("validation", 422)
    assert len(passed["detail"]) <= 300 and passed["detail"].startswith("ddd")


class _CannedPeer:
    """A peer on a real socket answering each path its own way: with a length, chunked, or with
    a length and then closing the connection; it counts the connections it was opened."""

    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.decode().split("\r\n")
            path = lines[0].split(" ")[1]
            length = next((int(line.split(":")[1]) for line in lines
                           if line.lower().startswith("content-length:")), 0)  # fmt: skip
            self.bodies.append(await reader.readexactly(length))
            body = json.dumps({"path": path}).encode()
            if path == "/chunked":
                half = len(body) // 2
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"%x\r\n%s\r\n" % (half, body[:half])
                             + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - half, body[half:]))  # fmt: skip
            else:
                close = b"Connection: close\r\n" if path == "/close" else b""
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n%s\r\n%s"
                             % (len(body), close, body))  # fmt: skip
            await writer.drain()
            if path == "/close":
                writer.close()
                return


async def test_a_peer_is_called_over_connections_kept_open_while_it_keeps_them_alive() -> None:
    peer = _CannedPeer()
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ServiceClient(f"http://127.0.0.1:{port}", jwt_secret=DEVELOPMENT_JWT_SECRET,
                           caller_name="claims")  # fmt: skip
    try:
        answers = [await client.request("GET", "/length"),
                   await client.request("POST", "/length", json={"n": 1}),
                   await client.request("GET", "/chunked"),
                   await client.request("GET", "/close")]  # fmt: skip
        assert peer.connections == 1
        after_close = await client.request("GET", "/length?again=1")
        at_once = await asyncio.gather(*(client.request("GET", f"/length?n={n}") for n in range(3)))
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert [a.status_code for a in answers] == [201, 201, 200, 201]
    assert [a.json()["path"] for a in answers] == ["/length", "/length", "/chunked", "/close"]
    assert after_close.json() == {"path": "/length?again=1"}
    assert [a.json()["path"] for a in at_once] == [f"/length?n={n}" for n in range(3)]
    assert peer.bodies[1] == b'{"n":1}' and peer.bodies[0] == b""
    assert peer.connections == 4  # the closed one replaced, then two more for the calls at once


async def test_a_peer_that_is_not_listening_makes_the_caller_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nobody listens on it
    client = ServiceClient(f"http://127.0.0.1:{port}", jwt_secret=DEVELOPMENT_JWT_SECRET,
                           caller_name="claims", retries=1)  # fmt: skip
    with pytest.raises(Problem) as raised:
        await client.request("GET", "/v1/policies/pol-1")
    await client.aclose()
    assert (raised.value.status, raised.value.type) == (503, "service-unavailable")
