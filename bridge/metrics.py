"""GET /metrics: the bridge's own counters plus the workers' numbers kept in Redis.

Each scrape reads the shared metric hashes and the health checks once (async), then
renders them with prometheus_client's own metric families and text format.
"""

from __future__ import annotations

from typing import Any, Iterator

import redis.asyncio as aioredis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from zero_tasks.adapters import metrics
from zero_tasks.secrets import scrub

QUEUES = ("zero_execution", "zero_audit")


class Snapshot(Collector):
    """The numbers read for one scrape, as Prometheus metric families."""

    def __init__(self, stored: dict[str, dict[str, str]], health: dict[str, Any], queues: dict[str, int]) -> None:
        self.stored = stored
        self.health = health
        self.queues = queues

    def collect(self) -> Iterator[Any]:
        yield from self._decisions()
        yield from self._latencies()
        yield from self._gauges()

    def _decisions(self) -> Iterator[Any]:
        decisions = CounterMetricFamily("zero_decisions", "Decisions by status and reason class",
                                        labels=["status", "reason"])
        submitted = 0.0
        for key, count in self.stored.get(metrics.DECISIONS, {}).items():
            status, _, reason = key.partition("|")
            decisions.add_metric([scrub(status), scrub(reason)], float(count))  # stored by any worker
            submitted += float(count) if status == "SUBMITTED" else 0.0
        yield decisions
        yield CounterMetricFamily("zero_orders_submitted", "Orders the broker accepted", value=submitted)

    def _latencies(self) -> Iterator[Any]:
        raw = self.stored.get(metrics.DECISION_LATENCY, {})
        family = HistogramMetricFamily("zero_signal_to_decision_ms", "Bridge receipt to decision, milliseconds")
        buckets, total, _ = metrics.histogram(raw)
        family.add_metric([], buckets, total)
        yield family
        broker_raw = self.stored.get(metrics.BROKER_LATENCY, {})
        calls = sorted({k.split("|", 1)[0] for k in broker_raw if "|" in k})
        broker = HistogramMetricFamily("zero_broker_latency_ms", "Alpaca API call latency, milliseconds",
                                       labels=["call"])
        for call in calls:
            buckets, total, _ = metrics.histogram(broker_raw, call)
            broker.add_metric([scrub(call)], buckets, total)
        yield broker

    def _gauges(self) -> Iterator[Any]:
        checks = self.health.get("checks", {})
        up = GaugeMetricFamily("zero_dependency_up", "1 when the dependency answers", labels=["dependency"])
        for name in ("redis", "database", "broker"):
            up.add_metric([name], 1.0 if checks.get(name, {}).get("ok") else 0.0)
        yield up
        yield GaugeMetricFamily("zero_execution_enabled", "Kill switch: 1 only when exactly 'true'",
                                value=1.0 if self.health.get("execution_enabled") else 0.0)
        yield GaugeMetricFamily("zero_circuit_breaker_open", "1 while the circuit breaker is open",
                                value=0.0 if checks.get("circuit_breaker", {}).get("ok", True) else 1.0)
        yield GaugeMetricFamily("zero_workers_alive", "Workers with a fresh heartbeat",
                                value=float(checks.get("workers", {}).get("alive", 0)))
        depth = GaugeMetricFamily("zero_queue_depth", "Tasks waiting in the Celery queue", labels=["queue"])
        for queue, n in self.queues.items():
            depth.add_metric([queue], float(n))
        yield depth
        yield GaugeMetricFamily("zero_audit_backlog", "Decisions not yet written to execution_log",
                                value=float(self.health.get("audit_backlog") or 0))
        yield GaugeMetricFamily("zero_in_flight", "Messages handed to the worker queue and not decided yet",
                                value=float(self.health.get("in_flight") or 0))


async def read_stored(redis_url: str, broker_url: str) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
    try:
        stored = {key: await client.hgetall(key)
                  for key in (metrics.DECISIONS, metrics.DECISION_LATENCY, metrics.BROKER_LATENCY)}
    finally:
        await client.aclose()
    return stored, await queue_depths(broker_url)


async def queue_depths(broker_url: str) -> dict[str, int]:
    """LLEN of the Celery queues when the broker is Redis (RabbitMQ: use its own metrics)."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return {}
    client = aioredis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=1)
    try:
        return {queue: int(await client.llen(queue)) for queue in QUEUES}
    finally:
        await client.aclose()


def render(snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry()
    registry.register(snapshot)
    return generate_latest(REGISTRY) + generate_latest(registry)
