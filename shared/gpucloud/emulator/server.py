"""Running the emulator: :class:`EmulatorServer` (uvicorn in a daemon thread, for tests and embedding)
and :func:`serve` (blocking, for ``gpucloud emulator``; Ctrl-C / SIGTERM shut down cleanly, sshd included).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from dataclasses import replace
from types import FrameType, TracebackType
from typing import Any

import httpx
import uvicorn

from gpucloud.emulator.app import PROVIDERS, build_app
from gpucloud.emulator.middleware import CONTROL_TOKEN_HEADER
from gpucloud.emulator.world import EmulatorSettings, World

log = logging.getLogger(__name__)


class _DropNoise(logging.Filter):
    """uvicorn logs an error for every response the drop fault cuts short on purpose; keep logs readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_DropNoise())


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(settings: EmulatorSettings) -> None:
    """Refuse a non-loopback address unless ``allow_remote``: the emulated APIs would be open to the network."""
    if is_loopback(settings.host):
        return
    if not settings.allow_remote:
        raise ValueError(
            f"refusing to bind the emulator to {settings.host!r}: anyone who can reach that address could use "
            "every emulated API and log in to emulated hosts. Bind 127.0.0.1, or pass --allow-remote "
            "(EmulatorSettings(allow_remote=True)) if you really mean to expose it"
        )
    log.warning("the emulator listens on %s, reachable beyond this machine (allow_remote)", settings.host)


class EmulatorServer:
    """A running emulator on a real port: ``with EmulatorServer(provision_seconds=0.3) as emu: ...``."""

    def __init__(self, settings: EmulatorSettings | None = None, **overrides: Any) -> None:
        base = settings or EmulatorSettings()
        self.settings = replace(base, **overrides) if overrides else base
        check_bind(self.settings)
        self.world = World(self.settings)
        self.app = build_app(self.world)
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def credentials(self) -> dict[str, dict[str, str]]:
        """This run's API credentials per provider (random; also in the env file ``gpucloud emulator`` writes)."""
        return self.settings.credentials

    @property
    def control_headers(self) -> dict[str, str]:
        """Headers a control API call (``/_emulator/...`` other than ``health``) must carry."""
        return {CONTROL_TOKEN_HEADER: self.settings.control_token}

    def base_url(self, provider: str) -> str:
        """E.g. ``base_url("datacrunch")`` -> ``http://127.0.0.1:PORT/datacrunch/v1``."""
        spec = next((p for p in PROVIDERS if p.name == provider), None)
        if spec is None:
            raise KeyError(f"unknown provider {provider!r}; known: {[p.name for p in PROVIDERS]}")
        if not self.url:
            raise RuntimeError("the emulator is not started")
        return self.url + spec.prefix

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            return self
        self.world.start()
        try:
            self._serve_in_thread()
        except BaseException:
            self.stop()
            raise
        return self

    def _serve_in_thread(self) -> None:
        # Binding here (not in uvicorn) makes the real port known before the thread starts, also for port 0.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this. Without it the response head and body go out as two segments and
        # Nagle holds the body until the client's delayed ACK (~40 ms on Linux) on every request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.settings.host, self.settings.port))
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="gpucloud-emulator-http", daemon=True
        )
        self._thread.start()
        self._wait_until_serving()

    def _wait_until_serving(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                raise RuntimeError("the emulator's HTTP server exited during startup")
            try:
                if httpx.get(f"{self.url}/_emulator/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"the emulator did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        """Stop HTTP, every sshd and the lifecycle clock; remove temporary state. Safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.world.shutdown()
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(settings: EmulatorSettings) -> None:
    """Run the emulator until Ctrl-C or SIGTERM, then shut everything down (no sshd left behind)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    server = EmulatorServer(settings)
    try:
        server.start()
        _print_banner(server)
        while not stop.wait(0.5):  # a timed wait lets the main thread run signal handlers promptly
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("emulator stopped")


def _print_banner(server: EmulatorServer) -> None:
    lines = [f"gpucloud emulator on {server.url}  (docs: {server.url}/docs)"]
    lines += [f"  {p.name:<12} {server.base_url(p.name)}" for p in PROVIDERS]
    # Credentials are random per run and never printed: clients read them from the env file (mode 0600).
    lines.append("  credentials  random for this run; in the --env-file written at start, not shown here")
    ssh = f"port {server.settings.ssh_port}, user {server.world.ssh_user}" if server.world.sshd else "off"
    lines.append(f"  ssh          {ssh}")
    print("\n".join(lines), flush=True)
