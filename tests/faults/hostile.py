"""A tiny HTTP server on 127.0.0.1 that answers however a test scripts it: slowly, hugely, or with lies.

The emulator injects the faults a real provider has on a bad day; this one plays a server that is hostile or
broken (one byte a second, a Retry-After of years, endless bodies, credentials echoed back). Each connection
carries one request; the script gets the request and the socket's writer and sends raw bytes.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Script = Callable[[Request, "Replier"], None]


@dataclass
class Replier:
    """Writes one answer on the connection; every helper stops quietly when the client has hung up."""

    out: BinaryIO
    stopping: threading.Event

    def raw(self, data: bytes) -> bool:
        try:
            self.out.write(data)
            self.out.flush()
        except OSError:
            return False
        return True

    def json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.raw(
            head(status, {"Content-Type": "application/json", "Content-Length": str(len(payload)), **(headers or {})})
            + payload
        )

    def trickle(self, data: bytes, every: float = 1.0) -> None:
        """``data`` one byte at a time, ``every`` seconds apart, until sent, the client leaves or the server stops."""
        for byte in data:
            if self.stopping.wait(every) or not self.raw(bytes([byte])):
                return

    def endless(self, chunk: bytes) -> int:
        """``chunk`` again and again, as fast as the client reads, until it stops reading; returns bytes sent."""
        sent = 0
        while not self.stopping.is_set() and self.raw(chunk):
            sent += len(chunk)
        return sent


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Scripted", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class HostileServer:
    script: Script
    requests: list[Request] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileServer:
        hostile = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = _read_request(self.rfile)
                if request is None:
                    return
                hostile.requests.append(request)
                hostile.script(request, Replier(self.wfile, hostile.stopping))

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def _read_request(rfile: BinaryIO) -> Request | None:
    line = rfile.readline(65536).decode("latin-1").strip()
    if not line:
        return None
    method, target, _ = line.split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = rfile.readline(65536).decode("latin-1").strip()
        if not header:
            break
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = rfile.read(int(headers.get("content-length", "0") or 0))
    return Request(method, target, headers, body)


def finishes_within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``'s result or the exception it raised, from a thread; AssertionError if it is still busy after
    ``seconds`` (a generous bound: the hostile server's "forever" is hours, the bound is minutes)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except Exception as exc:  # handed to the test to check
            outcome.append(exc)

    worker = threading.Thread(target=run, name="hostile-client", daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still busy after {seconds} s"
    return outcome[0]
