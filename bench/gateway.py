"""The gateway, warm: signal-to-order and signal-to-decision latency, one signal at a time.

signal-to-order: PUBLISH on chan:opportunity_update -> the simulator creates the order
(stamped inside the simulator's order-creation method, same perf_counter clock).
signal-to-decision: PUBLISH -> the TradeUpdate arrives on chan:trade_update.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from typing import Any

import redis

from .common import OPPORTUNITY_CHANNEL, Signal, Tickers, letters, ms, reset_risk_counters, set_green, summary
from .stack import EventCollector, GatewayProcs, Stack, cpu_by_pid, cpu_delta


def next_decision(collector: EventCollector, index: int, timeout: float,
                  execution_id: str | None = None) -> tuple[float, dict[str, Any], int] | None:
    """The first TradeUpdate from `index` on (for `execution_id` when given)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        event = collector.wait_event(index, remaining)
        if event is None:
            return None
        index += 1
        data = json.loads(event[1])
        if execution_id is None or data.get("execution_id") == execution_id:
            return event[0], data, index


def _publish(r: redis.Redis, data: bytes) -> None:
    if r.publish(OPPORTUNITY_CHANNEL, data) < 1:
        raise RuntimeError("nobody is subscribed to chan:opportunity_update (bridge down?)")


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def signal_to_order(stack: Stack, gw: GatewayProcs, collector: EventCollector, n: int, warmup: int,
                    prefix: str, timeout_s: float = 10.0, reset_risk: bool = True) -> dict[str, Any]:
    r = stack.client()
    tickers = Tickers(prefix)
    to_order: list[float] = []
    to_event: list[float] = []
    timeouts = 0
    statuses: dict[str, int] = {}
    measured: list[dict[str, Any]] = []
    set_green(r)
    cpu_before: dict[str, Any] = {}
    for i in range(warmup + n):
        if i == warmup:
            cpu_before = {**gw.cpu_snapshot(), "redis": cpu_by_pid(stack.redis_server.proc.pid)}
        if i % 50 == 0:
            set_green(r)
        if reset_risk:
            reset_risk_counters(r, stack.state, gw)
        sig = Signal(tickers.next())
        index = collector.count()
        wall0, t0 = time.time(), time.perf_counter()
        _publish(r, sig.data)
        # the TradeUpdate follows the order: wait for the decision, then read the order's stamp
        decision = next_decision(collector, index, timeout_s, sig.execution_id)
        submitted = decision is not None and decision[1]["status"] == "SUBMITTED"
        stamp = stack.state.wait_stamp(sig.client_order_id, 1.0 if submitted else 0.0)
        if i < warmup:
            continue
        status = decision[1]["status"] if decision else "TIMEOUT"
        statuses[status] = statuses.get(status, 0) + 1
        if stamp is None:
            timeouts += 1
            continue
        to_order.append(ms(stamp[0] - t0))
        if decision is not None:
            to_event.append(ms(decision[0] - t0))
            lookups = stack.state.lookups.get(sig.ticker) or [("", stamp[1])]
            measured.append({"execution_id": sig.execution_id, "publish_wall": wall0,
                             "first_broker_call": lookups[0][1], "order_wall": stamp[1],
                             "event_wall": wall0 + (decision[0] - t0)})
    return {
        "cpu_ms_per_signal": _cpu_per_signal(stack, gw, cpu_before, n) if n else None,
        "signal_to_order_ms": summary(to_order),
        "signal_to_submitted_event_ms": summary(to_event),
        "timeouts": timeouts,
        "statuses": statuses,
        "breakdown_ms": breakdown(gw, measured),
    }


def first_signals(stack: Stack, gw: GatewayProcs, collector: EventCollector, count: int, prefix: str,
                  reset_risk: bool = True) -> list[float | None]:
    """Signal-to-order of the first `count` signals after the gateway said it was ready, one
    at a time: one per pool process, so each process's first message is in the list (a
    process that builds its runtime at its first message shows here, not in the p50)."""
    out: list[float | None] = []
    for i in range(count):
        one = signal_to_order(stack, gw, collector, 1, 0, f"{prefix}{letters(i, 1)}", reset_risk=reset_risk)
        out.append(one["signal_to_order_ms"]["p50"])
    return out


def first_signal_figure(first: list[float | None], p50: float | None) -> dict[str, Any]:
    """The first signal after start beside the p50 of those that follow it."""
    head = first[0] if first else None
    measured = [v for v in first if v is not None]
    return {"first_ms": head, "first_per_process_ms": first, "following_p50_ms": p50,
            "first_over_p50": round(head / p50, 2) if head and p50 else None,
            "slowest_first_over_p50": round(max(measured) / p50, 2) if measured and p50 else None}


def _cpu_per_signal(stack: Stack, gw: GatewayProcs, before: dict[str, Any], n: int) -> dict[str, float]:
    """CPU time (user + system) the gateway spent per signal, all of its work on it included
    (audit, event, follow-up): what the gateway costs, beside how long it takes."""
    after = gw.cpu_snapshot()
    bridge = cpu_delta(before["bridge"], after["bridge"]) * 1000 / n
    workers = cpu_delta(before["workers"], after["workers"]) * 1000 / n
    redis_ms = cpu_delta(before["redis"], cpu_by_pid(stack.redis_server.proc.pid)) * 1000 / n
    return {"gateway": round(bridge + workers, 3), "bridge": round(bridge, 3), "workers": round(workers, 3),
            "redis_server": round(redis_ms, 3)}


def breakdown(gw: GatewayProcs, measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Each leg of signal -> order -> event, from wall-clock stamps taken without touching the
    gateway: the audit row's `time` (bridge receipt) and `decided_at`, the simulator's first
    broker call for the ticker (position lookup) and its order creation, the event's arrival."""
    if not measured:
        return {}
    rows = {row["execution_id"]: row for row in gw.rows_for([m["execution_id"] for m in measured])
            if row["status"] == "SUBMITTED"}
    legs: dict[str, list[float]] = {"publish_to_bridge": [], "bridge_to_first_broker_call": [],
                                    "exposure_checks_to_order": [], "order_to_decided": [], "decided_to_event": []}
    for m in measured:
        row = rows.get(m["execution_id"])
        if row is None:
            continue
        received = _as_utc(row["time"]).timestamp()
        decided = _as_utc(row["decided_at"]).timestamp()
        legs["publish_to_bridge"].append(ms(received - m["publish_wall"]))
        legs["bridge_to_first_broker_call"].append(ms(m["first_broker_call"] - received))
        legs["exposure_checks_to_order"].append(ms(m["order_wall"] - m["first_broker_call"]))
        legs["order_to_decided"].append(ms(decided - m["order_wall"]))
        legs["decided_to_event"].append(ms(m["event_wall"] - decided))
    return {name: summary(values) for name, values in legs.items()}


def signal_to_decision(stack: Stack, collector: EventCollector, n: int, prefix: str,
                       timeout_s: float = 10.0, seed: int = 7) -> dict[str, Any]:
    """BLOCKED / SKIPPED decisions: below threshold, expired, duplicate, malformed."""
    rnd = random.Random(seed)
    r = stack.client()
    tickers = Tickers(prefix)
    eligible: list[Signal] = []
    by_kind: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    timeouts = 0
    set_green(r)
    # a few rankings that are then re-published (the duplicates); their own decisions are not counted
    for _ in range(3):
        reset_risk_counters(r, stack.state)
        sig = Signal(tickers.next())
        index = collector.count()
        _publish(r, sig.data)
        if next_decision(collector, index, timeout_s, sig.execution_id):
            eligible.append(sig)
    for i in range(n):
        if i % 50 == 0:
            set_green(r)
        roll = rnd.random()
        exec_id: str | None
        if roll < 0.4:
            kind, sig = "threshold", Signal(tickers.next(), probability=round(rnd.uniform(0.5, 0.89), 3))
            data, exec_id = sig.data, sig.execution_id
        elif roll < 0.6:
            kind, sig = "expired", Signal(tickers.next(), age_s=200)
            data, exec_id = sig.data, sig.execution_id
        elif roll < 0.8 and eligible:
            kind, sig = "duplicate", rnd.choice(eligible)
            data, exec_id = sig.data, sig.execution_id
        else:
            kind, exec_id = "malformed", None
            tag = f"{prefix}-{i}".encode()
            data = rnd.choice([b'{"not": "a ranking", "n": "%s"}' % tag, b"\xff\xfe not utf-8 %s" % tag,
                               b'{"rank_time": "2026-01-01T00:00:00Z", "opportunities": [], "n": "%s"}' % tag])
        index = collector.count()
        t0 = time.perf_counter()
        _publish(r, data)
        decision = next_decision(collector, index, timeout_s, exec_id)
        if decision is None:
            timeouts += 1
            statuses["TIMEOUT"] = statuses.get("TIMEOUT", 0) + 1
            continue
        latency = ms(decision[0] - t0)
        latencies.append(latency)
        by_kind.setdefault(kind, []).append(latency)
        key = f"{decision[1]['status']} {decision[1]['why'][0].split(':', 1)[0]}"
        statuses[key] = statuses.get(key, 0) + 1
    return {"decision_ms": summary(latencies), "by_kind_ms": {k: summary(v) for k, v in sorted(by_kind.items())},
            "statuses": statuses, "timeouts": timeouts}
