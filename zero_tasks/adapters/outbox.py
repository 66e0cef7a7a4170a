"""The decision outbox: a message's decision is kept in Redis, announced and queued for
the audit in one step.

The first decision stored for a message wins. Whoever runs that message again (a
redelivery after a crash, a duplicate delivery, a retry) finds it and only completes
what is missing (the event), so the event and the row always say the same thing, and a
BLOCKED announcement can never be followed by an order for that message.

Keeping the decision, adding it to the audit stream (audit_writer.py turns the stream
into execution_log rows, in batches), publishing its TradeUpdate, marking it sent and
taking the message off the hand-over ledger (in_flight.py) is one Lua script
(lua/keep_and_announce.lua): atomic, so a crash can never leave a decision announced twice,
kept but never announced, or announced but never audited; and one round trip.
"""

from __future__ import annotations

import json

import redis

from zero_tasks.adapters import lifecycle_store, scripts
from zero_tasks.adapters.redis_state import read_hash_field_and_snapshot
from zero_tasks.core import keys
from zero_tasks.core.lifecycle.outcome import Outcome
from zero_tasks.core.lifecycle.seed import seed_of
from zero_tasks.core.record import DecisionRecord
from zero_tasks.core.snapshot import Snapshot

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
