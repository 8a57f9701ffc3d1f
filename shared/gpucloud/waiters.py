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
    started: float | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    transient: Callable[[Exception], bool] | None = None,
) -> T:
    """Call ``fetch`` until ``done``; raise :class:`Timeout` naming the last state if time runs out.

    A ``fetch`` failure that ``transient`` accepts (the API down or failing for a while) does not end the wait:
    polling goes on until the deadline, and the Timeout then names the last state seen and the last failure.

    The pause between calls is ``lag_fraction`` of the time waited so far, within ``[interval, max_interval]``:
    a state reached after ``t`` seconds is seen at most ``max(interval, lag_fraction * t)`` later, and a long
    wait costs few calls (13 for 30 s with the defaults, 40 for 5 minutes, 60 for 10 minutes).

    ``started`` is when the awaited change began (e.g. when the create was sent), if earlier than this call:
    the schedule then continues from there instead of restarting at the shortest interval. Pauses count from
    the start of the previous call, so a slow API answer does not add to the lag.
    """
    begun = clock()
    started = begun if started is None else min(started, begun)
    deadline = begun + timeout
    last = "unknown"
    while True:
        call_started = clock()
        try:
            current = fetch()
        except Exception as exc:
            now = clock()
            if transient is None or not transient(exc):
                raise
            if now >= deadline:
                raise errors.Timeout(
                    f"timed out after {timeout:.0f}s waiting for {what}; last known state: {last}; "
                    f"then the API failed: {exc}",
                    last_status=last,
                ) from exc
            pause = next_poll(call_started - started, interval, max_interval, lag_fraction)
            sleep(max(0.0, min(call_started + pause, deadline) - now))
            continue
        last = describe(current)
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
        pause = next_poll(call_started - started, interval, max_interval, lag_fraction)
        # A call slowed down by client-side pacing must not turn into back-to-back calls: at least half a pause.
        sleep(max(0.0, min(max(call_started + pause, now + pause / 2), deadline) - now))


def next_poll(elapsed: float, interval: float, max_interval: float, lag_fraction: float) -> float:
    """Seconds from one poll's start to the next: ``lag_fraction`` of the time waited, within the bounds."""
    return min(max_interval, max(interval, lag_fraction * elapsed))


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
