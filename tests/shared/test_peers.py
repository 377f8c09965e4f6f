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
