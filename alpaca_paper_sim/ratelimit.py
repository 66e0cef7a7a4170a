"""Alpaca's request quota: N requests a minute per account, told in X-RateLimit-* headers.

A fixed window that starts with its first request: every answer says the limit, what is
left of it and the unix second the quota refills (`X-RateLimit-Reset`); a request past the
limit is answered 429 with the same headers and no Retry-After, as Alpaca does. Wall-clock
time, not the simulated market time, because clients wait in real seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_LIMIT_PER_MIN = 200  # Alpaca's Trading API quota
WINDOW_S = 60.0


@dataclass(frozen=True)
class Quota:
    """The quota as one answer reports it; `allowed` is False for the request that hit the limit."""

    limit: int
    remaining: int
    reset: int  # unix seconds
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


class RateLimiter:
    """Counts requests per window; thread-safe because every connection has its own thread."""

    def __init__(self, limit: int = DEFAULT_LIMIT_PER_MIN, now: Callable[[], float] = time.time) -> None:
        if limit < 1:
            raise ValueError("rate limit must be at least 1 request a minute")
        self.limit = limit
        self._now = now
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._used = 0

    def _roll(self, now: float) -> None:
        if now >= self._window_start + WINDOW_S:
            self._window_start, self._used = now, 0

    def _quota(self, allowed: bool) -> Quota:
        return Quota(self.limit, self.limit - self._used, math.ceil(self._window_start + WINDOW_S), allowed)

    def take(self) -> Quota:
        """Spend one request of the quota, or say it is spent."""
        with self._lock:
            self._roll(self._now())
            if self._used >= self.limit:
                return self._quota(allowed=False)
            self._used += 1
            return self._quota(allowed=True)

    def peek(self) -> Quota:
        """The quota without spending it (for answers that are not counted, such as a 401)."""
        with self._lock:
            self._roll(self._now())
            return self._quota(allowed=self._used < self.limit)

    def exhaust_for(self, seconds: float) -> Quota:
        """What an injected 429 reports: nothing left until `seconds` from now."""
        return Quota(self.limit, 0, math.ceil(self._now() + max(seconds, 0.0)), allowed=False)
