"""Where the time goes, without touching the gateway: a short traced run with Redis MONITOR.

Every Redis command (server timestamp, µs) is matched to the signal it belongs to by its
keys: the bridge's message claim, the Celery LPUSH, the worker's first read of the
decision outbox (the task has started in a pool process), the snapshot MGET, the claim,
the outbox write, the TradeUpdate PUBLISH; plus the simulator's stamps (first broker
call for the ticker, the order). MONITOR slows Redis a little: these numbers are a
profile of the path, the untraced run gives the latency.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bridge.dedup import content_hash

from .common import (
    OPPORTUNITY_CHANNEL,
    TRADE_UPDATE_CHANNEL,
    Signal,
    Tickers,
    ms,
    reset_risk_counters,
    set_green,
    summary,
)
from .gateway import _publish, next_decision
from .stack import EventCollector, GatewayProcs, Stack


class Monitor(threading.Thread):
    def __init__(self, stack: Stack) -> None:
        super().__init__(name="bench-monitor", daemon=True)
        self.client = stack.client()
        self.commands: list[tuple[float, str]] = []  # sent by a client: one round trip each
        self.seen: list[tuple[float, str]] = []  # those and the commands scripts ran
        self.lua_commands = 0
        self.stop_flag = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            while not self.stop_flag.is_set():
                try:
                    cmd = monitor.next_command()
                except Exception:  # noqa: BLE001 - connection closed at the end
                    break
                if not cmd:
                    continue
                self.seen.append((cmd["time"], cmd["command"]))
                if cmd.get("client_type") == "lua":
                    self.lua_commands += 1  # a command run inside a script: not a round trip
                else:
                    self.commands.append((cmd["time"], cmd["command"]))

    def stop(self, stack: Stack) -> None:
        self.stop_flag.set()
        stack.client().ping()  # wakes the reader
        self.join(timeout=5)


MILESTONES = [  # (name, how the command is recognised) in path order
    ("bridge claims the message", lambda c, s: "key:execution_bridge_msg:" + s["hash"] in c),
    ("task on the Celery queue (LPUSH)", lambda c, s: c.startswith("LPUSH") and s["execution_id"] in c),
    ("task started in a pool process", lambda c, s: "key:execution_decision:" + s["hash"] + ":" in c),
    ("snapshot read (MGET)", lambda c, s: c.startswith("MGET") and "key:execution_enabled" in c),
    ("execution_id claimed", lambda c, s: "key:execution_seen:" + s["execution_id"] in c),
    ("cooldown reserved", lambda c, s: "key:execution_cooldown:" + s["ticker"] in c),
]
AFTER_ORDER = [
    ("decision kept in the outbox", lambda c, s: "key:execution_decision:" + s["hash"] + ":" in c),
    ("TradeUpdate published", lambda c, s: c.startswith("PUBLISH") and TRADE_UPDATE_CHANNEL in c
     and s["execution_id"] in c),
]


def run(stack: Stack, gw: GatewayProcs, collector: EventCollector, n: int, prefix: str,
        reset_risk: bool = True, timeout_s: float = 10.0, dump: Path | None = None) -> dict[str, Any]:
    r = stack.client()
    set_green(r)
    monitor = Monitor(stack)
    monitor.start()
    monitor.ready.wait(5)
    time.sleep(0.1)
    tickers = Tickers(prefix)
    signals = []
    try:
        for _ in range(n):
            if reset_risk:
                reset_risk_counters(r, stack.state, gw)
            sig = Signal(tickers.next())
            index = collector.count()
            _publish(r, sig.data)
            decision = next_decision(collector, index, timeout_s, sig.execution_id)
            submitted = decision is not None and decision[1]["status"] == "SUBMITTED"
            stamp = stack.state.wait_stamp(sig.client_order_id, 1.0 if submitted else 0.0)
            if stamp and decision:
                signals.append({"ticker": sig.ticker, "execution_id": sig.execution_id,
                                "hash": content_hash(sig.data), "order": stamp[1],
                                "first_call": (stack.state.lookups.get(sig.ticker) or [("", stamp[1])])[0][1]})
            time.sleep(0.005)
    finally:
        monitor.stop(stack)
    commands, seen = monitor.commands, monitor.seen
    if dump:
        dump.write_text("\n".join(f"{t:.6f} {c[:300]}" for t, c in seen))
    # each signal's window: from its PUBLISH on chan:opportunity_update to the next one
    pubs = [(t, c) for t, c in commands if c.startswith("PUBLISH " + OPPORTUNITY_CHANNEL)]
    offsets: dict[str, list[float]] = {}
    for s in signals:
        pub_t = next((t for t, c in pubs if s["execution_id"].split(":")[0] in c), None)
        if pub_t is None:
            continue
        window = [(t, c) for t, c in seen if pub_t <= t <= pub_t + timeout_s]
        for name, match in MILESTONES:
            t = next((t for t, c in window if match(c, s)), None)
            if t is not None:
                offsets.setdefault(name, []).append(ms(t - pub_t))
        offsets.setdefault("first broker call (GET position)", []).append(ms(s["first_call"] - pub_t))
        offsets.setdefault("order created at the broker", []).append(ms(s["order"] - pub_t))
        for name, match in AFTER_ORDER:
            t = next((t for t, c in window if t >= s["order"] and match(c, s)), None)
            if t is not None:
                offsets.setdefault(name, []).append(ms(t - pub_t))
    order = [m[0] for m in MILESTONES] + ["first broker call (GET position)", "order created at the broker"] + \
        [m[0] for m in AFTER_ORDER]
    timeline = [{"milestone": name, "since_publish_ms": summary(offsets.get(name, []))} for name in order]
    round_trips = []
    for s in signals:
        pub_t = next((t for t, c in pubs if s["execution_id"].split(":")[0] in c), None)
        end_t = next((t for t, c in seen if pub_t is not None and t >= pub_t
                      and c.startswith("PUBLISH " + TRADE_UPDATE_CHANNEL) and s["execution_id"] in c), None)
        if pub_t is not None and end_t is not None:
            round_trips.append(sum(1 for t, c in commands if pub_t < t <= end_t))
    return {"n": len(signals), "timeline": timeline,
            "redis_round_trips_publish_to_event": summary(round_trips),
            "note": "Redis commands between the PUBLISH and the TradeUpdate, every client (Celery events, "
                    "heartbeats and the bench's own counter reset included); scripts count once"}
