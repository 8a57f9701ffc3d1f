"""Client-side request pacing, so a busy run stays under a provider's published limit instead of hitting 429s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Allows ``per_minute`` requests a minute with bursts up to ``burst``; ``acquire`` blocks until allowed."""

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

    def _reserve(self) -> float:
        """Take a token (possibly going into debt) and return how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, within: float | None = None) -> float | None:
        """Wait for a token and return the wait; None, without waiting or taking one, if the wait would be
        longer than ``within`` seconds (an operation whose time limit ends sooner)."""
        delay = self._reserve()
        if within is not None and delay > within:
            with self._lock:
                self._tokens += 1  # not used: the requests behind this one need not wait for it
            return None
        if delay > 0:
            self._sleep(delay)
        return delay
