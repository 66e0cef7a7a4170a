"""The circuit breaker, right after the kill switch: while it is open nothing is submitted;
past its cool-off it closes only after a successful broker probe."""

from __future__ import annotations

from datetime import datetime

from zero_tasks.core.decision import Code, Verdict, deny
from zero_tasks.core.snapshot import Snapshot, json_object, operator_time


def check_breaker(snap: Snapshot) -> Verdict | None:
    """While the circuit breaker is open nothing is submitted (it closes after a probe)."""
    if snap.breaker is None:
        return None
    state = json_object(snap.breaker) or {}
    return deny(Code.CIRCUIT_OPEN, f"since {state.get('since', '?')}: {state.get('reason', 'unreadable state')}")


def breaker_probe_due(raw: str | None, now: datetime) -> bool:
    """An open breaker whose cool-off has passed asks for a broker probe before closing.

    An `until` that is not an aware time never makes a probe due: the breaker stays open
    until an operator resets it (fail closed)."""
    state = json_object(raw) if raw else None
    if not state or "until" not in state:
        return False
    until = operator_time(state["until"])
    return isinstance(until, datetime) and until <= now
