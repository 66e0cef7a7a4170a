"""The gateway's one clock (zero_tasks/adapters/redis_clock.py) and its skew on /health.
The same on several hosts with a skewed worker: tests/test_hosts_e2e.py."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import redis

from bridge.health import clock_view
from tests.support.procs import PrivateRedis, free_port
from zero_tasks.adapters.redis_clock import Anchor, RedisClock, read_anchor


def anchor_of_a_host_ahead_by(seconds: float) -> Anchor:
    wall = time.time()
    return Anchor(redis_s=wall - seconds, monotonic_s=time.monotonic(), wall_s=wall, uncertainty_s=0.001)


def test_now_is_the_redis_time_plus_the_monotonic_time_since_the_anchor() -> None:
    clock = RedisClock()
    clock.set_anchor(anchor_of_a_host_ahead_by(30))
    assert abs((clock.now() - datetime.now(UTC)).total_seconds() + 30) < 0.5


def test_before_any_reading_now_is_the_local_clock() -> None:
    assert abs((RedisClock().now() - datetime.now(UTC)).total_seconds()) < 0.5


def test_an_anchor_read_from_redis_gives_this_hosts_skew(private_redis: PrivateRedis) -> None:
    anchor = read_anchor(private_redis.client())
    assert abs(anchor.skew_s) < 1 and anchor.uncertainty_s >= 0  # one machine: one clock
    assert anchor_of_a_host_ahead_by(30).skew_s == 30


def test_a_failed_refresh_keeps_the_last_anchor() -> None:
    clock = RedisClock()
    kept = anchor_of_a_host_ahead_by(5)
    clock.set_anchor(kept)
    nobody = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    assert clock.refresh(nobody) is False
    assert clock.anchor == kept


def test_health_shows_each_workers_skew_the_bridges_and_the_largest() -> None:
    beats = [json.dumps({"hostname": "w1@a", "clock_skew_s": 30.0}).encode(),
             json.dumps({"hostname": "w2@b", "clock_skew_s": -0.2}).encode(),
             json.dumps({"hostname": "old@c"}).encode(), b"not json", None]
    view = clock_view(beats, anchor_of_a_host_ahead_by(-1.5))
    assert view["workers_skew_s"] == {"w1@a": 30.0, "w2@b": -0.2}
    assert abs(view["bridge_skew_s"] + 1.5) < 0.01
    assert view["max_abs_skew_s"] == 30.0


def test_health_without_any_reading_shows_no_skew() -> None:
    assert clock_view([], None) == {"bridge_skew_s": None, "workers_skew_s": {}, "max_abs_skew_s": None}
