"""Polling with backoff until a resource reaches a state, and waiting until SSH really answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

from gpucloud import errors

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def poll(
    fetch: Callable[[], T],
    *,
    done: Callable[[T], bool],
    describe: Callable[[T], str],
    timeout: float,
    what: str,
    failed: Callable[[T], bool] | None = None,
    interval: float = 2.5,
    max_interval: float = 15.0,
    lag_fraction: float = 0.1,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> T:
    """Call ``fetch`` until ``done``; raise :class:`Timeout` naming the last state if time runs out.

    The pause between calls is ``lag_fraction`` of the time waited so far, within ``[interval, max_interval]``:
    a state reached after ``t`` seconds is seen at most ``max(interval, lag_fraction * t)`` later, and a long
    wait costs few calls (about 13 for 30 s with the defaults, about 40 for 10 minutes).
    """
    started = clock()
    deadline = started + timeout
    while True:
        current = fetch()
        if done(current):
            return current
        if failed is not None and failed(current):
            raise errors.ProviderError(f"{what} failed: {describe(current)}", details=describe(current))
        now = clock()
        if now >= deadline:
            raise errors.Timeout(
                f"timed out after {timeout:.0f}s waiting for {what}; last state: {describe(current)}",
                last_status=describe(current),
            )
        pause = min(max_interval, max(interval, lag_fraction * (now - started)))
        sleep(min(pause, deadline - now))


def ssh_banner(host: str, port: int, timeout: float = 3.0) -> str | None:
    """The server's SSH identification line, or None if the port is closed or answers something else."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = sock.recv(256)
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].strip().decode("ascii", "replace")
    return line if line.startswith("SSH-") else None


def wait_for_ssh(
    host: str,
    port: int,
    timeout: float,
    *,
    interval: float = 0.5,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> str:
    """Wait until ``host:port`` greets with an SSH banner (an open port alone is not enough)."""
    deadline = clock() + timeout
    while True:
        banner = ssh_banner(host, port, timeout=min(3.0, max(0.1, deadline - clock())))
        if banner:
            return banner
        if clock() >= deadline:
            raise errors.Timeout(f"timed out after {timeout:.0f}s waiting for an SSH banner on {host}:{port}")
        sleep(min(interval, max(0.0, deadline - clock())))
        interval = min(5.0, interval * 1.5)
