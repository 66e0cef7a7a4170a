"""The gateway's clock is the Redis host's: every process judges time as the others do.

Signal age, market-state age and the trading session are judged against "now". Across
several hosts each host's wall clock is its own, and a host whose NTP is broken would
judge a fresh ranking stale (or a stale one fresh) by its error; Celery's tracker has
such drift between worker hosts (celery#1980). The cooldown and the claims already run on
Redis TTLs (one clock), so the gateway takes Redis's TIME as its one clock for the rest.

A background thread reads TIME every REFRESH_S on a connection of its own (never on the
decision path, which must stay one round trip: tests/test_round_trips.py) and keeps an
anchor: Redis's time and this process's monotonic clock at the same moment. `now()` is
that Redis time plus the monotonic time elapsed since, so a step of the local wall clock
(set by hand, faked, slewed) does not move it. The error bound: half the TIME round trip
(kept as `uncertainty_s`) plus the monotonic clock's drift over REFRESH_S (NTP slews at
most 500 ppm: 2.5 ms in 5 s). Before the first reading (Redis not reached yet) `now()` is
the local wall clock: nothing is decided without Redis anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

log = logging.getLogger(__name__)

REFRESH_S = 5.0


@dataclass(frozen=True)
class Anchor:
    redis_s: float  # Redis TIME (epoch seconds), the middle of the round trip
    monotonic_s: float  # this process's monotonic clock at that moment
    wall_s: float  # this process's wall clock at that moment
    uncertainty_s: float  # half the round trip

    @property
    def skew_s(self) -> float:
        """How far this host's wall clock is ahead of Redis's (negative: behind)."""
        return self.wall_s - self.redis_s


def read_anchor(r: redis.Redis) -> Anchor:
    """One TIME round trip, bracketed by the local clocks. Raises RedisError."""
    mono0, wall0 = time.monotonic(), time.time()
    seconds, micros = r.time()
    mono1, wall1 = time.monotonic(), time.time()
    return Anchor(redis_s=seconds + micros / 1_000_000, monotonic_s=(mono0 + mono1) / 2,
                  wall_s=(wall0 + wall1) / 2, uncertainty_s=(mono1 - mono0) / 2)


class RedisClock:
    """Now, by the Redis host's clock (see the module docstring for the bound)."""

    def __init__(self) -> None:
        self._anchor: Anchor | None = None
        self._stop = threading.Event()

    @property
    def anchor(self) -> Anchor | None:
        return self._anchor

    def set_anchor(self, anchor: Anchor) -> None:
        self._anchor = anchor

    def now(self) -> datetime:
        anchor = self._anchor
        if anchor is None:
            return datetime.now(UTC)
        return datetime.fromtimestamp(anchor.redis_s + (time.monotonic() - anchor.monotonic_s), UTC)

    def refresh(self, r: redis.Redis) -> bool:
        try:
            self._anchor = read_anchor(r)
            return True
        except redis.RedisError as exc:
            log.debug("clock: Redis TIME not read (%s); the last anchor holds", type(exc).__name__)
            return False

    def start(self, url: str, every_s: float = REFRESH_S) -> None:
        """Keep the anchor fresh from a daemon thread (its own connection). Reads once now, so
        a process that reached Redis judges by its clock from its first decision."""
        client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.refresh(client)

        def run() -> None:
            while not self._stop.wait(every_s):
                self.refresh(client)
        threading.Thread(target=run, daemon=True, name="redis-clock").start()

    def stop(self) -> None:
        self._stop.set()


CLOCK = RedisClock()  # one per process (a prefork pool process starts its own: worker/warm.py)


def utcnow() -> datetime:
    return CLOCK.now()
