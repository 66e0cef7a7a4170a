"""Worker-side metrics, kept in Redis so that every worker process on every box adds to
the same numbers, and the bridge's /metrics reads them in one place.

Prometheus' own multiprocess mode needs a directory shared by all processes of one host;
the gateway's workers may run on several boxes, so the counters live where the rest of
the gateway's shared state lives. One pipelined round trip per decision, after the
decision is announced: never on the order's critical path.

A histogram is stored as one count per bucket (`b:<bound>`, the smallest bound the value
fits, `b:+Inf` above them all) and made cumulative when read: one HINCRBY per observation
instead of one per bucket. Cumulative `le:<bound>` fields, which earlier versions wrote,
are still added in when read.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import redis

from zero_tasks.core.lifecycle.outcome import Outcome
from zero_tasks.core.record import DecisionRecord
from zero_tasks.secrets import cut

log = logging.getLogger(__name__)

PREFIX = "key:execution_metrics:"
DECISIONS = PREFIX + "decisions"  # hash "STATUS|reason code" -> count
DECISION_LATENCY = PREFIX + "decision_latency_ms"  # histogram hash
BROKER_LATENCY = PREFIX + "broker_latency_ms"  # histogram hash, field prefix = call name
LAST_DECISION = PREFIX + "last_decision_at"  # ISO time of the newest decision, for /health
OUTCOMES = PREFIX + "outcomes"  # hash "horizon|outcome|exit_via" -> count (outcome "none" when manual)
REALIZED_PNL = PREFIX + "realized_pnl"  # hash horizon -> realized P&L in dollars, summed
LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def reason_code(reason: str) -> str:
    """The label: the reason's stable code, scrubbed before it is cut."""
    return cut(reason.split(":", 1)[0].strip(), 40)


class _Tally:
    """Increments summed per hash field, so a batch of decisions is one HINCRBY per field."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.sums: defaultdict[tuple[str, str], float] = defaultdict(float)

    def observe(self, key: str, value_ms: float, label: str = "") -> None:
        prefix = f"{label}|" if label else ""
        bound = next((str(b) for b in LATENCY_BUCKETS_MS if value_ms <= b), "+Inf")
        self.counts[(key, f"{prefix}b:{bound}")] += 1
        self.counts[(key, f"{prefix}count")] += 1
        self.sums[(key, f"{prefix}sum")] += value_ms

    def queue(self, pipe: Any) -> None:
        for (key, name), n in self.counts.items():
            pipe.hincrby(key, name, n)
        for (key, name), total in self.sums.items():
            pipe.hincrbyfloat(key, name, total)


def queue_decision_metrics(pipe: Any, recs: Iterable[DecisionRecord],
                           broker_calls: Iterable[tuple[str, float]] = ()) -> None:
    """Add the counts of some decisions to a pipeline."""
    tally, newest = _Tally(), None
    for rec in recs:
        tally.counts[(DECISIONS, f"{rec.status.value}|{reason_code(rec.reason)}")] += 1
        newest = rec.decided_at if newest is None else max(newest, rec.decided_at)
        if not rec.event_key.startswith("reconcile:"):
            tally.observe(DECISION_LATENCY, max(rec.latency_ms, 0.0))
    for name, ms in broker_calls:
        tally.observe(BROKER_LATENCY, ms, name)
    tally.queue(pipe)
    if newest is not None:
        pipe.set(LAST_DECISION, newest.isoformat())


def observe_decisions(r: redis.Redis, recs: list[DecisionRecord],
                      broker_calls: Iterable[tuple[str, float]] = ()) -> None:
    """Count some decisions and their latencies, in one round trip. Metrics never fail a decision."""
    try:
        pipe = r.pipeline(transaction=False)
        queue_decision_metrics(pipe, recs, broker_calls)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("metrics not recorded: %s", type(exc).__name__)


def observe_outcome(r: redis.Redis, outcome: Outcome) -> None:
    """Count one execution's outcome and add its realized P&L. Never fails the step."""
    try:
        pipe = r.pipeline(transaction=False)
        pipe.hincrby(OUTCOMES, f"{outcome.horizon}|{outcome.outcome or 'none'}|{outcome.exit_via}", 1)
        if outcome.realized_pnl is not None:
            pipe.hincrbyfloat(REALIZED_PNL, outcome.horizon, outcome.realized_pnl)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("outcome metrics not recorded: %s", type(exc).__name__)


def histogram(raw: dict[str, str], label: str = "") -> tuple[list[tuple[str, float]], float, float]:
    """Cumulative buckets (+Inf last), sum and count of one stored histogram."""
    prefix = f"{label}|" if label else ""
    count = float(raw.get(f"{prefix}count", 0))
    buckets, below = [], 0.0
    for b in LATENCY_BUCKETS_MS:
        below += float(raw.get(f"{prefix}b:{b}", 0))
        buckets.append((str(b), below + float(raw.get(f"{prefix}le:{b}", 0))))
    buckets.append(("+Inf", count))
    return buckets, float(raw.get(f"{prefix}sum", 0.0)), count
