"""One httpx client per provider: auth, timeouts, pacing, retries with full-jitter backoff, redacted logs.

Retry rules:
- connect failures are always retried: the request never reached the server;
- 429 (and any error the adapter maps to :class:`RateLimited`) is retried after ``Retry-After``;
- 5xx mapped to :class:`ProviderError` is retried for idempotent requests only; a 503 the adapter maps to
  :class:`NoCapacity` is final;
- a non-idempotent request whose response was lost raises :class:`ResponseLost`; that and a 5xx to a create
  (see :func:`is_server_failure`) leave open whether the server acted, so the adapter looks the resource up
  and adopts it instead of creating a second one;
- inside :meth:`Transport.deadline` no retry pause and no request timeout runs past the deadline, so an operation
  with a ``wait_timeout`` never spends longer than that retrying.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import tenacity

from gpucloud import errors
from gpucloud.httputil import request_id_of
from gpucloud.ratelimit import TokenBucket

log = logging.getLogger("gpucloud.transport")

ErrorMapper = Callable[[httpx.Response], errors.GpuCloudError]
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


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
    """Stop retrying when the next pause would end at or after the transport's deadline."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        left = self.transport.time_left()
        return left is not None and retry_state.upcoming_sleep >= left


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
    ) -> None:
        self.provider = provider
        self._map_error = map_error
        self._max_retries = max_retries
        self._retry_max_seconds = retry_max_seconds
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self.limiter = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.request_count = 0
        self._timeout = timeout
        self._deadline: float | None = None  # time.monotonic() value; see deadline()
        # The pause between retries and the clock deadlines are measured on (replaceable in tests).
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic
        self.last_failure: str | None = None  # what the last failed attempt met, for messages after a deadline
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            auth=auth,
            headers={"User-Agent": "gpucloud", "Accept": "application/json", **(headers or {})},
            timeout=timeout,
            transport=http_transport,
        )

    def close(self) -> None:
        self._client.close()

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Bound every request in the block: retries stop before a pause would end past ``seconds`` from now,
        and no single request waits longer than the time left. Nested deadlines keep the earlier one."""
        previous = self._deadline
        at = self.clock() + seconds
        self._deadline = at if previous is None else min(previous, at)
        try:
            yield
        finally:
            self._deadline = previous

    def time_left(self) -> float | None:
        return None if self._deadline is None else self._deadline - self.clock()

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
        method = method.upper()
        safe_to_resend = method in _IDEMPOTENT_METHODS if idempotent is None else idempotent
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self._max_retries + 1),
                tenacity.stop_after_delay(self._retry_max_seconds),
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

    def _attempt(
        self,
        method: str,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        safe_to_resend: bool,
        timeout: float | None,
    ) -> httpx.Response:
        if self.limiter:
            self.limiter.acquire()
        self.request_count += 1
        started = time.monotonic()
        left = self.time_left()
        if left is not None:
            if left <= 0:
                raise DeadlineReached(
                    f"{self.provider}: {method} {path} not sent: the operation's time limit is used up"
                    + (f" (the last attempt failed: {self.last_failure})" if self.last_failure else ""),
                    provider=self.provider,
                )
            timeout = min(timeout or self._timeout, max(left, 0.1))
        try:
            response = self._client.request(
                method,
                path.lstrip("/"),
                json=json,
                params=params,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self.last_failure = f"{type(exc).__name__} connecting to the API"
            log.debug("%s %s %s: connect failed: %s", self.provider, method, path, type(exc).__name__)
            raise _Retryable(exc) from exc
        except errors.GpuCloudError as auth_failure:
            # Raised by the auth flow (the token endpoint answered 429 or 5xx) before the API acted on anything.
            if self._retryable(auth_failure, safe_to_resend=True, status_code=auth_failure.status_code):
                raise _Retryable(auth_failure) from auth_failure
            raise
        except httpx.TransportError as exc:
            self.last_failure = f"{type(exc).__name__}, the response was lost"
            log.debug("%s %s %s: response lost: %s", self.provider, method, path, type(exc).__name__)
            if safe_to_resend:
                raise _Retryable(exc) from exc
            raise ResponseLost(
                f"{self.provider}: {method} {path} was sent but its response was lost ({type(exc).__name__})",
                provider=self.provider,
            ) from exc
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
            self.last_failure = None
            return response
        error = self._map_error(response)
        self.last_failure = f"HTTP {response.status_code}"
        if self._retryable(error, safe_to_resend=safe_to_resend, status_code=response.status_code):
            raise _Retryable(error)
        raise error

    @staticmethod
    def _retryable(error: errors.GpuCloudError, *, safe_to_resend: bool, status_code: int | None) -> bool:
        """429s always; plain provider failures when resending is safe or the server said it did nothing (503)."""
        if isinstance(error, errors.RateLimited):
            return True
        return type(error) is errors.ProviderError and (safe_to_resend or status_code == 503)

    def _transport_error(self, exc: httpx.TransportError, method: str, path: str) -> errors.GpuCloudError:
        return errors.ProviderError(
            f"{self.provider}: {method} {path} failed after retries: {type(exc).__name__}: {exc}",
            provider=self.provider,
        )

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()
