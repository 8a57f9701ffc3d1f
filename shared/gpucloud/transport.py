"""One httpx client per provider: auth, timeouts, pacing, retries with full-jitter backoff, redacted logs.

Retry rules:
- connect failures are always retried: the request never reached the server;
- 429 (and any error the adapter maps to :class:`RateLimited`) is retried after ``Retry-After``;
- 5xx mapped to :class:`ProviderError` is retried for idempotent requests only; a 503 the adapter maps to
  :class:`NoCapacity` is final;
- a non-idempotent request whose response was lost raises :class:`ResponseLost`; that and a 5xx to a create
  (see :func:`is_server_failure`) leave open whether the server acted, so the adapter looks the resource up
  and adopts it instead of creating a second one;
- every attempt ends within ``timeout`` seconds of wall-clock time, however slowly the server sends (see
  :mod:`gpucloud.httpbounds`), and reads at most ``max_response_bytes``;
- no pause runs past ``retry_max_seconds``: a ``Retry-After`` longer than what is left of it ends the retrying;
- inside :meth:`Transport.deadline` no retry pause and no attempt runs past the deadline, so an operation
  with a ``wait_timeout`` never spends longer than that retrying;
- every configured secret (and every token the auth flow obtained) is replaced by ``[REDACTED]`` in response
  bodies and in error messages, so a server that echoes a credential cannot put it into a result or a log.

Per-operation state (the deadline and what the operation's last failed attempt met) lives in context
variables, never on the transport: one transport serves operations on several threads at once (Pulumi runs
independent steps in parallel in one provider process; fleets and page fetches use worker threads).
"""

from __future__ import annotations

import contextlib
import contextvars
import json as jsonlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import tenacity

from gpucloud import errors, httpbounds
from gpucloud.httputil import request_id_of
from gpucloud.ratelimit import TokenBucket

log = logging.getLogger("gpucloud.transport")

ErrorMapper = Callable[[httpx.Response], errors.GpuCloudError]
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
REDACTED = "[REDACTED]"
# Shorter values are not redacted: replacing every "ab" in a body would corrupt it, and protect nothing.
MIN_SECRET_LENGTH = 4
# Headers that describe the body as sent; the body handed on is decoded and possibly redacted.
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class ResponseLost(errors.ProviderError):
    """A non-idempotent request may have been applied, but its answer never arrived."""


def is_server_failure(exc: BaseException) -> bool:
    """A plain 5xx answer: the server failed, and may or may not have applied the request first."""
    return type(exc) is errors.ProviderError and exc.status_code is not None and exc.status_code >= 500


def is_transient(exc: BaseException) -> bool:
    """A failure the same request may not hit again: rate limits, 5xx, requests lost or never delivered."""
    if isinstance(exc, errors.RateLimited | ResponseLost | DeadlineReached):
        return True
    return type(exc) is errors.ProviderError and (exc.status_code is None or exc.status_code >= 500)


class DeadlineReached(errors.Timeout):
    """A request was not sent because the operation's time limit (see :meth:`Transport.deadline`) is used up."""


class _Retryable(Exception):
    """Internal: wraps an error that the retry loop may try again."""

    def __init__(self, error: errors.GpuCloudError | httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop retrying when the next pause would end at or after the operation's deadline."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        left = self.transport.time_left()
        return left is not None and retry_state.upcoming_sleep >= left


class _StopBeforeBudget(tenacity.stop.stop_base):
    """Stop retrying when the next pause would end after ``seconds`` from the first attempt: a ``Retry-After``
    of days is not waited out, whatever the server asks."""

    def __init__(self, transport: Transport, seconds: float) -> None:
        self.transport = transport
        self.seconds = seconds
        self.started = transport.clock()

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.transport.clock() - self.started + retry_state.upcoming_sleep > self.seconds


@dataclass
class _Operation:
    """One operation's time limit (on the transport's clock) and what its last failed attempt met."""

    ends_at: float
    last_failure: str | None = None


class Transport:
    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        map_error: ErrorMapper,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        retry_max_seconds: float = 120.0,
        requests_per_minute: float | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        http_transport: httpx.BaseTransport | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.provider = provider
        self._map_error = map_error
        self._max_retries = max_retries
        self._retry_max_seconds = retry_max_seconds
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_response_bytes = max_response_bytes
        self._auth = auth
        self._secrets = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        self.limiter = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.request_count = 0
        self._timeout = timeout
        # The operation running in this context (see deadline()); one variable per transport, so an operation's
        # limit never leaks onto another provider's requests.
        self._operation: contextvars.ContextVar[_Operation | None] = contextvars.ContextVar(
            f"gpucloud_operation_{provider}", default=None
        )
        # The pause between retries and the clock deadlines are measured on (replaceable in tests).
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            auth=auth,
            headers={"User-Agent": "gpucloud", "Accept": "application/json", **(headers or {})},
            timeout=timeout,
            transport=http_transport or httpbounds.BoundedHTTPTransport(),
            # A transport given by the caller (tests) is used for everything, as httpx does with one.
            mounts=None if http_transport else httpbounds.proxy_mounts(),
        )

    def close(self) -> None:
        self._client.close()

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Bound every request made in the block by this context (and by worker threads started with a copy of
        it): retries stop before a pause would end past ``seconds`` from now, and no attempt runs longer than
        the time left. Nested deadlines keep the earlier one. Other threads' operations are not affected."""
        outer = self._operation.get()
        ends_at = self.clock() + seconds
        if outer is not None:
            ends_at = min(ends_at, outer.ends_at)
        operation = _Operation(ends_at, outer.last_failure if outer else None)
        token = self._operation.set(operation)
        try:
            yield
        finally:
            self._operation.reset(token)
            if outer is not None:
                outer.last_failure = operation.last_failure

    def time_left(self) -> float | None:
        operation = self._operation.get()
        return None if operation is None else operation.ends_at - self.clock()

    @property
    def last_failure(self) -> str | None:
        """What the running operation's last failed attempt met, for messages after its deadline."""
        operation = self._operation.get()
        return None if operation is None else operation.last_failure

    def _failed(self, what: str | None) -> None:
        operation = self._operation.get()
        if operation is not None:
            operation.last_failure = what

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        error = exc.error if isinstance(exc, _Retryable) else None
        backoff = random.uniform(0, min(self._backoff_cap, self._backoff_base * 2 ** (state.attempt_number - 1)))
        if isinstance(error, errors.RateLimited) and error.retry_after is not None:
            return error.retry_after + backoff * 0.1
        return backoff

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one logical request, retrying what is safe to retry; raise a mapped error on failure."""
        try:
            return self._request(method.upper(), path, json, params, idempotent, timeout)
        except errors.GpuCloudError as exc:
            self._redact_error(exc)
            raise

    def _request(
        self,
        method: str,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        idempotent: bool | None,
        timeout: float | None,
    ) -> httpx.Response:
        safe_to_resend = method in _IDEMPOTENT_METHODS if idempotent is None else idempotent
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self._max_retries + 1),
                _StopBeforeBudget(self, self._retry_max_seconds),
                _StopAtDeadline(self),
            ),
            wait=self._wait,
            sleep=lambda seconds: self.sleep(seconds),
            retry=tenacity.retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, path, json, params, safe_to_resend, timeout)
        except _Retryable as exc:
            if isinstance(exc.error, httpx.TransportError):
                raise self._transport_error(exc.error, method, path) from exc.error
            raise exc.error from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _attempt_seconds(self, method: str, path: str, timeout: float | None) -> tuple[float, bool]:
        """How long the next attempt may take (the request timeout, cut to what the operation has left), and
        whether the operation's limit is what cut it."""
        seconds = timeout or self._timeout
        left = self.time_left()
        if left is None:
            return seconds, False
        if left <= 0:
            last = self.last_failure
            raise DeadlineReached(
                f"{self.provider}: {method} {path} not sent: the operation's time limit is used up"
                + (f" (the last attempt failed: {last})" if last else ""),
                provider=self.provider,
            )
        return min(seconds, max(left, 0.1)), left < seconds

    def _attempt(
        self,
        method: str,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        safe_to_resend: bool,
        timeout: float | None,
    ) -> httpx.Response:
        if self.limiter and self.limiter.acquire(within=self.time_left()) is None:
            last = self.last_failure  # the API's own failure explains the wait better than the pacing does
            raise DeadlineReached(
                f"{self.provider}: {method} {path} not sent: pacing under the provider's request limit would take "
                "longer than the operation has left" + (f" (the last attempt failed: {last})" if last else ""),
                provider=self.provider,
            )
        self.request_count += 1
        started = time.monotonic()
        seconds, cut = self._attempt_seconds(method, path, timeout)
        bounds = httpbounds.CURRENT.set(httpbounds.Attempt(started + seconds, self._max_response_bytes))
        try:
            response = self._exchange(method, path, json, params, seconds)
        except httpbounds.ResponseTooLarge as exc:
            self._failed("the response was too large")
            raise errors.ProviderError(
                f"{self.provider}: {method} {path}: {exc.source or 'the response'} is larger than {exc.limit} bytes; "
                "gpucloud refuses to read it (a misbehaving server or a wrong api_url?)",
                provider=self.provider,
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._failed(f"{type(exc).__name__} connecting to the API")
            log.debug("%s %s %s: connect failed: %s", self.provider, method, path, type(exc).__name__)
            raise _Retryable(exc) from exc
        except errors.GpuCloudError as auth_failure:
            # Raised by the auth flow (the token endpoint answered 429 or 5xx) before the API acted on anything.
            if self._retryable(auth_failure, safe_to_resend=True, status_code=auth_failure.status_code):
                raise _Retryable(auth_failure) from auth_failure
            raise
        except httpx.TransportError as exc:
            if cut and safe_to_resend and isinstance(exc, httpx.TimeoutException):
                # Nothing is left to try again with: the operation ran out of time waiting for this answer.
                raise DeadlineReached(
                    f"{self.provider}: {method} {path}: no answer before the operation's time limit ran out "
                    f"({type(exc).__name__})",
                    provider=self.provider,
                ) from exc
            self._failed(f"{type(exc).__name__}, the response was lost")
            log.debug("%s %s %s: response lost: %s", self.provider, method, path, type(exc).__name__)
            if safe_to_resend:
                raise _Retryable(exc) from exc
            raise ResponseLost(
                f"{self.provider}: {method} {path} was sent but its response was lost ({type(exc).__name__})",
                provider=self.provider,
            ) from exc
        finally:
            httpbounds.CURRENT.reset(bounds)
        log.debug(
            "%s %s %s -> %s in %.0f ms (request id %s)",
            self.provider,
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
            request_id_of(response),
        )
        if response.is_success:
            self._failed(None)
            return response
        error = self._map_error(response)
        self._failed(f"HTTP {response.status_code}")
        if self._retryable(error, safe_to_resend=safe_to_resend, status_code=response.status_code):
            raise _Retryable(error)
        raise error

    def _exchange(
        self, method: str, path: str, json: Any, params: Mapping[str, Any] | None, seconds: float
    ) -> httpx.Response:
        """Send and read the whole answer, decoded, at most ``max_response_bytes`` of it, with secrets redacted."""
        request = self._client.build_request(method, path.lstrip("/"), json=json, params=params, timeout=seconds)
        streamed = self._client.send(request, stream=True)
        body = httpbounds.read_within(streamed, self._max_response_bytes)
        headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _BODY_HEADERS]
        return httpx.Response(
            streamed.status_code,
            headers=headers,
            content=self._redact_bytes(body),
            request=request,
            extensions=streamed.extensions,
        )

    # --- secrets ------------------------------------------------------------------------------------
    def _spellings(self) -> list[str]:
        """Every secret this transport knows, as written and JSON-escaped, longest first (so a secret that
        contains another is replaced whole)."""
        issued = getattr(self._auth, "issued_secrets", None)
        values = set(self._secrets)
        if callable(issued):
            values |= {s for s in issued() if len(s) >= MIN_SECRET_LENGTH}
        spellings = values | {jsonlib.dumps(s)[1:-1] for s in values}
        return sorted(spellings, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret this transport knows replaced."""
        for spelling in self._spellings():
            text = text.replace(spelling, REDACTED)
        return text

    def _redact_bytes(self, body: bytes) -> bytes:
        for spelling in self._spellings():
            encoded = spelling.encode()
            if encoded in body:
                body = body.replace(encoded, REDACTED.encode())
        return body

    def _redact_error(self, error: errors.GpuCloudError) -> None:
        error.message = self.redact(error.message)
        error.args = (error.message, *error.args[1:])
        if error.code:
            error.code = self.redact(error.code)
        if error.details is not None:
            dumped = jsonlib.dumps(error.details, default=str)
            redacted = self.redact(dumped)
            if redacted != dumped:  # rebuilt only then: the round trip would turn tuples into lists
                error.details = jsonlib.loads(redacted)

    @staticmethod
    def _retryable(error: errors.GpuCloudError, *, safe_to_resend: bool, status_code: int | None) -> bool:
        """429s always; plain provider failures when resending is safe or the server said it did nothing (503)."""
        if isinstance(error, errors.RateLimited):
            return True
        return type(error) is errors.ProviderError and (safe_to_resend or status_code == 503)

    def _transport_error(self, exc: httpx.TransportError, method: str, path: str) -> errors.GpuCloudError:
        if isinstance(exc, httpx.TimeoutException):
            return errors.ProviderError(
                f"{self.provider}: {method} {path} got no complete answer within the request timeout "
                f"({self._timeout:g} s) on any attempt ({type(exc).__name__})",
                provider=self.provider,
            )
        return errors.ProviderError(
            f"{self.provider}: {method} {path} failed after retries: {type(exc).__name__}: {exc}",
            provider=self.provider,
        )

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()
