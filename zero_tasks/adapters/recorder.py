"""Recording a decision: kept in the outbox, queued for the audit and announced on
chan:trade_update in one atomic step (see outbox.py: the first decision of a message
wins); the execution_log row is written from the audit stream by audit_writer.py.

A Redis that is down raises DecisionNotRecorded: the task is then not acknowledged and
runs again once Redis is back, completing what is missing. A database that is down
loses nothing: the decision waits in the stream until the writer can write it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from zero_tasks.adapters import outbox
from zero_tasks.adapters.metrics import observe_decision
from zero_tasks.adapters.runtime import Runtime
from zero_tasks.core.record import DecisionRecord, log_decision
from zero_tasks.core.snapshot import Snapshot

T = TypeVar("T")


class DecisionNotRecorded(Exception):
    """Redis was unavailable: the decision is not kept yet; the task must run again."""


def record(rt: Runtime, rec: DecisionRecord) -> DecisionRecord:
    """Keep, queue for audit and announce one decision; returns the decision that counts."""
    try:
        rec, published = outbox.keep_and_announce(rt.redis, rec, rt.settings.task_signing_key.get_secret_value())
    except redis.RedisError as exc:
        raise DecisionNotRecorded(f"{rec.event_key}: redis unavailable ({type(exc).__name__})") from exc
    if published:
        log_decision(rec)
        observe_decision(rt.redis, rec, rt.broker.drain_timings())
    return rec


def _read_or_not_recorded(event_key: str, read: Callable[[], T]) -> T:
    """A read that decides whether to decide: Redis down means try again later, not guess."""
    try:
        return read()
    except redis.RedisError as exc:
        raise DecisionNotRecorded(f"{event_key}: redis unavailable ({type(exc).__name__})") from exc


def complete_or_snapshot(rt: Runtime, event_key: str, ticker: str) -> Snapshot | None:
    """The first read of a decision, one round trip: None when the message is already
    decided (it is then only completed); otherwise the veto's snapshot for `ticker`."""
    existing, snap = _read_or_not_recorded(event_key, lambda: outbox.find_with_snapshot(rt.redis, event_key, ticker))
    if existing is None:
        return snap
    record(rt, existing)
    return None


def complete_if_decided(rt: Runtime, event_key: str) -> bool:
    """A message that already has a decision is only completed, never decided again."""
    existing = _read_or_not_recorded(event_key, lambda: outbox.find(rt.redis, event_key))
    if existing is not None:
        record(rt, existing)
    return existing is not None
