"""A hostile server for the malformed-answer probes: a real HTTP proxy on loopback in front of the emulator that
forwards every request and, for the rules a test sets, swaps a success answer's body for a malformed one.

The status stays 2xx, so the client's error mapping never sees a failure: only reading the body can tell.
Each mutation derives its body from the real one, so "missing key" and "wrong type" hit exactly the keys
the real answer has (the collection of a list, the id of a resource).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"})


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()  # text answers (DataCrunch's bare ids) as a string


def _swapped(value: Any) -> Any:
    """An object where a list belongs and the other way round."""
    return [value] if not isinstance(value, list) else {"items": value}


def _retyped(value: Any) -> Any:
    """Every leaf of the wrong JSON type: strings become lists, numbers objects, booleans strings."""
    if isinstance(value, dict):
        return {key: _retyped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_retyped(item) for item in value] or ["x"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return {"n": value}
    return value


def _without_keys(value: Any) -> Any:
    """A resource's essential keys removed (also when it is wrapped); else the collection of a list answer."""
    if not isinstance(value, dict):
        return {}
    if _ESSENTIAL & value.keys():
        return {key: item for key, item in value.items() if key not in _ESSENTIAL}
    if any(isinstance(item, list) for item in value.values()):
        return {key: item for key, item in value.items() if not isinstance(item, list)}
    return {key: _without_keys(item) if isinstance(item, dict) else item for key, item in value.items()}


def _nulled(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _nulled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nulled(item) for item in value] or [None]
    return None


# Keys without which a resource (or a token grant) is not one.
_ESSENTIAL = frozenset(
    {"id", "vm_id", "job_id", "resource_id", "code", "image_type", "instance_type", "location_code", "access_token"}
)


def _as_json(transform: Callable[[Any], Any]) -> Callable[[bytes], tuple[bytes, str]]:
    return lambda body: (json.dumps(transform(_json(body))).encode(), "application/json")


# name -> real body -> (malformed body, content type). Eleven shapes, each one the hostile server served.
MUTATIONS: dict[str, Callable[[bytes], tuple[bytes, str]]] = {
    "html": lambda body: (b"<html><body><h1>Welcome to the captive portal</h1></body></html>", "text/html"),
    "empty": lambda body: (b"", "application/json"),
    "truncated": lambda body: (body[: max(1, len(body) // 2)] if len(body) > 2 else b'{"', "application/json"),
    "null": lambda body: (b"null", "application/json"),
    "number": lambda body: (b"42", "application/json"),
    "string": lambda body: (b'"ok"', "application/json"),
    "empty_object": lambda body: (b"{}", "application/json"),
    "swapped": _as_json(_swapped),
    "retyped": _as_json(_retyped),
    "missing_keys": _as_json(_without_keys),
    "nulled": _as_json(_nulled),
}


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    mutation: str
    times: int | None = None  # None: every matching answer

    def take(self, method: str, path: str) -> bool:
        if method != self.method or not self.path.search(path) or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        return True


class HostileProxy:
    """Forwards to ``upstream``; answers matching a rule get a malformed body (status and headers kept)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.corrupted: list[tuple[str, str, str]] = []  # (method, path, mutation) of every answer swapped
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def rebase(self, base_url: str) -> str:
        """The URL of ``base_url`` (an emulator URL) through this proxy."""
        return self.url + base_url[len(self.upstream) :]

    def __enter__(self) -> HostileProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    @contextmanager
    def corrupting(self, method: str, path: str, mutation: str, times: int | None = None) -> Iterator[Rule]:
        """Swap matching answers (``path`` is a regex searched in the request path) while the block runs."""
        rule = Rule(method, re.compile(path), mutation, times)
        with self._lock:
            self.rules.append(rule)
        try:
            yield rule
        finally:
            with self._lock:
                self.rules.remove(rule)

    def _mutation_for(self, method: str, path: str) -> str | None:
        with self._lock:
            return next((rule.mutation for rule in self.rules if rule.take(method, path)), None)

    def _forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS and k.lower() != "host"}
        answer = self._client.request(method, self.upstream + target, headers=sent, content=body)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
        content = answer.content
        path = target.split("?", 1)[0]
        mutation = self._mutation_for(method, path) if answer.is_success else None
        if mutation is not None:
            content, kept["content-type"] = MUTATIONS[mutation](content)
            with self._lock:
                self.corrupted.append((method, path, mutation))
        return answer.status_code, kept, content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, content = proxy._forward(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                self.send_header("content-type", headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
