"""The HTTP transport builds its TLS context on its first https connection only, and verifies as before.

Loading the CA store is the costliest step of building a client, so a client that speaks plain http never
pays it; these tests pin that down and check that the deferred context still verifies certificates (a
self-signed server is refused) and still honours ``SSL_CERT_FILE`` (the same server is then accepted).
"""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpucloud import errors, httpbounds
from gpucloud.transport import Transport


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"hello": "world"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


def _serve(tls: ssl.SSLContext | None) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (no CA anywhere trusts it)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [*request, "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def http_url() -> Iterator[str]:
    yield from _serve(None)


@pytest.fixture
def https_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(context)


def _transport(base_url: str) -> tuple[Transport, httpbounds.BoundedHTTPTransport]:
    http_transport = httpbounds.BoundedHTTPTransport()
    transport = Transport(
        provider="test",
        base_url=base_url,
        map_error=lambda r: errors.ProviderError(f"http {r.status_code}", status_code=r.status_code),
        http_transport=http_transport,
        max_retries=0,
        timeout=10,
    )
    return transport, http_transport


def _tls_context(http_transport: httpbounds.BoundedHTTPTransport) -> ssl.SSLContext | None:
    context: ssl.SSLContext | None = http_transport._pool._ssl_context
    return context


def test_plain_http_requests_build_no_tls_context(http_url: str) -> None:
    transport, http_transport = _transport(http_url)
    with transport._client:
        assert transport.get_json("hello") == {"hello": "world"}
        assert _tls_context(http_transport) is None


def test_first_https_connection_builds_a_verifying_context(
    https_url: str, monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path]
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    transport, http_transport = _transport(https_url)
    with transport._client, pytest.raises(errors.GpuCloudError) as refused:
        transport.get_json("hello")
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    context = _tls_context(http_transport)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_deferred_context_still_honours_ssl_cert_file(
    https_url: str, monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path]
) -> None:
    # Set after the transport is built: the context is made at the first https connection, and reads it then.
    transport, _ = _transport(https_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with transport._client:
        assert transport.get_json("hello") == {"hello": "world"}
