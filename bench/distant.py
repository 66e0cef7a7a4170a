"""The broker at a distance: the same measurements with every broker request held by the
simulator for `delay_ms` before it is answered, as a broker across the internet would be.

On loopback the simulator answers in a fraction of a millisecond, so the gateway's own
steps (queue hop, Redis, audit) dominate every ratio. Alpaca's paper API is some 10-40 ms
from a trader's box or a cloud VM, and then the round trips to the broker dominate: this
phase shows what a user feels. Floor, contract floor and direct baseline are measured at
the same distance in the same run, before the gateway phases (the direct baseline listens
on the gateway's channel, so it cannot run beside a gateway).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import direct as direct_mod
from . import floor as floor_mod
from . import gateway as gateway_mod
from .stack import EventCollector, GatewayProcs, Stack

DELAY_MS = 20.0


@contextmanager
def broker_at(stack: Stack, delay_ms: float) -> Iterator[None]:
    """Every trading request (not the simulator's admin API) waits `delay_ms` first."""
    stack.state.add_fault({"mode": "slow", "count": -1, "delay": delay_ms / 1000})
    try:
        yield
    finally:
        stack.state.clear_faults()


def baselines(stack: Stack, n: int, warmup: int, delay_ms: float = DELAY_MS) -> dict[str, Any]:
    with broker_at(stack, delay_ms):
        direct = direct_mod.measure(stack, n, warmup, prefix="DD")  # resets the simulator: held again below
    with broker_at(stack, delay_ms):
        floor = floor_mod.measure(stack, n)
    return {"delay_ms": delay_ms, "floor": floor, "direct": direct}


def gateway(stack: Stack, gw: GatewayProcs, collector: EventCollector, n: int, warmup: int, prefix: str,
            reset_risk: bool, delay_ms: float = DELAY_MS) -> dict[str, Any]:
    with broker_at(stack, delay_ms):
        return gateway_mod.signal_to_order(stack, gw, collector, n, warmup, prefix, reset_risk=reset_risk)


def ratios(gateway_latency: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    p50 = (gateway_latency.get("signal_to_order_ms") or {}).get("p50")
    floor, direct = measured["floor"], (measured["direct"].get("signal_to_order_ms") or {}).get("p50")
    if not p50:
        return {}
    return {
        "p50_over_floor_sum": round(p50 / floor["sum_p50_ms"], 2),
        "p50_over_direct_p50": round(p50 / direct, 2) if direct else None,
        "p50_over_contract_floor": round(p50 / floor["contract_sum_p50_ms"], 2),
    }
