"""The decision outbox: a message's decision is kept in Redis, announced and queued for
the audit in one step.

The first decision stored for a message wins. Whoever runs that message again (a
redelivery after a crash, a duplicate delivery, a retry) finds it and only completes
what is missing (the event), so the event and the row always say the same thing, and a
BLOCKED announcement can never be followed by an order for that message.

Keeping the decision, adding it to the audit stream (audit_writer.py turns the stream
into execution_log rows, in batches), publishing its TradeUpdate, marking it sent and
taking the message off the hand-over ledger (bridge/handover.py) is one Lua script
(lua/keep_and_announce.lua): atomic, so a crash can never leave a decision announced twice,
kept but never announced, or announced but never audited; and one round trip.

Recording a decision (`record`): a Redis that is down raises DecisionNotRecorded: the task
is then not acknowledged and runs again once Redis is back, completing what is missing. A
database that is down loses nothing: the decision waits in the stream until the audit
writer can write it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import redis

from zero_tasks.adapters import lifecycle_store, scripts
from zero_tasks.adapters.metrics import observe_decisions
from zero_tasks.adapters.redis_state import read_hash_field_and_snapshot, read_hash_fields_and_snapshots
from zero_tasks.core import keys
from zero_tasks.core.lifecycle.outcome import Outcome
from zero_tasks.core.lifecycle.seed import seed_of
from zero_tasks.core.record import DecisionRecord, log_decision
from zero_tasks.core.snapshot import Snapshot

if TYPE_CHECKING:  # the bridge reads AUDIT_STREAM here and must not load alpaca-py
    from zero_tasks.adapters.runtime import Runtime

AUDIT_STREAM = "key:execution_audit_stream"
OUTCOME_KEY_PREFIX = "outcome:"  # an outcome's key in the outbox: never a message id

def decision_key(event_key: str) -> str:
    return keys.DECISION_PREFIX + event_key


def _script_args(rec: DecisionRecord, seal_key: str | None = None) -> tuple[list[str], list[object]]:
    """The script's keys and arguments; a SUBMITTED entry kept by a worker (which has the
    signing key: `seal_key`) also seeds its lifecycle, sealed."""
    script_keys = [decision_key(rec.event_key), AUDIT_STREAM, keys.IN_FLIGHT_KEY, keys.IN_FLIGHT_TASKS_KEY]
    args: list[object] = [rec.to_json(), keys.CLAIM_TTL_SECONDS, keys.TRADE_UPDATE_CHANNEL, rec.to_trade_update(),
                          rec.event_key]
    lifecycle = seed_of(rec) if seal_key else None
    if lifecycle is not None and seal_key:
        fields = lifecycle_store.sealed_fields(lifecycle, seal_key)
        script_keys += [keys.lifecycle_key(rec.execution_id), keys.LIFECYCLE_DUE_KEY]
        args += [fields["record"], rec.execution_id, "row", fields["seal"]]
    return script_keys, args


def _outcome(rec: DecisionRecord, reply: list[object]) -> tuple[DecisionRecord, bool]:
    stored, published = reply  # lua/keep_and_announce.lua: {the record, or '', 1 if published now}
    if not isinstance(stored, bytes | str) or not isinstance(published, int):
        raise TypeError(f"keep_and_announce replied {reply!r}")
    if isinstance(stored, bytes):
        stored = stored.decode()
    kept = DecisionRecord.from_json(stored) if stored else rec  # '' = the one given was kept
    return kept, bool(published)


def keep_and_announce(r: redis.Redis, rec: DecisionRecord, seal_key: str | None = None) -> tuple[DecisionRecord, bool]:
    """(the decision that counts for this message, True if its event went out now). With
    `seal_key` (a worker's TASK_SIGNING_KEY) a SUBMITTED entry's lifecycle is seeded too."""
    script_keys, args = _script_args(rec, seal_key)
    return _outcome(rec, scripts.register(r, "keep_and_announce")(keys=script_keys, args=args))


def keep_and_announce_many(r: redis.Redis, recs: list[DecisionRecord],
                           seal_key: str | None = None) -> list[tuple[DecisionRecord, bool]]:
    """`keep_and_announce` for a batch of decisions (a burst decided together), in one
    pipeline: each is still its own atomic script, so each keeps its first decision."""
    script = scripts.register(r, "keep_and_announce")
    if len(recs) == 1:  # one round trip without a pipeline's SCRIPT EXISTS
        script_keys, args = _script_args(recs[0], seal_key)
        return [_outcome(recs[0], script(keys=script_keys, args=args))]
    pipe = r.pipeline(transaction=False)
    for rec in recs:
        script_keys, args = _script_args(rec, seal_key)
        script(keys=script_keys, args=args, client=pipe)
    replies = pipe.execute()
    return [_outcome(rec, reply) for rec, reply in zip(recs, replies, strict=True)]


def keep_outcome(r: redis.Redis, outcome: Outcome) -> bool:
    """Keep an execution's outcome, queue its execution_outcome row and publish it on
    chan:execution_outcome, once: the same script as a decision, under the outcome's own
    key (a second call finds it kept and sent, and does nothing). True if published now."""
    message = json.dumps(outcome.to_message())
    event_key = OUTCOME_KEY_PREFIX + outcome.execution_id
    reply = scripts.register(r, "keep_and_announce")(
        keys=[decision_key(event_key), AUDIT_STREAM, keys.IN_FLIGHT_KEY, keys.IN_FLIGHT_TASKS_KEY],
        args=[message, keys.CLAIM_TTL_SECONDS * 7, keys.OUTCOME_CHANNEL, message, event_key, "", "", "outcome"])
    return bool(reply[1])


def find(r: redis.Redis, event_key: str) -> DecisionRecord | None:
    stored = r.hget(decision_key(event_key), "record")
    return DecisionRecord.from_json(stored) if stored else None


def find_with_snapshot(r: redis.Redis, event_key: str, ticker: str) -> tuple[DecisionRecord | None, Snapshot]:
    """`find` and the veto's snapshot in one round trip: the first read of every decision."""
    stored, snap = read_hash_field_and_snapshot(r, decision_key(event_key), "record", ticker)
    return (DecisionRecord.from_json(stored) if stored else None), snap


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
        results = keep_and_announce_many(rt.redis, recs, rt.settings.task_signing_key.get_secret_value())
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
    existing, snap = _read_or_not_recorded(event_key, lambda: find_with_snapshot(rt.redis, event_key, ticker))
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
        rt.redis, [(decision_key(key), "record") for key, _ in items], [ticker for _, ticker in items]))
    existing = [DecisionRecord.from_json(stored) for stored, _ in reads if stored]
    record_many(rt, existing)
    return [(bool(stored), snap) for stored, snap in reads]


def complete_if_decided(rt: Runtime, event_key: str) -> bool:
    """A message that already has a decision is only completed, never decided again."""
    existing = _read_or_not_recorded(event_key, lambda: find(rt.redis, event_key))
    if existing is not None:
        record(rt, existing)
    return existing is not None
