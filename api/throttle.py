"""Throttle of failed authentications per client address (sliding window, bounded memory).

After ``AUTH_FAILURE_LIMIT`` failures within ``AUTH_FAILURE_WINDOW_SECONDS`` an address is
refused (429 with ``Retry-After``) until its oldest counted failure leaves the window; the
credentials of a refused request are not even checked. The client address is the ASGI
``client`` (uvicorn sets it from ``X-Forwarded-For`` only for proxies in
``FORWARDED_ALLOW_IPS``).

Memory: at most ``limit`` timestamps for each of at most ``max_addresses`` addresses; when the
table is full the address whose last failure is the oldest is forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["FailureThrottle"]


class FailureThrottle:
    """Counts failures per address in a sliding window; thread-safe."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_seconds <= 0 or max_addresses < 1:
            raise ValueError("limit, window and max_addresses must be positive")
        self.limit = limit
        self.window = window_seconds
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again; None when it is not refused."""
        with self._lock:
            times = self._failures.get(address)
            if times is None:
                return None
            now = self._clock()
            self._expire(times, now)
            if not times:
                del self._failures[address]
                return None
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def failure(self, address: str) -> None:
        """Count one failed authentication of ``address`` now."""
        with self._lock:
            now = self._clock()
            times = self._failures.get(address)
            if times is None:
                while len(self._failures) >= self.max_addresses:
                    self._failures.popitem(last=False)
                times = self._failures[address] = deque(maxlen=self.limit)
            else:
                self._failures.move_to_end(address)
            self._expire(times, now)
            times.append(now)

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()
