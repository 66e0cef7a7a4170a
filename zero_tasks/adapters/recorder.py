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
from zero_tasks.adapters.metrics import observe_decisions
from zero_tasks.adapters.redis_state import read_hash_fields_and_snapshots
from zero_tasks.adapters.runtime import Runtime
from zero_tasks.core.record import DecisionRecord, log_decision
from zero_tasks.core.snapshot import Snapshot

T = TypeVar("T")


class DecisionNotRecorded(Exception):
    """Redis was unavailable: the decision is not kept yet; the task must run again."""


def record(rt: Runtime, rec: DecisionRecord) -> DecisionRecord:
    """Keep, queue for audit and announce one decision; returns the decision that counts."""
    (kept,) = record_many(rt, [rec])
    return kept


def record_many(rt: Runtime, recs: list[DecisionRecord]) -> list[DecisionRecord]:
    """`record` for the decisions of a batch, in one round trip: each still kept, queued and
    announced atomically (the first decision of its message wins)."""
    if not recs:
        return []
    try:
        results = outbox.keep_and_announce_many(rt.redis, recs, rt.settings.task_signing_key.get_secret_value())
    except redis.RedisError as exc:
        raise DecisionNotRecorded(f"{recs[0].event_key}: redis unavailable ({type(exc).__name__})") from exc
    published = [kept for kept, sent in results if sent]
    for kept in published:
        log_decision(kept)
    if published:
        observe_decisions(rt.redis, published, rt.broker.drain_timings())
    return [kept for kept, _ in results]


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


def complete_or_snapshots(rt: Runtime,
                          items: list[tuple[str, str | None]]) -> list[tuple[bool, Snapshot | None]]:
    """`complete_or_snapshot` for a batch of (event_key, ticker or None), one round trip:
    for each, whether it is decided already (then completed here, in one write) and its
    snapshot (None for an item that names no ticker: an invalid message needs none)."""
    reads = _read_or_not_recorded(items[0][0], lambda: read_hash_fields_and_snapshots(
        rt.redis, [(outbox.decision_key(key), "record") for key, _ in items], [ticker for _, ticker in items]))
    existing = [DecisionRecord.from_json(stored) for stored, _ in reads if stored]
    record_many(rt, existing)
    return [(bool(stored), snap) for stored, snap in reads]


def complete_if_decided(rt: Runtime, event_key: str) -> bool:
    """A message that already has a decision is only completed, never decided again."""
    existing = _read_or_not_recorded(event_key, lambda: outbox.find(rt.redis, event_key))
    if existing is not None:
        record(rt, existing)
    return existing is not None
