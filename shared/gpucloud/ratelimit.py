"""Client-side request pacing, so a busy run stays under a provider's published limit instead of hitting 429s."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# Providers count their limit over any sliding minute (the emulator does too). A grant is never closer than this
# to the one ``per_minute`` grants earlier: a minute plus room for requests arriving later than they were sent.
WINDOW_SECONDS = 60.5


class TokenBucket:
    """Allows ``per_minute`` requests a minute with bursts up to ``burst``; ``acquire`` blocks until allowed.

    A bucket alone would allow its burst on top of a minute's refill (70 requests in a minute for 60/min with a
    burst of 10), and a provider counting a sliding minute answers 429 to the last ones; so no request is also
    let through within :data:`WINDOW_SECONDS` of the one ``per_minute`` requests before it."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, int(per_minute // 6)))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()
        self._per_window = max(1, int(per_minute))
        self._granted: deque[float] = deque()  # when each of the last minute's requests goes, in order

    def _reserve(self) -> tuple[float, float]:
        """Take a token (possibly going into debt); how long the caller must wait for it, and when it goes."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            at = now if self._tokens >= 0 else now - self._tokens / self.rate
            while self._granted and self._granted[0] <= now - WINDOW_SECONDS:
                self._granted.popleft()
            if len(self._granted) >= self._per_window:
                at = max(at, self._granted[-self._per_window] + WINDOW_SECONDS)
            if self._granted:
                at = max(at, self._granted[-1])
            self._granted.append(at)
            return at - now, at

    def acquire(self, within: float | None = None) -> float | None:
        """Wait for a token and return the wait; None, without waiting or taking one, if the wait would be
        longer than ``within`` seconds (an operation whose time limit ends sooner)."""
        delay, at = self._reserve()
        if within is not None and delay > within:
            with self._lock:
                self._tokens += 1  # not used: the requests behind this one need not wait for it
                self._granted.remove(at)
            return None
        if delay > 0:
            self._sleep(delay)
        return delay
