"""GET /metrics: the bridge's own counters plus the gateway-wide numbers kept in Redis.

Each scrape reads the shared metric hashes and the health checks once (async), then
renders them with prometheus_client's own metric families and text format. Durations are
in seconds (`_seconds`), counters end in `_total`.

Several bridges, one set of numbers: the gateway-wide series (the workers' decision counts
and latencies, the queues, the kill switch, the breaker, the heartbeats) are read from
Redis and are the same whichever bridge serves them, so only one bridge at a time
exports them: the one holding the lease `EXPORTER_KEY` (taken with SET NX, renewed at
every scrape it serves, EXPORTER_TTL_S). The others serve only their own series
(`zero_bridge_*`, `zero_dependency_up`, process_*). `sum()` over bridges therefore counts
each decision once; `zero_bridge_gateway_exporter` says which bridge exports.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator
from typing import Any, cast

import redis.asyncio as aioredis
from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from zero_tasks.adapters import metrics
from zero_tasks.secrets import scrub

from .read_clients import ReadClients

QUEUES = ("zero_execution", "zero_audit")
EXPORTER_KEY = metrics.PREFIX + "exporter"  # which bridge exports the gateway-wide series
EXPORTER_TTL_S = 45  # three scrapes at compose's 15 s: a stopped exporter is replaced within 45 s
ROLE = "role"  # in the stored numbers: {"exporter": "1"} when this bridge holds the lease

disable_created_metrics()  # no `_created` series beside every counter: not part of the documented list


def bridge_id() -> str:
    """This bridge process, as the lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


def seconds(buckets: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Bucket bounds stored in milliseconds, as the `le` of a `_seconds` histogram."""
    return [(bound if bound == "+Inf" else repr(float(bound) / 1000), n) for bound, n in buckets]


class Snapshot(Collector):
    """The numbers read for one scrape, as Prometheus metric families."""

    def __init__(self, stored: dict[str, dict[str, str]], health: dict[str, Any], queues: dict[str, int]) -> None:
        self.stored = stored
        self.health = health
        self.queues = queues

    @property
    def exporter(self) -> bool:
        return self.stored.get(ROLE, {}).get("exporter") == "1"

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("zero_bridge_gateway_exporter",
                                "1 when this bridge exports the gateway-wide series (one bridge at a time)",
                                value=1.0 if self.exporter else 0.0)
        yield from self._dependencies()
        if self.exporter:
            yield from self._decisions()
            yield from self._outcomes()
            yield from self._latencies()
            yield from self._gauges()

    def _dependencies(self) -> Iterator[Any]:
        """This bridge's own view: each bridge probes its dependencies itself."""
        checks = self.health.get("checks", {})
        up = GaugeMetricFamily("zero_dependency_up", "1 when the dependency answers this bridge",
                               labels=["dependency"])
        for name in ("redis", "database", "broker"):
            up.add_metric([name], 1.0 if checks.get(name, {}).get("ok") else 0.0)
        yield up

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

    def _outcomes(self) -> Iterator[Any]:
        """The position lifecycle: outcomes per horizon, label and exit, and realized P&L."""
        outcomes = CounterMetricFamily("zero_execution_outcomes", "Executions flat again, by horizon, outcome "
                                       "(PASS, FAIL, EXPIRED; none when sold by someone else) and exit",
                                       labels=["horizon", "outcome", "exit_via"])
        for key, count in self.stored.get(metrics.OUTCOMES, {}).items():
            horizon, outcome, via = [*key.split("|"), "", ""][:3]
            outcomes.add_metric([scrub(horizon), scrub(outcome), scrub(via)], float(count))
        yield outcomes
        pnl = GaugeMetricFamily("zero_realized_pnl_dollars", "Realized P&L of the gateway's own exits, dollars",
                                labels=["horizon"])
        for horizon, total in self.stored.get(metrics.REALIZED_PNL, {}).items():
            pnl.add_metric([scrub(horizon)], float(total))
        yield pnl

    def _latencies(self) -> Iterator[Any]:
        raw = self.stored.get(metrics.DECISION_LATENCY, {})
        family = HistogramMetricFamily("zero_signal_to_decision_seconds", "Bridge receipt to decision, seconds")
        buckets, total, _ = metrics.histogram(raw)
        family.add_metric([], seconds(buckets), total / 1000)
        yield family
        broker_raw = self.stored.get(metrics.BROKER_LATENCY, {})
        calls = sorted({k.split("|", 1)[0] for k in broker_raw if "|" in k})
        broker = HistogramMetricFamily("zero_broker_call_duration_seconds", "Alpaca API call duration, seconds",
                                       labels=["call"])
        for call in calls:
            buckets, total, _ = metrics.histogram(broker_raw, call)
            broker.add_metric([scrub(call)], seconds(buckets), total / 1000)
        yield broker

    def _gauges(self) -> Iterator[Any]:
        checks = self.health.get("checks", {})
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
        yield from self._mirror()

    def _mirror(self) -> Iterator[Any]:
        """The account mirror (core/mirror.status_view), when Redis answered."""
        mirror = self.health.get("mirror")
        if not mirror:
            return
        yield GaugeMetricFamily("zero_mirror_leader", "1 while a mirror consumer holds the lease",
                                value=1.0 if mirror.get("leader") else 0.0)
        yield GaugeMetricFamily("zero_mirror_in_sync", "1 while row 9 may answer from the mirror",
                                value=1.0 if mirror.get("in_sync") else 0.0)
        last = mirror.get("last_event_age_s")
        yield GaugeMetricFamily("zero_mirror_last_event_age_seconds",
                                "Seconds since the mirror's last trade update (NaN: none yet)",
                                value=float(last) if last is not None else math.nan)
        yield CounterMetricFamily("zero_mirror_resyncs", "REST snapshots taken at a (re)connect",
                                  value=float(mirror.get("resyncs", 0)))
        yield CounterMetricFamily("zero_mirror_events", "Trade updates applied", value=float(mirror.get("events", 0)))
        yield CounterMetricFamily("zero_mirror_refused_writes", "Writes of a deposed leader refused by the fence",
                                  value=float(mirror.get("refused_writes", 0)))
        answers = CounterMetricFamily("zero_exposure_answers", "Row 9 (exposure) from the mirror or by REST",
                                      labels=["source"])
        answers.add_metric(["mirror"], float(mirror.get("row9_from_mirror", 0)))
        answers.add_metric(["rest"], float(mirror.get("row9_from_rest", 0)))
        yield answers


async def read_stored(clients: ReadClients) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """The gateway-wide numbers when this bridge is (or now becomes) the exporter; else none."""
    client = clients.text()
    if not await _hold_exporter_lease(client):
        return {}, {}
    stored: dict[str, dict[str, str]] = {
        key: cast(dict[str, str], await client.hgetall(key))  # decode_responses: str, not bytes
        for key in (metrics.DECISIONS, metrics.DECISION_LATENCY, metrics.BROKER_LATENCY, metrics.OUTCOMES,
                    metrics.REALIZED_PNL)}
    stored[ROLE] = {"exporter": "1"}
    return stored, await queue_depths(clients.queues())


async def _hold_exporter_lease(client: aioredis.Redis) -> bool:
    """Take the lease when free, renew it when ours. A renewal racing an expiry at worst
    extends the new holder's lease; two exporters would need a scrape of each inside the
    same instant of a hand-over."""
    me = bridge_id()
    if await client.set(EXPORTER_KEY, me, nx=True, ex=EXPORTER_TTL_S):
        return True
    if await client.get(EXPORTER_KEY) == me:
        await client.expire(EXPORTER_KEY, EXPORTER_TTL_S)
        return True
    return False


async def queue_depths(client: aioredis.Redis | None) -> dict[str, int]:
    """LLEN of the Celery queues when the broker is Redis (None: RabbitMQ, use its own metrics)."""
    if client is None:
        return {}
    return {queue: int(await client.llen(queue)) for queue in QUEUES}


def render(snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry()
    registry.register(snapshot)
    return generate_latest(REGISTRY) + generate_latest(registry)
