"""Hard bounds on one HTTP attempt, enforced at the socket: a wall-clock end and a byte budget.

httpx's timeouts apply to each socket operation, so a server that sends one byte per second never trips them and
one request can last for hours; nor does httpx limit how much a server may send. The transport sets an
:class:`Attempt` in a context variable for the duration of each HTTP attempt (sending, headers, body, and the
token requests an auth flow makes on the way); the network backend here gives every connect, read and write
only the time the attempt has left, and counts every byte received against its budget.

The attempt lives in a context variable, not on the shared client: attempts running at once on other threads
each see their own.
"""

from __future__ import annotations

import contextvars
import threading
import time
import typing
from dataclasses import dataclass

import httpcore
import httpx

from gpucloud import errors


class ResponseTooLarge(Exception):
    """The server sent more than the attempt's byte budget; raised from inside the network read, or while
    decompressing (see :func:`read_within`). ``source`` says which answer, when it is not the request's own."""

    def __init__(self, limit: int, source: str | None = None) -> None:
        super().__init__(f"the response exceeded {limit} bytes")
        self.limit = limit
        self.source = source


def read_within(response: httpx.Response, limit: int, source: str | None = None) -> bytes:
    """The body of a streamed ``response``, decompressed, refused once it passes ``limit`` bytes.

    The socket count of :class:`Attempt` sees compressed bytes: a gzip bomb of a few kilobytes unpacks to
    gigabytes, so every body is counted again here, after decompression, as it is read."""
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(limit, source)
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


@dataclass
class Attempt:
    ends_at: float  # time.monotonic()
    max_bytes: int
    received: int = 0

    def left(self) -> float:
        return self.ends_at - time.monotonic()

    def count(self, size: int) -> None:
        self.received += size
        if self.received > self.max_bytes:
            raise ResponseTooLarge(self.max_bytes)


CURRENT: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("gpucloud_http_attempt", default=None)

_Timeout = type[httpcore.ConnectTimeout] | type[httpcore.ReadTimeout] | type[httpcore.WriteTimeout]


def _bounded(timeout: float | None, expired: _Timeout) -> float | None:
    """The socket timeout for one operation: the caller's, cut to what the running attempt has left."""
    attempt = CURRENT.get()
    if attempt is None:
        return timeout
    left = attempt.left()
    if left <= 0:
        raise expired("the request's time is used up")
    return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))
        attempt = CURRENT.get()
        if attempt is not None:
            attempt.count(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: typing.Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[typing.Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _LazyTLSPool(httpcore.ConnectionPool):
    """A pool that builds its TLS context on its first https connection. Loading the CA store is the costliest
    step of setting up a client (more CPU than the whole of a no-op module run's own work) and a client that
    only ever speaks plain http (the emulator, a local endpoint) never needs it."""

    def __init__(self, **kwargs: typing.Any) -> None:
        super().__init__(ssl_context=None, **kwargs)
        self._tls_lock = threading.Lock()

    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        if origin.scheme == b"https" and self._ssl_context is None:
            with self._tls_lock:
                if self._ssl_context is None:
                    # httpx's own context: certifi, or SSL_CERT_FILE/SSL_CERT_DIR, exactly as before.
                    self._ssl_context = httpx.create_ssl_context()
        return super().create_connection(origin)


class BoundedHTTPTransport(httpx.HTTPTransport):
    """httpx's own transport (request conversion, error mapping) over a connection pool whose sockets obey the
    running :class:`Attempt`. httpx offers no argument for a network backend, so the pool is built here with
    httpcore's public one. With a ``proxy`` (see :func:`proxy_mounts`) the pool is httpcore's proxy pool over
    the same backend, so the bounds hold for the connection to the proxy too."""

    def __init__(self, proxy: str | None = None) -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx.Client's defaults
        sizes: dict[str, typing.Any] = {
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "network_backend": _BoundedBackend(),
        }
        self._pool = _LazyTLSPool(**sizes) if proxy is None else _proxy_pool(httpx.Proxy(proxy), sizes)


def _proxy_pool(proxy: httpx.Proxy, sizes: dict[str, typing.Any]) -> httpcore.ConnectionPool:
    """What httpx.HTTPTransport builds for ``proxy``, over the bounded backend in ``sizes``."""
    url = httpcore.URL(
        scheme=proxy.url.raw_scheme, host=proxy.url.raw_host, port=proxy.url.port, target=proxy.url.raw_path
    )
    tls = httpx.create_ssl_context()  # only with a proxy configured: the lazy pool above serves the usual case
    if proxy.url.scheme in ("http", "https"):
        return httpcore.HTTPProxy(
            proxy_url=url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            ssl_context=tls,
            proxy_ssl_context=proxy.ssl_context,
            **sizes,
        )
    if proxy.url.scheme in ("socks5", "socks5h"):
        return httpcore.SOCKSProxy(proxy_url=url, proxy_auth=proxy.raw_auth, ssl_context=tls, **sizes)
    raise ValueError(f"a {proxy.url.scheme}:// proxy is not supported: use http, https, socks5 or socks5h")


def proxy_mounts() -> dict[str, httpx.BaseTransport | None]:
    """The proxies the environment names (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), as httpx would route
    them, each through a bounded transport (``None``: no proxy for that pattern, the client's own transport).

    httpx reads these variables only when it builds its transport itself; a client given one (as every
    gpucloud client is, for the bounds) would otherwise ignore them. The parsing is httpx's own, so NO_PROXY
    means what it means to httpx."""
    from httpx._utils import get_environment_proxies  # httpx's NO_PROXY rules; there is no public spelling

    mounts: dict[str, httpx.BaseTransport | None] = {}
    for pattern, url in get_environment_proxies().items():
        try:
            mounts[pattern] = None if url is None else BoundedHTTPTransport(proxy=url)
        except (ValueError, RuntimeError) as exc:
            # ValueError: an unknown scheme (httpx's message would show the URL, and with it any password);
            # RuntimeError: httpcore's "socksio is not installed".
            variable = pattern.split(":", 1)[0].upper() + "_PROXY"
            why = (
                "a socks proxy needs the socksio package (pip install 'httpcore[socks]')"
                if isinstance(exc, RuntimeError)
                else "only http, https, socks5 and socks5h proxies work"
            )
            raise errors.ValidationError(
                f"{variable} names a proxy gpucloud cannot use: {why}; fix or unset it", field=variable
            ) from None
    return mounts
