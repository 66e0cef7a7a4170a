"""/health finds the workers and the failing audit writers through their registries, never by
walking the keyspace it shares with ZERO (adapters/registry.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from bridge.health import _redis_view
from tests.support.procs import PrivateRedis
from zero_tasks.adapters import registry
from zero_tasks.adapters.audit_health import FAILING_KEY, failure_key, failure_value
from zero_tasks.core import keys

ZERO_KEYS = 20_000  # ZERO's own keys in the Redis the gateway shares with it


@pytest.fixture(scope="module")
def own_redis(log_dir: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this module's own: its tests flush it, and INFO commandstats counts
    every client's commands (the suite's shared gateway would add its own)."""
    server = PrivateRedis(log_dir).start()
    yield server
    server.stop()


def view(server: PrivateRedis) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{server.port}/0")
        try:
            check, found = await _redis_view(client)
        finally:
            await client.aclose()
        assert check["ok"], check
        return found
    return asyncio.run(read())


def beat(r: redis.Redis, hostname: str, ttl_s: int = 10) -> None:
    """What the worker heartbeat writes."""
    pipe = r.pipeline(transaction=False)
    pipe.set(keys.worker_alive_key(hostname), json.dumps({"hostname": hostname, "clock_skew_s": 0.0}), ex=ttl_s)
    registry.register(pipe, keys.WORKERS_KEY, hostname, time.time())
    pipe.execute()


def commands_of(r: redis.Redis, action: Any) -> dict[str, int]:
    """Redis's count of each command `action` made it run (INFO commandstats; this INFO's own excluded)."""
    def calls() -> dict[str, int]:
        return {name: int(stats["calls"]) for name, stats in r.info("commandstats").items()}
    before = calls()
    action()
    after = calls()
    after["cmdstat_info"] -= 1
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}


def fill(r: redis.Redis, n: int) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"zero:features:T{i}", "x")
    pipe.execute()


def test_health_counts_the_workers_whose_heartbeat_is_there_and_not_one_registered_whose_beat_expired(
        own_redis: PrivateRedis) -> None:
    r = own_redis.client()
    r.flushall()
    beat(r, "w1@a")
    beat(r, "w2@b")
    registry.register(r, keys.WORKERS_KEY, "gone@c", time.time())  # registered, its heartbeat long expired
    found = view(own_redis)
    assert found["workers"] == 2
    assert sorted(json.loads(b)["hostname"] for b in found["worker_beats"]) == ["w1@a", "w2@b"]


def test_health_sees_each_failing_audit_writer_from_its_registry_until_its_report_expires(
        own_redis: PrivateRedis) -> None:
    r = own_redis.client()
    r.flushall()
    for writer, ttl in (("vm:1", 60), ("vm:2", 1)):
        pipe = r.pipeline(transaction=False)
        pipe.set(failure_key(writer), failure_value("OperationalError: down", datetime.now(UTC), writer), px=ttl * 1000)
        registry.register(pipe, FAILING_KEY, writer, time.time())
        pipe.execute()
    assert sorted(json.loads(x)["writer"] for x in view(own_redis)["audit_failures"]) == ["vm:1", "vm:2"]
    r.delete(failure_key("vm:2"))  # as its TTL would
    assert [json.loads(x)["writer"] for x in view(own_redis)["audit_failures"]] == ["vm:1"]


def test_health_runs_the_same_commands_beside_20000_of_zeros_keys_as_beside_none_and_no_scan(
        own_redis: PrivateRedis) -> None:
    r = own_redis.client()
    r.flushall()
    beat(r, "w1@a")
    alone = commands_of(r, lambda: view(own_redis))
    fill(r, ZERO_KEYS)
    beside_zero = commands_of(r, lambda: view(own_redis))
    assert "cmdstat_scan" not in beside_zero
    assert beside_zero == alone


def test_a_name_silent_for_a_day_leaves_the_registry_at_the_next_write(own_redis: PrivateRedis) -> None:
    r = own_redis.client()
    r.flushall()
    now = time.time()
    registry.register(r, keys.WORKERS_KEY, "old@x", now - registry.REGISTRY_KEEP_S - 1)
    registry.register(r, keys.WORKERS_KEY, "new@y", now)
    assert registry.names(r, keys.WORKERS_KEY) == ["new@y"]

