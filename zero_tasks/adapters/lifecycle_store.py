"""The position lifecycle's durable schedule in Redis: one record per execution and one
sorted set of when each execution's next step is due.

- `key:execution_lifecycle:<execution_id>` (hash, field `record`): what the gateway decided
  and must remember (core/lifecycle/state.py). Seeded with the SUBMITTED entry's decision
  (outbox.py), in the same script; reseeded by the periodic reconcile when Redis lost it.
- `key:execution_lifecycle_due` (sorted set): execution_id -> due time (ms, Redis's clock).
  The beat's tick takes what is due (`take_due`, leased so two ticks never send one
  twice), a step reschedules it (`schedule`) or ends it (`finish`). Never a Celery
  countdown: the schedule survives every restart, and a step lost with its worker is due
  again when its lease runs out.
- `key:execution_lifecycle_step:<execution_id>`: one step of an execution at a time.

A record is sealed (field `seal`, an HMAC with TASK_SIGNING_KEY: task_auth.record_seal), as
tasks are: a hand-written or altered record is refused by the step (`ForgedRecord`), so a
Redis key nobody sealed can neither move a horizon nor make the gateway sell.

`nudge(redis, client_order_id)` is the account mirror's hook (issue 27): any of the
gateway's client_order_ids (entry `zx-`, protect `zp-`, exit `zs-`) makes that execution's
step due now. The lifecycle never depends on it: its steps read the broker by REST.
"""

from __future__ import annotations

from datetime import datetime

import redis

from zero_tasks.adapters import scripts
from zero_tasks.core import keys
from zero_tasks.core.contract import GATEWAY_PREFIXES
from zero_tasks.core.lifecycle.state import LifecycleRecord
from zero_tasks.core.task_auth import record_seal, record_sealed

SEAL_KIND = "lifecycle"


class ForgedRecord(Exception):
    """A lifecycle record whose seal is missing or does not match: never acted on."""


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def load(r: redis.Redis, execution_id: str, seal_key: str | None) -> LifecycleRecord | None:
    """The record (None when there is none). With `seal_key`, raises ForgedRecord unless
    its seal matches; without (zero-ops, which shows and never acts), unchecked."""
    raw, given = r.hmget(keys.lifecycle_key(execution_id), ["record", "seal"])
    if not raw:
        return None
    text = _text(raw)
    if seal_key is not None and not record_sealed(seal_key, SEAL_KIND, text, _text(given) if given else None):
        raise ForgedRecord(f"lifecycle record of {execution_id[:80]} is not sealed with this gateway's key")
    return LifecycleRecord.from_json(text)


def sealed_fields(rec: LifecycleRecord, seal_key: str) -> dict[str, str]:
    text = rec.to_json()
    return {"record": text, "seal": record_seal(seal_key, SEAL_KIND, text)}


def save(r: redis.Redis, rec: LifecycleRecord, seal_key: str) -> None:
    fields = sealed_fields(rec, seal_key)
    r.hset(keys.lifecycle_key(rec.execution_id), items=["record", fields["record"], "seal", fields["seal"]])


def seed(r: redis.Redis, rec: LifecycleRecord, seal_key: str) -> bool:
    """The record and its first step (due now), unless one exists: True if seeded now."""
    fields = sealed_fields(rec, seal_key)
    created = r.hsetnx(keys.lifecycle_key(rec.execution_id), "record", fields["record"])
    if created:
        r.hset(keys.lifecycle_key(rec.execution_id), "seal", fields["seal"])
        r.zadd(keys.LIFECYCLE_DUE_KEY, {rec.execution_id: 0}, nx=True)
    return bool(created)


def schedule(r: redis.Redis, execution_id: str, at: datetime) -> None:
    """The execution's next step at `at` (the gateway's clock)."""
    r.zadd(keys.LIFECYCLE_DUE_KEY, {execution_id: int(at.timestamp() * 1000)})


def finish(r: redis.Redis, rec: LifecycleRecord, seal_key: str) -> None:
    """The lifecycle is over: no further step; the record is kept a week for the operator."""
    pipe = r.pipeline()
    fields = sealed_fields(rec, seal_key)
    pipe.hset(keys.lifecycle_key(rec.execution_id), items=["record", fields["record"], "seal", fields["seal"]])
    pipe.expire(keys.lifecycle_key(rec.execution_id), keys.LIFECYCLE_DONE_TTL_SECONDS)
    pipe.zrem(keys.LIFECYCLE_DUE_KEY, rec.execution_id)
    pipe.execute()


def take_due(r: redis.Redis, now: datetime, lease_ms: int, limit: int = 100) -> list[str]:
    """The executions due at `now`, each leased for `lease_ms` (lua/lifecycle_take_due.lua)."""
    taken = scripts.register(r, "lifecycle_take_due")(keys=[keys.LIFECYCLE_DUE_KEY],
                                                      args=[lease_ms, limit, int(now.timestamp() * 1000)])
    return [t.decode() if isinstance(t, bytes) else str(t) for t in taken]


def claim_step(r: redis.Redis, execution_id: str, ttl_ms: int) -> bool:
    """One step per execution at a time; the claim expires with a step that died."""
    return bool(r.set(keys.LIFECYCLE_STEP_PREFIX + execution_id, "1", nx=True, px=ttl_ms))


def release_step(r: redis.Redis, execution_id: str) -> None:
    r.delete(keys.LIFECYCLE_STEP_PREFIX + execution_id)


def active(r: redis.Redis) -> list[LifecycleRecord]:
    """Every lifecycle still scheduled (zero-ops positions)."""
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in r.zrange(keys.LIFECYCLE_DUE_KEY, 0, -1)]
    pipe = r.pipeline()
    for execution_id in ids:
        pipe.hget(keys.lifecycle_key(execution_id), "record")
    return [LifecycleRecord.from_json(raw) for raw in pipe.execute() if raw]


def drop(r: redis.Redis, execution_id: str) -> None:
    """Take an execution off the schedule (its record refused): no step is sent for it again."""
    r.zrem(keys.LIFECYCLE_DUE_KEY, execution_id)


def execution_of(client_order_id: str) -> str | None:
    """The execution_id behind one of the gateway's client_order_ids (None for a hashed
    body, an id longer than Alpaca's 128 characters allow, or anyone else's order)."""
    for prefix in GATEWAY_PREFIXES:
        if client_order_id.startswith(prefix):
            body = client_order_id[len(prefix):]
            return body if body.count(":") >= 2 else None
    return None


def nudge(r: redis.Redis, client_order_id: str) -> None:
    """Make the step of the execution behind `client_order_id` due now, if it has a
    lifecycle still scheduled (ZADD XX: never creates one). Anything else: nothing."""
    execution_id = execution_of(client_order_id)
    if execution_id is None:
        return
    r.zadd(keys.LIFECYCLE_DUE_KEY, {execution_id: 0}, xx=True)
