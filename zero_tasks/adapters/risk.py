"""Redis edge of the risk controls: the daily order cap, the broker rate limit, the
circuit breaker. Each is one Lua script (lua/take_broker_slots.lua, lua/breaker_failure.lua;
the cap is taken by lua/admit.lua), so every worker and box sees one count.

The pure verdicts (is the breaker open, is a probe due) live in checks/breaker.py; this module
only counts and stores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import redis

from zero_tasks.adapters import scripts
from zero_tasks.core import keys
from zero_tasks.secrets import scrub

NEW_YORK = ZoneInfo("America/New_York")

REGULAR_CLOSE = time(16, 0)  # New York


def trading_day_began(now: datetime) -> datetime:
    """When the trading day `now` counts towards began: the regular close of the weekday
    before it (trading_day's own rule, so both counts of the daily cap agree)."""
    day = datetime.fromisoformat(trading_day(now)).date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime.combine(day, REGULAR_CLOSE, NEW_YORK)


def trading_day(now: datetime) -> str:
    """The New York date of the trading session an instant counts towards: its own date on
    a weekday until the regular close, else the next weekday. A Saturday, a Sunday or a
    Friday evening count towards Monday's session (exchange holidays are not known here:
    the market is closed then, and row 3 places nothing)."""
    local = now.astimezone(NEW_YORK)
    day = local.date()
    if day.weekday() < 5 and local.time() < REGULAR_CLOSE:
        return day.isoformat()
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.isoformat()


class DailyCap:
    """At most `cap` orders per trading day; one reservation per execution_id.

    The reservation itself is part of the admission script (redis_state.ExecutionLocks.admit).
    """

    def __init__(self, r: redis.Redis, cap: int) -> None:
        self._r = r
        self.cap = cap

    def key(self, now: datetime) -> str:
        return keys.DAILY_ORDERS_PREFIX + trading_day(now)

    def release(self, execution_id: str, now: datetime) -> None:
        self._r.hdel(self.key(now), execution_id)

    def used(self, now: datetime) -> int:
        return int(self._r.hlen(self.key(now)))


class RateLimited(Exception):
    def __init__(self, wait_s: float) -> None:
        super().__init__(f"broker rate limit reached; next slot in {wait_s:.1f}s")
        self.wait_s = wait_s


class BrokerRateLimit:
    """Order-path broker calls (lookups included) per rolling minute, across workers.

    Exits go ahead of entries: entries (and everything else that is not an exit) may take
    the window up to `per_minute - reserve`; an exit's calls up to `per_minute`. So a burst
    of rankings can never spend the calls a due exit needs. The reserve is at most a
    quarter of the budget: a small budget still lets entries through."""

    def __init__(self, r: redis.Redis, per_minute: int, reserve: int = 0) -> None:
        self.per_minute = per_minute
        self.entry_limit = max(1, per_minute - min(reserve, per_minute // 4))
        self._acquire = scripts.register(r, "take_broker_slots")
        self._seq = 0

    def member(self, label: str) -> str:
        """A name for one taking of slots, unique across processes and boxes' workers."""
        self._seq += 1
        return f"{label}:{os.getpid()}:{id(self)}:{self._seq}"

    def acquire(self, label: str, slots: int = 1, *, exit_order: bool = False) -> None:
        """Take `slots` calls of this minute's budget together, or raise RateLimited."""
        limit = self.per_minute if exit_order else self.entry_limit
        wait_ms = int(self._acquire(keys=[keys.BROKER_RATE_KEY], args=[limit, self.member(label), slots]))
        if wait_ms:
            raise RateLimited(wait_ms / 1000)


@dataclass(frozen=True)
class BreakerChange:
    opened: bool
    failures: int


class CircuitBreaker:
    """Opens after `threshold` consecutive broker failures within `window_s`."""

    def __init__(self, r: redis.Redis, threshold: int, window_s: int, cooloff_s: int) -> None:
        self._r = r
        self._threshold = threshold
        self._window_s = window_s
        self._cooloff_s = cooloff_s
        self._failure = scripts.register(r, "breaker_failure")

    def state(self, reason: str, now: datetime, failures: int) -> str:
        until = now + timedelta(seconds=self._cooloff_s)
        return json.dumps({"state": "OPEN", "since": now.isoformat(), "until": until.isoformat(),
                           "reason": reason, "failures": failures})

    def failure(self, reason: str, now: datetime) -> BreakerChange:
        n = int(self._failure(keys=[keys.BREAKER_FAILURES_KEY, keys.BREAKER_KEY],
                              args=[self._threshold, self._window_s, self.state(reason, now, self._threshold)]))
        return BreakerChange(opened=n < 0, failures=abs(n))

    def success(self, pipe: redis.client.Pipeline | None = None) -> None:
        """A broker call worked: the consecutive-failure count starts again (in `pipe` if given)."""
        (pipe if pipe is not None else self._r).delete(keys.BREAKER_FAILURES_KEY)

    def reopen(self, reason: str, now: datetime) -> None:
        """A failed probe: stay open for another cool-off."""
        self._r.set(keys.BREAKER_KEY, self.state(reason, now, self._threshold))

    def close(self) -> None:
        self._r.delete(keys.BREAKER_KEY, keys.BREAKER_FAILURES_KEY)


def alert(r: redis.Redis, kind: str, **detail: object) -> None:
    """Operational events (not decisions) go to the gateway's own alert channel."""
    r.publish(keys.ALERT_CHANNEL, scrub(json.dumps({"type": kind, **detail}, default=str)))
