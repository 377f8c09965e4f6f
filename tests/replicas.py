"""The replica tier's parts: a round-robin TCP proxy per service in front of two service processes
each, on one PostgreSQL database; replicas killed with SIGKILL mid-request and started again; and a
partner's client that retries a request with the same Idempotency-Key when it gets no answer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import SERVICES, Running, backend, free_urls, start_services

CHUNK = 64 * 1024


class RoundRobinProxy:
    """A TCP forwarder on a loopback port: each connection it accepts goes to the next backend in
    turn, and a backend that refuses the connection (a dead replica) is skipped. It knows nothing
    of HTTP: bytes pass through unchanged, and a backend that dies cuts its clients' connections,
    as a load balancer's would be. It runs on an event loop of its own, in a thread, so that sync
    and async tests alike talk to it.

    It counts the connections each backend served and which connections are *busy*: a request's
    first bytes forwarded and no answer's first bytes back yet, so that a test can kill a replica
    while it holds a request. With `latency` (seconds) each chunk is passed on that much later, in
    order, each way: a backend on another host (a database a few ms away)."""

    def __init__(
        self, name: str, backends: Sequence[tuple[str, int]], *, latency: float = 0.0
    ) -> None:
        self.name = name
        self.backends = list(backends)
        self.latency = latency
        self.served: Counter[int] = Counter()
        self.skipped = 0  # connections a refusing backend passed on to the next
        self._busy: Counter[int] = Counter()
        self._losing: Future[int] | None = None
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{name}",
                                        daemon=True)  # fmt: skip
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RoundRobinProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result()
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for link in list(self._links):
                link.cancel()
            await asyncio.gather(*self._links, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def lose_next_answer(self) -> Future[int]:
        """Arm the proxy: the next answer a backend begins to send is not passed on, and its
        client's connection is cut instead (as if the replica died after committing, before its
        answer got out). The future gives that backend."""
        self._losing = Future()
        return self._losing

    def busy_backend(self) -> int | None:
        """A backend holding a request it has not begun to answer, if any."""
        return next((index for index, n in list(self._busy.items()) if n > 0), None)

    async def _accept(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:  # fmt: skip
        link = asyncio.current_task()
        assert link is not None
        self._links.add(link)
        try:
            first = next(self._turn)
            for step in range(len(self.backends)):
                index = (first + step) % len(self.backends)
                host, port = self.backends[index]
                try:
                    backend_reader, backend_writer = await asyncio.open_connection(host, port)
                except OSError:
                    self.skipped += 1
                    continue
                self.served[index] += 1
                await self._relay(index, client_reader, client_writer, backend_reader,
                                  backend_writer)  # fmt: skip
                return
        finally:
            client_writer.close()
            self._links.discard(link)

    async def _relay(self, index: int, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter, backend_reader: asyncio.StreamReader,
                     backend_writer: asyncio.StreamWriter) -> None:  # fmt: skip
        """Pass bytes both ways until either side closes; then close both (HTTP needs no
        half-open connection)."""
        waiting = False  # a request forwarded whose answer has not begun

        def mark(now: bool) -> None:
            nonlocal waiting
            if now != waiting:
                self._busy[index] += 1 if now else -1
                waiting = now

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                       upstream: bool) -> None:  # fmt: skip
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while chunk := await source.read(CHUNK):
                    losing = self._losing
                    if not upstream and waiting and losing is not None and not losing.done():
                        losing.set_result(index)
                        client_writer.transport.abort()
                        return
                    mark(upstream)
                    if self.latency:
                        await asyncio.sleep(self.latency)
                    sink.write(chunk)
                    await sink.drain()

        up = asyncio.ensure_future(pipe(client_reader, backend_writer, True))
        down = asyncio.ensure_future(pipe(backend_reader, client_writer, False))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            mark(False)
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            backend_writer.close()


# ---------------------------------------------------------------- two replicas per service


@dataclass
class Replica:
    service: str
    index: int
    url: str
    running: Running | None = None

    @property
    def alive(self) -> bool:
        return (
            self.running is not None
            and bool(self.running.processes)
            and all(p.poll() is None for _, _, p in self.running.processes)
        )


@dataclass
class Replicas:
    """Two processes per service on one database, each service behind its proxy; every service
    reaches the others through their proxies, so that cross-service calls cross replicas too."""

    database: str
    env: dict[str, str]
    proxies: dict[str, RoundRobinProxy]
    replicas: dict[str, list[Replica]]
    engine: Engine
    kills: list[str] = field(default_factory=list)

    @property
    def urls(self) -> dict[str, str]:
        """Where a partner reaches each service: its proxy."""
        return {service: proxy.url for service, proxy in self.proxies.items()}

    def start(self, replica: Replica) -> None:
        """Start one replica on its port (again, after a kill) and wait until it is ready."""
        urls = {**self.urls, replica.service: replica.url}
        if replica.running is None:  # one log per replica, kept across its restarts
            logs = Path(tempfile.mkdtemp(prefix=f"tci-{replica.service}-{replica.index}-"))
            replica.running = Running([], logs)
        start_services(self.database, urls, only=[replica.service], env=self.env,
                       running=replica.running)  # fmt: skip

    def kill(self, replica: Replica, how: str = "") -> None:
        """SIGKILL: no shutdown, no answer to what it was serving, its transactions left to die
        with their connections."""
        assert replica.running is not None
        for _, log, process in replica.running.processes:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            log.close()
        replica.running.processes = []
        self.kills.append(f"{replica.service}[{replica.index}]{how}")

    def kill_mid_request(self, service: str, seconds: float = 10.0) -> Replica:
        """Kill the replica of `service` that holds a request it has not answered yet, as soon as
        one does (or the first replica after `seconds`, so that a test never hangs here)."""
        proxy = self.proxies[service]
        deadline = time.monotonic() + seconds
        index = proxy.busy_backend()
        while index is None and time.monotonic() < deadline:
            time.sleep(0.0005)
            index = proxy.busy_backend()
        victim = self.replicas[service][index or 0]
        self.kill(victim, " mid-request" if index is not None else " (no request seen)")
        return victim

    def kill_after_commit(self, service: str, seconds: float = 10.0) -> Replica:
        """Lose the next answer a replica of `service` begins to send (its request done and
        committed) and SIGKILL that replica: its client must retry to learn what happened."""
        index = self.proxies[service].lose_next_answer().result(timeout=seconds)
        victim = self.replicas[service][index]
        self.kill(victim, " after its commit, its answer lost")
        return victim

    def kill_while_calling(self, service: str, peer: str, seconds: float = 10.0) -> Replica:
        """SIGKILL the replica of `service` holding an unanswered request while a call to `peer`
        is unanswered too: a replica that dies half-way through its work with `peer` (an outbox
        message sent after its commit, its lease held, its mark never written)."""
        deadline = time.monotonic() + seconds
        index = None
        while index is None and time.monotonic() < deadline:
            time.sleep(0.0005)
            if self.proxies[peer].busy_backend() is not None:
                index = self.proxies[service].busy_backend()
        victim = self.replicas[service][index or 0]
        how = f" mid-call to {peer}" if index is not None else " (no call seen)"
        self.kill(victim, how)
        return victim

    def heal(self) -> None:
        """Start again every replica that is down, side by side."""
        dead = [r for group in self.replicas.values() for r in group if not r.alive]
        with ThreadPoolExecutor(max(1, len(dead))) as pool:
            list(pool.map(self.start, dead))

    def count(self, sql: str, **params: Any) -> int:
        """A number read from the database, as the replicas committed it."""
        with self.engine.connect() as connection:
            return int(connection.execute(text(sql), params).scalar_one())

    def execute(self, sql: str, **params: Any) -> None:
        """Change the database behind the services' backs (to age what a test needs aged)."""
        with self.engine.begin() as connection:
            connection.execute(text(sql), params)

    def stop(self) -> None:
        for group in self.replicas.values():
            for replica in group:
                if replica.running is not None:
                    replica.running.stop()
        for proxy in self.proxies.values():
            proxy.stop()
        self.engine.dispose()


@contextlib.contextmanager
def two_replicas_each(database: str, env: dict[str, str]) -> Iterator[Replicas]:
    """Six processes (two per service) on `database` (migrated), behind three proxies."""
    ports = {s: [free_urls()[s] for _ in range(2)] for s in SERVICES}
    proxies = {
        s: RoundRobinProxy(s, [("127.0.0.1", int(u.rsplit(":", 1)[1])) for u in ports[s]]).start()
        for s in SERVICES
    }
    url = make_url(backend().url_for(database, "claims")).set(drivername="postgresql+psycopg")
    group = Replicas(
        database=database, env=env, proxies=proxies,
        replicas={s: [Replica(s, i, u) for i, u in enumerate(ports[s])] for s in SERVICES},
        engine=create_engine(url),
    )  # fmt: skip
    try:
        # In two waves, one replica of each service at a time: six interpreters importing the
        # services at once on a small, busy machine may not all be ready within start_services'
        # deadline.
        with ThreadPoolExecutor(len(SERVICES)) as pool:
            list(pool.map(group.start, [group.replicas[s][0] for s in SERVICES]))
        group.heal()
        yield group
    finally:
        group.stop()


# ---------------------------------------------------------------- a partner that retries


@dataclass
class Retrying:
    """What a partner does when a request goes unanswered: the same request again, with the same
    Idempotency-Key (api.md: a replay answers the first response; a twin still running is 409
    `idempotency-key-in-use`, to be retried later; 503 `service-unavailable` asks for a retry)."""

    retried: Counter[str] = field(default_factory=Counter)

    def should_retry(self, response: httpx.Response) -> bool:
        if response.status_code == 503:
            self.retried["503"] += 1
            return True
        if response.status_code == 409 and "idempotency-key-in-use" in response.text:
            self.retried["key in use"] += 1
            return True
        return False

    async def send(self, client: httpx.AsyncClient, method: str, path: str, *,
                   key: str, seconds: float = 30.0, **kwargs: Any) -> httpx.Response:  # fmt: skip
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key}
        deadline = time.monotonic() + seconds
        while True:
            try:
                response = await client.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError:
                self.retried["no answer"] += 1
                if time.monotonic() > deadline:
                    raise
            else:
                if not self.should_retry(response) or time.monotonic() > deadline:
                    return response
            await asyncio.sleep(0.05)
