"""Fault injection and request logging, as one pure ASGI middleware in front of every provider router.

Per provider request, in this order: added latency (``asyncio.sleep``, the event loop keeps serving);
a ``rate_limit_burst`` 429; the provider's requests-per-minute limiter (429); ``error_rate`` 500 (never on
the provider's auth endpoint, so clients can always log in; ``error_on_create=False`` spares creates too);
``reject_auth``: the auth endpoint answers 401 to every grant; ``create_error_burst``: the next N creates get
a 500 and are not run; ``rules`` (:class:`~gpucloud.emulator.world.FaultRule`): chosen requests by method, path
and count get a 500 or 429, before the ``error_rate`` dice; ``drop_create_rate`` on create calls: the
handler runs and commits, then only the response head goes out and the connection is closed, so the
client sees a transport error (``httpx.RemoteProtocolError``, ``requests.ChunkedEncodingError``) and
never learns the new id. Injected errors use the provider's own error body. Control-API requests
(``/_emulator/...``) are neither faulted nor logged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpucloud.emulator.base import ProviderSpec
from gpucloud.emulator.world import FaultDecision, RequestRecord, World

CONTROL_PREFIX = "/_emulator"
# Carries EmulatorSettings.control_token on every control API call but /_emulator/health.
CONTROL_TOKEN_HEADER = "X-Emulator-Token"


class _Entry:
    """The log entry of one request. It is written just before the last byte of the response goes out,
    so a client that has its answer can rely on finding the request in ``world.requests``."""

    def __init__(self, world: World, spec: ProviderSpec | None, scope: Scope) -> None:
        self.world, self.spec, self.scope = world, spec, scope
        self.started, self.t0 = time.time(), time.monotonic()
        self.status = 500  # stays if the app raised before answering
        self.fault: str | None = None
        self._written = False

    def write(self) -> None:
        if self._written:
            return
        self._written = True
        path, spec = self.scope["path"], self.spec
        self.world.record_request(
            RequestRecord(
                provider=spec.name if spec else None,
                method=self.scope["method"],
                path=spec.relative(path) if spec else path,
                full_path=path,
                status=self.status,
                time=self.started,
                was_fault=self.fault is not None,
                fault=self.fault,
                duration_ms=round((time.monotonic() - self.t0) * 1000, 3),
            )
        )


class FaultMiddleware:
    def __init__(self, app: ASGIApp, world: World, providers: Sequence[ProviderSpec]) -> None:
        self.app = app
        self.world = world
        self.providers = tuple(providers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        spec = next((p for p in self.providers if p.owns(path)), None)
        entry = _Entry(self.world, spec, scope)
        try:
            if spec is None:
                await self._forward(scope, receive, send, entry)
            else:
                await self._provider_request(spec, scope, receive, send, entry)
        finally:
            entry.write()

    async def _provider_request(
        self, spec: ProviderSpec, scope: Scope, receive: Receive, send: Send, entry: _Entry
    ) -> None:
        method, rel = scope["method"], spec.relative(scope["path"])
        decision = self.world.decide_fault(
            spec.name,
            is_auth=spec.is_auth_request(method, rel),
            is_create=spec.is_create_request(method, rel),
            method=method,
            path=rel,
        )
        if decision.latency_s > 0:
            await asyncio.sleep(decision.latency_s)
        if decision.reject is not None:
            entry.fault = decision.reject
            await _reject(spec, decision, send, entry)
        elif decision.drop:
            await self._drop_if_committed(scope, receive, send, entry)
        else:
            await self._forward(scope, receive, send, entry)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, entry: _Entry) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                entry.write()
            await send(message)

        await self.app(scope, receive, watch)

    async def _drop_if_committed(self, scope: Scope, receive: Receive, send: Send, entry: _Entry) -> None:
        """Run the handler; on success send only the response head and return without the body.

        uvicorn then closes the connection ("returned without completing response"): the request took
        effect but the client gets a protocol error instead of the answer. Failures pass through untouched.
        """
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start = next(m for m in held if m["type"] == "http.response.start")
        entry.status = int(start["status"])
        if 200 <= entry.status < 300:
            entry.fault = "drop"
            entry.write()
            await send(start)
            return
        entry.write()
        for message in held:
            await send(message)


async def _reject(spec: ProviderSpec, decision: FaultDecision, send: Send, entry: _Entry) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if decision.reject == "error":
        status = 500
        body = spec.error_body(500, "Internal server error", "server_error")
    elif decision.reject == "auth":
        status = 401
        body = spec.error_body(401, "Invalid client credentials", "unauthorized_request")
    else:
        status, headers = 429, [(b"retry-after", str(decision.retry_after).encode())]
        body = spec.error_body(429, f"Too many requests, retry after {decision.retry_after} s", "too_many_requests")
    payload = json.dumps(body).encode()
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    entry.status = status
    entry.write()
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
