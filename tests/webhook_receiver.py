"""A webhook receiver for the tests and the benchmark: a small HTTP server, run as its own process on
loopback, that verifies each message's Standard Webhooks signature with the `standardwebhooks`
package and records what it accepted, so that a test reads what arrived.

    python -m tests.webhook_receiver --port 9100 --dir /tmp/receiver

Its directory holds:
- `endpoints.json` (written by the test, read again whenever it changes): per URL path the
  endpoint's `secret` and how to answer: `status` (default 204), `fail_first` (answer the first N
  messages `fail_status`, default 503), `fail_every` (answer every Nth so), `body` (the text of
  every answer, default none), and whom to stop when: once the `kill_after`-th message it
  accepts on the path from then on is recorded, the one of the processes `kill_pids` that sent
  it (found by its connection, Linux) is sent `kill_signal` (default SIGKILL), before the
  message is answered or `kill_delay_ms` later (a dispatcher stopped at a chosen point of its
  posting);
- `received.log`: one line per message accepted (signature valid, answered 2xx), written and
  handed to the kernel before the answer is sent: path, `webhook-id`, type, arrival (ns since the
  epoch), tab-separated; a message whose answer was lost shows up twice (a duplicate on the wire);
- `rejected.log`: one line per message refused: path, `webhook-id`, why (`bad signature`,
  `unknown path`, `configured failure`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Received:
    path: str
    webhook_id: str
    type: str
    arrived_ns: int


def configure(directory: Path, path: str, secret: str, **answers: int | str) -> None:
    """Tell the receiver (running or not) the secret of the endpoint at `path` and how to answer
    it; the file is replaced at once (written aside, then renamed)."""
    file = directory / "endpoints.json"
    endpoints = json.loads(file.read_text()) if file.exists() else {}
    endpoints[path] = {"secret": secret, **answers}
    aside = directory / f"endpoints.json.{os.getpid()}.{threading.get_ident()}"
    aside.write_text(json.dumps(endpoints))
    aside.replace(file)


def kill_on(
    directory: Path, path: str, pids: Sequence[int], *, after: int,
    how: int = signal.SIGKILL, delay_ms: int = 0,
) -> None:  # fmt: skip
    """Have the receiver send `how` to the one of `pids` that posts the `after`-th message it
    accepts on `path` from now on, once that message is recorded (`delay_ms` later, else before
    it is answered)."""
    endpoint = dict(json.loads((directory / "endpoints.json").read_text())[path])
    endpoint.update(kill_pids=list(pids), kill_after=after, kill_signal=how,
                    kill_delay_ms=delay_ms)  # fmt: skip
    configure(directory, path, **endpoint)


def sender(port: int, pids: Sequence[int]) -> int | None:
    """Which of `pids` holds the loopback TCP connection whose own port is `port` (read from
    /proc: Linux only)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        return pid
    return None


def received(directory: Path) -> list[Received]:
    """Every message accepted so far, in arrival order (complete lines only)."""
    file = directory / "received.log"
    if not file.exists():
        return []
    lines = file.read_text().split("\n")[:-1]
    return [Received(p, i, t, int(ns)) for p, i, t, ns in (line.split("\t") for line in lines)]


def rejected(directory: Path) -> list[list[str]]:
    file = directory / "rejected.log"
    if not file.exists():
        return []
    return [line.split("\t") for line in file.read_text().split("\n")[:-1]]


def start(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """Run the receiver as a process of its own and wait until it accepts connections."""
    directory.mkdir(parents=True, exist_ok=True)
    log = open(directory / "receiver.out", "ab")  # noqa: SIM115 - the process keeps it
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.webhook_receiver", "--port", str(port), "--dir",
         str(directory)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the webhook receiver did not start: {(directory / 'receiver.out')}")


class _Endpoints:
    """`endpoints.json`, read again when its modification time changes."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.stamp: int | None = None
        self.known: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def get(self, path: str) -> dict[str, Any] | None:
        with self.lock:
            try:
                stamp = self.file.stat().st_mtime_ns
            except FileNotFoundError:
                return None
            if stamp != self.stamp or path not in self.known:
                self.known = json.loads(self.file.read_text())
                self.stamp = stamp
            return self.known.get(path)


class Receiver:
    def __init__(self, directory: Path) -> None:
        self.endpoints = _Endpoints(directory / "endpoints.json")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self.accepted = os.open(directory / "received.log", flags, 0o644)
        self.refused = os.open(directory / "rejected.log", flags, 0o644)
        self.counts: Counter[str] = Counter()
        self.kill_counts: Counter[tuple[str, str]] = Counter()  # messages since a kill was set
        self.lock = threading.Lock()

    def body(self, path: str) -> bytes:
        endpoint = self.endpoints.get(path) or {}
        return str(endpoint.get("body", "")).encode()

    def answer(self, path: str, headers: dict[str, str], body: bytes, port: int = 0) -> int:
        """The status to answer one message (sent from `port`) with, recording it first."""
        ident = headers.get("webhook-id", "")
        endpoint = self.endpoints.get(path)
        if endpoint is None:
            return self._refuse(path, ident, "unknown path", 404)
        try:
            message = Webhook(endpoint["secret"]).verify(body, headers)
        except (WebhookVerificationError, ValueError) as exc:
            return self._refuse(path, ident, f"bad signature: {exc}", 401)
        if message.get("id") != ident:
            return self._refuse(path, ident, "bad signature: the body's id is not webhook-id", 400)
        with self.lock:
            self.counts[path] += 1
            n = self.counts[path]
        every = endpoint.get("fail_every", 0)
        if n <= endpoint.get("fail_first", 0) or (every and n % every == 0):
            return self._refuse(path, ident, "configured failure", endpoint.get("fail_status", 503))
        status = int(endpoint.get("status", 204))
        if 200 <= status < 300:
            line = f"{path}\t{ident}\t{message.get('type', '')}\t{time.time_ns()}\n"
            os.write(self.accepted, line.encode())
            self._kill(path, endpoint, port)
        else:
            self._refuse(path, ident, f"configured status {status}", status)
        return status

    def _kill(self, path: str, endpoint: dict[str, Any], port: int) -> None:
        """Stop the process that sent the endpoint's `kill_after`-th message, once recorded."""
        pids = endpoint.get("kill_pids")
        if not pids:
            return
        with self.lock:
            self.kill_counts[path, str(pids)] += 1
            if self.kill_counts[path, str(pids)] != endpoint.get("kill_after", 1):
                return
        pid = sender(port, pids) or pids[0]
        how = signal.Signals(endpoint.get("kill_signal", signal.SIGKILL))

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, how)

        delay = endpoint.get("kill_delay_ms", 0) / 1000
        if delay:
            threading.Timer(delay, kill).start()
        else:
            kill()

    def record_incomplete(self, path: str, ident: str) -> None:
        """A message cut off before its end: nothing to verify, nothing answered."""
        self._refuse(path, ident, "incomplete body (the sender stopped mid-message)", 0)

    def _refuse(self, path: str, ident: str, why: str, status: int) -> int:
        os.write(self.refused, f"{path}\t{ident}\t{why}\n".encode())
        return status


def serve(port: int, directory: Path) -> None:
    receiver = Receiver(directory)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the dispatcher reuses its connection

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if len(body) < length:  # the sender died mid-message (a killed dispatcher)
                receiver.record_incomplete(self.path, headers.get("webhook-id", ""))
                self.close_connection = True
                return
            status = receiver.answer(self.path, headers, body, self.client_address[1])
            answer = receiver.body(self.path)
            self.send_response(status)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    serve(args.port, args.dir)


if __name__ == "__main__":
    main()
