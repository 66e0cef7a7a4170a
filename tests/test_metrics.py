"""Decision metrics kept in Redis (zero_tasks/adapters/metrics.py), read back as /metrics shows them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

import pytest
import redis

from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import redis_db
from zero_tasks.adapters import metrics
from zero_tasks.core.decision import Code, Status
from zero_tasks.core.record import DecisionRecord

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=timezone.utc)


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = private_redis.client(db=redis_db(__name__))
    client.flushdb()
    yield client
    client.close()


def decision(n: int) -> DecisionRecord:
    return DecisionRecord(event_key=f"m:{n}", time=NOW, decided_at=NOW, status=Status.SUBMITTED,
                          reason=f"{Code.SUBMITTED.value}: 1 share SPY", market_state_snapshot=None,
                          execution_id="SPY:H30:x", ticker="SPY", horizon="H30", probability=0.95,
                          opportunity_score=95.0, why=["submitted"], payload=None)


def stored(r: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(key).items()}


def test_latencies_read_back_as_a_cumulative_histogram(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    metrics.queue_decision_metrics(pipe, [], [("submit", 0.5), ("submit", 3.0), ("submit", 7.0), ("submit", 20_000.0)])
    pipe.execute()
    buckets, total, count = metrics.histogram(stored(r, metrics.BROKER_LATENCY), "submit")
    by_bound = dict(buckets)
    assert (by_bound["1"], by_bound["2.5"], by_bound["5"], by_bound["10"], by_bound["10000"], by_bound["+Inf"]) == \
        (1, 1, 2, 3, 3, 4)
    assert (total, count) == (20_010.5, 4)


def test_a_decision_with_three_broker_calls_is_a_handful_of_commands(r: redis.Redis) -> None:
    """One bucket per observation: 60 commands per order before, when every bucket at or above
    the value was incremented."""
    pipe = r.pipeline(transaction=False)
    metrics.queue_decision_metrics(pipe, [decision(1)], [("position", 1.0), ("open_orders", 1.0), ("submit", 1.2)])
    assert len(pipe.command_stack) <= 14
    pipe.execute()
    assert stored(r, metrics.DECISIONS) == {"SUBMITTED|submitted": "1"}


def test_cumulative_buckets_written_by_earlier_versions_still_count(r: redis.Redis) -> None:
    legacy = {f"le:{b}": (2 if b < 25 else 3) for b in metrics.LATENCY_BUCKETS_MS if b >= 5}  # 4, 4 and 20 ms
    r.hset(metrics.DECISION_LATENCY, mapping={**legacy, "count": 3, "sum": 28})
    observe = r.pipeline(transaction=False)
    metrics.queue_decision_metrics(observe, [decision(2)])  # decided at once: 0 ms, the first bucket
    observe.execute()
    buckets, total, count = metrics.histogram(stored(r, metrics.DECISION_LATENCY))
    by_bound = dict(buckets)
    assert (by_bound["1"], by_bound["5"], by_bound["25"], by_bound["10000"], by_bound["+Inf"]) == (1, 3, 4, 4, 4)
    assert (total, count) == (28, 4)
