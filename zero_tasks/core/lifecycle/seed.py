"""The lifecycle record an entry starts with, from its SUBMITTED decision.

Made where the decision is kept (adapters/outbox.py: one Lua script keeps the decision and
seeds its lifecycle together), so no SUBMITTED entry ever lacks one; and by the periodic
reconcile from the audit row when Redis lost it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from zero_tasks.core.decision import Status
from zero_tasks.core.lifecycle.state import LifecycleRecord, Policy
from zero_tasks.core.record import DecisionRecord


def rank_time_of(execution_id: str) -> datetime | None:
    """The ranking's time, the last part of ZERO's execution_id (`SPY:H30:2026-11-24T14:30:00`, UTC)."""
    parts = execution_id.split(":", 2)
    if len(parts) != 3:
        return None
    try:
        return datetime.strptime(parts[2], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _number(payload: dict[str, Any] | None, name: str) -> float | None:
    value = (payload or {}).get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def seed_of(rec: DecisionRecord, policy: Policy = Policy.ZERO) -> LifecycleRecord | None:
    """The lifecycle of a SUBMITTED entry, or None for any other decision."""
    if rec.status is not Status.SUBMITTED or rec.intent != "entry":
        return None
    return seed_from(rec.execution_id, rec.ticker, rec.horizon, rec.probability, rec.opportunity_score,
                     rec.payload, rec.event_key, policy)


def seed_from(execution_id: str, ticker: str, horizon: str, probability: float | None,
              opportunity_score: float | None, payload: dict[str, Any] | None, event_key: str,
              policy: Policy = Policy.ZERO) -> LifecycleRecord | None:
    """The lifecycle of an entry from its decision's fields (the outbox's record, or its
    audit row for the reconcile's reseed); None when they cannot make one."""
    rank_time = rank_time_of(execution_id)
    target_atr, stop_atr = _number(payload, "target_atr"), _number(payload, "stop_atr")
    if rank_time is None or target_atr is None or stop_atr is None:
        return None
    return LifecycleRecord(execution_id, ticker, horizon, probability, opportunity_score, target_atr, stop_atr,
                           rank_time, policy, event_key)


def with_exits_recorded(rec: LifecycleRecord, decisions: list[tuple[str, str, str | None]]) -> LifecycleRecord:
    """A reseeded lifecycle told what its exit decisions already recorded in the audit
    (`(event_key, status, alpaca_order_id)` of its `#protect`, `#exit`, `#protect-deferred`
    and `#exit-deferred` rows): Redis lost the outbox that keeps each decision once, so a
    decision the record did not know of would be recorded (and announced) a second time when
    its order is found."""
    for event_key, status, order_id in decisions:
        kind = event_key.rsplit("#", 1)[-1] if "#" in event_key else ""
        if kind == "protect" and status == Status.SUBMITTED.value and order_id:
            rec = rec.but(protect_order_id=order_id)
        elif kind == "protect" and status in (Status.SKIPPED.value, Status.REJECTED.value):
            rec = rec.but(protect_skipped=True)
        elif kind == "exit" and status == Status.SUBMITTED.value:
            rec = rec.but(sell_recorded=True)
        elif kind == "exit" and status == Status.REJECTED.value:  # the broker refused the sale: not sent again
            rec = rec.but(handed_over="horizon sell refused by the broker")
        elif kind == "protect-deferred":
            rec = rec.but(protect_deferred=True)
        elif kind == "exit-deferred":
            rec = rec.but(exit_deferred=True)
        elif kind == "deferred":  # kept before each exit had its own deferral: one said for both
            rec = rec.but(protect_deferred=True, exit_deferred=True)
    return rec
