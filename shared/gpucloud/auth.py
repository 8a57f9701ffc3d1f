"""httpx.Auth strategies: static bearer, custom header token, HTTP basic and OAuth2 client credentials."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import Annotated, Literal

import httpx
from pydantic import Field, StrictStr

from gpucloud import errors, httpbounds, wire
from gpucloud.config import redact_url
from gpucloud.httputil import retry_after_seconds
from gpucloud.tokencache import TokenCache


class _Token(wire.Wire):
    """A token endpoint's answer, as far as we read it."""

    access_token: Annotated[StrictStr, Field(min_length=1)]
    refresh_token: StrictStr | None = None
    expires_in: float | None = None


TokenErrorParser = Callable[[httpx.Response], tuple[str | None, str | None]]


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class HeaderTokenAuth(httpx.Auth):
    """A token in a provider-specific header (e.g. ``x-api-token``)."""

    def __init__(self, header: str, token: str) -> None:
        self._header = header
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._token
        yield request


class OAuth2ClientCredentials(httpx.Auth):
    """Client-credentials grant with refresh-token renewal.

    The token is renewed ``early_refresh`` seconds before ``expires_in`` runs out, and once more if the API
    still refuses it (a token revoked server-side): a 401, or whatever ``token_refused`` recognises for
    providers that signal it otherwise. A failing refresh grant falls back to a fresh
    client-credentials grant; if that fails too the caller gets an :class:`AuthError`.

    With a ``cache`` (:mod:`gpucloud.tokencache`, opt-in) the first request of a process uses the access token
    an earlier process obtained while it is fresh, and every token obtained here is written there.
    """

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        provider: str,
        body_format: Literal["json", "form"] = "json",
        early_refresh: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        token_refused: Callable[[httpx.Response], bool] | None = None,
        cache: TokenCache | None = None,
    ) -> None:
        self._cache = cache
        self._token_refused = token_refused or (lambda response: response.status_code == 401)
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._provider = provider
        self._body_format = body_format
        self._early_refresh = early_refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0
        self.token_requests = 0
        # A refusal of the credentials is final for this client: parallel requests (page fetches) waiting on
        # the lock get the same error instead of each asking the token endpoint again.
        self._refused: tuple[str, errors.ErrorContext] | None = None

    def _token_request(self, grant: dict[str, str]) -> httpx.Request:
        if self._body_format == "json":
            return httpx.Request("POST", self._token_url, json=grant)
        return httpx.Request("POST", self._token_url, data=grant)

    def _client_grant(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }

    def _fresh(self) -> bool:
        return self._access_token is not None and self._clock() < self._expires_at - self._early_refresh

    def _store(self, response: httpx.Response) -> None:
        # A malformed answer (HTML, no access_token...) is a MalformedResponse naming the token endpoint.
        body = wire.read(response, _Token, self._provider)
        self._access_token = str(body["access_token"])
        self._refresh_token = body.get("refresh_token") or self._refresh_token
        lifetime = float(body.get("expires_in") or 3600)
        # Never schedule the early refresh before "now": short-lived tokens would be renewed on every call.
        self._expires_at = self._clock() + max(lifetime, self._early_refresh * 2)
        self.token_requests += 1
        if self._cache is not None:
            self._cache.save(self._access_token, lifetime)

    def _from_cache(self) -> bool:
        """Take the cached token if it is fresh by the same rule as one obtained here (``_fresh``)."""
        cached = self._cache.load() if self._cache is not None else None
        if cached is None or cached[1] <= self._early_refresh:
            return False
        self._access_token, seconds_left = cached
        self._expires_at = self._clock() + seconds_left
        return True

    def _raise(self, response: httpx.Response) -> None:
        code = message = None
        try:
            body = response.json()
            if isinstance(body, dict):
                code = body.get("code") or body.get("error")
                message = body.get("message") or body.get("error_description") or body.get("detail")
        except ValueError:
            pass
        text = f"{self._provider}: could not obtain an access token: {message or response.reason_phrase}"
        context: errors.ErrorContext = {
            "provider": self._provider,
            "status_code": response.status_code,
            "code": str(code) if code else None,
        }
        # Only a refusal of the credentials is an auth problem; a busy or failing token endpoint is retryable.
        if response.status_code == 429:
            raise errors.RateLimited(text, retry_after=retry_after_seconds(response), **context)
        if response.status_code >= 500:
            raise errors.ProviderError(text, **context)
        self._refused = (text, context)
        raise errors.AuthError(text, **context)

    def _renew(self, *, force: bool) -> Generator[httpx.Request, httpx.Response, None]:
        if not force and (self._fresh() or (self._access_token is None and self._from_cache())):
            return
        if self._refused is not None:
            raise errors.AuthError(self._refused[0], **self._refused[1])
        if self._refresh_token:
            response = yield self._token_request({"grant_type": "refresh_token", "refresh_token": self._refresh_token})
            if response.status_code == 200:
                self._store(response)
                return
            self._refresh_token = None
        response = yield self._token_request(self._client_grant())
        if response.status_code != 200:
            self._raise(response)
        self._store(response)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's flow, but every answer it reads (token answers, and API answers the refusal check looks at)
        is read within the running attempt's byte budget counted after decompression: httpx's own read has
        no bound, so a gzip bomb from the token endpoint would be unpacked whole into memory."""
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            _read_bounded(response, request)
            try:
                request = flow.send(response)
            except StopIteration:
                break

    def issued_secrets(self) -> list[str]:
        """Every secret this flow holds or obtained, for the transport to redact wherever a server echoes one."""
        return [s for s in (self._client_secret, self._access_token, self._refresh_token) if s]

    def invalidate(self) -> None:
        with self._lock:
            self._expires_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            yield from self._renew(force=False)
            sent_with = self._access_token
        request.headers["Authorization"] = f"Bearer {sent_with}"
        response = yield request
        if not self._token_refused(response):
            return
        with self._lock:
            # Another thread may already have renewed the token this request was rejected with.
            yield from self._renew(force=self._access_token == sent_with)
            request.headers["Authorization"] = f"Bearer {self._access_token}"
        yield request


def _read_bounded(response: httpx.Response, request: httpx.Request) -> None:
    """``response.read()``, within the byte budget of the attempt running (see :mod:`gpucloud.httpbounds`)."""
    attempt = httpbounds.CURRENT.get()
    if attempt is None:  # not sent by a gpucloud Transport: nothing to bound it by
        response.read()
        return
    source = f"the answer of {redact_url(str(request.url.copy_with(query=None)))}"
    # What httpx's own read() stores; httpx later reads this response again, and gets this.
    response._content = httpbounds.read_within(response, attempt.max_bytes, source)
