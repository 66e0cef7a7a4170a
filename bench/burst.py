"""The burst: N messages PUBLISHed as fast as one client can (pipelined), then wait until
every one is decided (TradeUpdate) and audited (execution_log row).

Mix: 5% eligible on distinct tickers, 2% malformed, 5% duplicates (an earlier ranking
re-published byte for byte), the rest below the probability threshold; the market state
is flipped to RED for two windows of the stream (30-40% and 70-75%), through the same
pipeline so the flips land in order with the messages.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

from bridge.dedup import content_hash
from zero_tasks.core import keys

from .common import OPPORTUNITY_CHANNEL, Signal, Tickers, letters, market, ms, reset_risk_counters, set_green, summary
from .stack import EventCollector, GatewayProcs, Stack, cpu_by_pid, cpu_delta

CHUNK = 250
QUEUE = "zero_execution"


class _RiskResetter(threading.Thread):
    """Empties the daily-cap and broker-rate counters every 20 ms during the burst."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(name="bench-risk-reset", daemon=True)
        self.r = stack.client()
        self.state = stack.state
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.02):
            with contextlib.suppress(Exception):  # best effort: the next round tries again
                reset_risk_counters(self.r, self.state)


def _plan(n: int, rnd: random.Random, prefix: str) -> tuple[list[bytes], list[str], dict[str, Signal]]:
    n_eligible = max(1, round(n * 0.05))
    n_malformed = max(1, round(n * 0.02))
    n_dup = max(1, round(n * 0.05))
    kinds = (["eligible"] * n_eligible + ["malformed"] * n_malformed + ["duplicate"] * n_dup
             + ["below"] * (n - n_eligible - n_malformed - n_dup))
    rnd.shuffle(kinds)
    # "GSE...": three letters of prefix leave three for 17,576 distinct eligible tickers
    eligible_tickers, below_tickers = Tickers(prefix[:2] + "E"), [f"{prefix}L{letters(i, 2)}" for i in range(50)]
    messages: list[bytes] = []
    signals: dict[str, Signal] = {}  # content hash -> the eligible ranking
    earlier: list[int] = []
    for i in range(len(kinds)):
        if kinds[i] == "duplicate" and not earlier:
            kinds[i] = "below"
        kind = kinds[i]
        if kind == "eligible":
            sig = Signal(eligible_tickers.next())
            signals[content_hash(sig.data)] = sig
            data = sig.data
        elif kind == "below":
            data = Signal(rnd.choice(below_tickers), probability=round(rnd.uniform(0.3, 0.89), 3)).data
        elif kind == "malformed":
            tag = f"{prefix}-{i}".encode()  # unique bytes: the bridge names a message by its content
            data = rnd.choice([b'{"not": "a ranking", "n": "%s"}' % tag, b"\xff\xfe not utf-8 %s" % tag,
                               b'{"rank_time": "2026-01-01T00:00:00Z", "opportunities": [], "n": "%s"}' % tag,
                               b'{"rank_time": "2026-01-01T00:00:00Z", "opportunities": [{"ticker": 7}], "n": "%s"}'
                               % tag])
        else:  # duplicate: an earlier eligible or below-threshold ranking, byte for byte
            data = messages[rnd.choice(earlier)]
        if kind in ("eligible", "below"):
            earlier.append(i)
        messages.append(data)
    return messages, kinds, signals


def _bridge_received(gw: GatewayProcs) -> float | None:
    """Messages the bridge has taken off the channel (its Prometheus counter), or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{gw.api_port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except Exception:  # noqa: BLE001 - diagnostic only
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("zero_bridge_messages_total{")]
    return sum(values) if values else None


def _pubsub_limit(r: Any) -> str | None:
    """Redis disconnects a subscriber whose backlog passes these (hard, soft, soft seconds)."""
    try:
        value = r.config_get("client-output-buffer-limit").get("client-output-buffer-limit", "")
        value = value.decode() if isinstance(value, bytes) else value
        parts = value.split()
        i = parts.index("pubsub")
        hard, soft, secs = (int(x) for x in parts[i + 1:i + 4])
        return f"hard {hard / 2**20:.0f} MB, soft {soft / 2**20:.0f} MB for {secs} s"
    except Exception:  # noqa: BLE001 - diagnostic only
        return None


def _sample_backlog(r: Any) -> tuple[float, int]:
    """(largest pub/sub subscriber output buffer in MB, Celery queue length)."""
    omem = 0
    for client in r.client_list():
        if int(client.get("sub", 0) or 0) > 0:
            omem = max(omem, int(client.get("omem", 0) or 0))
    return omem / 1e6, int(r.llen(QUEUE))


def run(stack: Stack, gw: GatewayProcs, collector: EventCollector, n: int, prefix: str, timeout_s: float,
        seed: int = 11, reset_risk: bool = True) -> dict[str, Any]:
    rnd = random.Random(seed)
    r = stack.client()
    messages, kinds, signals = _plan(n, rnd, prefix)
    flips = {int(n * 0.30): "RED", int(n * 0.40): "GREEN", int(n * 0.70): "RED", int(n * 0.75): "GREEN"}

    # identity of each message as the bridge names it: "<content hash>:<occurrence>"
    occurrences: Counter[str] = Counter()
    ids: list[str] = []
    for data in messages:
        h = content_hash(data)
        occurrences[h] += 1
        ids.append(f"{h}:{occurrences[h]}")
    index_of = {mid: i for i, mid in enumerate(ids)}
    first_index_of_execution = {}
    for i, data in enumerate(messages):
        sig = signals.get(content_hash(data))
        if sig is not None:
            first_index_of_execution.setdefault(sig.execution_id, i)
    publish_t = [0.0] * n

    set_green(r)
    reset_risk_counters(r, stack.state)
    resetter = _RiskResetter(stack) if reset_risk else None
    first_event = collector.count()
    rows_before = gw.row_count()
    bridge_before = _bridge_received(gw)
    cpu_before = gw.cpu_snapshot()
    redis_cpu_before = cpu_by_pid(stack.redis_server.proc.pid)
    if resetter:
        resetter.start()

    unheard = 0
    t_first = time.perf_counter()
    try:
        for start in range(0, n, CHUNK):
            end = min(start + CHUNK, n)
            pipe = r.pipeline(transaction=False)
            publish_slots = []
            for j in range(start, end):
                if j in flips:
                    pipe.set(keys.MARKET_STATE_KEY, market(flips[j]))
                publish_slots.append(len(pipe.command_stack))
                pipe.publish(OPPORTUNITY_CHANNEL, messages[j])
            t = time.perf_counter()
            results = pipe.execute()
            for j in range(start, end):
                publish_t[j] = t
            unheard += sum(1 for slot in publish_slots if int(results[slot]) < 1)
        t_published = time.perf_counter()

        # wait: every message decided (event) and audited (row), bounded in time
        deadline = t_first + timeout_s
        decided: set[str] = set()
        bridge_done = None
        extra_events = 0
        duplicate_events = 0
        parsed = first_event
        status_counts: Counter[str] = Counter()
        by_kind: dict[str, Counter[str]] = {}
        submitted: list[tuple[str, str]] = []
        events_done = rows_done = None
        last_event = t_first
        rows = 0
        max_omem, max_queue, polls = 0.0, 0, 0
        while time.perf_counter() < deadline:
            new = collector.since(parsed)
            parsed += len(new)
            for t, raw in new:
                event = json.loads(raw)
                did = event.get("decision_id")
                if did in decided:
                    duplicate_events += 1
                    continue
                decided.add(did)
                last_event = t
                reason = (event.get("why") or [""])[0].split(":", 1)[0]
                status_counts[f"{event['status']} {reason}"] += 1
                index = index_of.get(did)
                if index is None:  # not named as the bench expects: still a decision, counted
                    extra_events += 1
                    index = first_index_of_execution.get(event.get("execution_id"))
                kind = kinds[index] if index is not None else "unmatched"
                by_kind.setdefault(kind, Counter())[event["status"]] += 1
                if event["status"] == "SUBMITTED" and index is not None:
                    submitted.append((index, event.get("client_order_id") or ""))
            if events_done is None and len(decided) >= n:
                events_done = last_event
            if rows_done is None:
                rows = gw.row_count() - rows_before
                if rows >= n:
                    rows_done = time.perf_counter()
            if events_done is not None and rows_done is not None:
                break
            if polls % 5 == 0:
                omem, qlen = _sample_backlog(r)
                max_omem, max_queue = max(max_omem, omem), max(max_queue, qlen)
                if bridge_done is None and bridge_before is not None:
                    received = _bridge_received(gw)
                    if received is not None and received - bridge_before >= n:
                        bridge_done = time.perf_counter()
            polls += 1
            time.sleep(0.05)
    finally:
        if resetter:
            resetter.stop_flag.set()
            resetter.join(timeout=2)
    complete = events_done is not None and rows_done is not None
    t_done = max(events_done, rows_done) if complete else time.perf_counter()
    cpu_after = gw.cpu_snapshot()
    redis_cpu = cpu_delta(redis_cpu_before, cpu_by_pid(stack.redis_server.proc.pid))
    if not complete:
        rows = gw.row_count() - rows_before
    elapsed = t_done - t_first

    eligible_ms = []
    for index, cid in submitted:
        stamp = stack.state.stamps.get(cid)
        if stamp is not None:
            eligible_ms.append(ms(stamp[0] - publish_t[index]))
    bridge_cpu = cpu_delta(cpu_before["bridge"], cpu_after["bridge"])
    workers_cpu = cpu_delta(cpu_before["workers"], cpu_after["workers"])
    per_k = 1000.0 / max(1, len(decided))
    kind_counts = Counter(kinds)
    return {
        "published": n,
        "mix": dict(kind_counts),
        "unheard_publishes": unheard,
        "publish_s": round(t_published - t_first, 3),
        "publish_rate_per_s": round(n / max(1e-9, t_published - t_first)),
        "complete": complete,
        "timeout_s": timeout_s,
        "decided": len(decided),
        "audited": rows,
        "lost": n - len(decided),
        "unaudited": n - rows,
        "duplicate_events": duplicate_events,
        "unmatched_events": extra_events,
        "bridge_received_all_s": round(bridge_done - t_first, 3) if bridge_done else None,
        "elapsed_s": round(elapsed, 3),
        "events_done_s": round(events_done - t_first, 3) if events_done else None,
        "rows_done_s": round(rows_done - t_first, 3) if rows_done else None,
        "decisions_per_s": round(len(decided) / elapsed, 1) if elapsed > 0 else None,
        "statuses": dict(status_counts.most_common()),
        "status_by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "eligible": kind_counts["eligible"],
        "orders_submitted": len(submitted),
        "eligible_signal_to_order_ms": summary(eligible_ms),
        "max_subscriber_backlog_mb": round(max_omem, 2),
        "pubsub_buffer_limit": _pubsub_limit(r),
        "max_celery_queue": max_queue,
        "risk_counters_reset": reset_risk,
        "cpu_s": {"bridge": round(bridge_cpu, 2), "workers": round(workers_cpu, 2),
                  "redis_server": round(redis_cpu, 2)},
        "cpu_s_per_1000_decisions": {
            "gateway": round((bridge_cpu + workers_cpu) * per_k, 3),
            "bridge": round(bridge_cpu * per_k, 3),
            "workers": round(workers_cpu * per_k, 3),
            "redis_server": round(redis_cpu * per_k, 3),
        },
    }
