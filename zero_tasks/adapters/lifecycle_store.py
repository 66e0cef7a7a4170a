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


def load(r: redis.Redis, execution_id: str) -> LifecycleRecord | None:
    raw = r.hget(keys.lifecycle_key(execution_id), "record")
    return LifecycleRecord.from_json(raw) if raw else None


def save(r: redis.Redis, rec: LifecycleRecord) -> None:
    r.hset(keys.lifecycle_key(rec.execution_id), "record", rec.to_json())


def seed(r: redis.Redis, rec: LifecycleRecord) -> bool:
    """The record and its first step (due now), unless one exists: True if seeded now."""
    created = r.hsetnx(keys.lifecycle_key(rec.execution_id), "record", rec.to_json())
    if created:
        r.zadd(keys.LIFECYCLE_DUE_KEY, {rec.execution_id: 0}, nx=True)
    return bool(created)


def schedule(r: redis.Redis, execution_id: str, at: datetime) -> None:
    """The execution's next step at `at` (the gateway's clock)."""
    r.zadd(keys.LIFECYCLE_DUE_KEY, {execution_id: int(at.timestamp() * 1000)})


def finish(r: redis.Redis, rec: LifecycleRecord) -> None:
    """The lifecycle is over: no further step; the record is kept a week for the operator."""
    pipe = r.pipeline()
    pipe.hset(keys.lifecycle_key(rec.execution_id), "record", rec.to_json())
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
