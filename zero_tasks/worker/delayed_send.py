"""Every delayed task of the gateway goes through here: short hops, and one run per step.

The policy is `delayed.py`; this module is its Redis and Celery edge:
- `send_later` sends a task due in `countdown` seconds, never with a countdown longer than
  a hop (`delayed.hop_max_s`): a longer wait is a chain of `zero.hop` tasks carrying the
  due time, each sent to the target's own queue;
- `StepGuard` is the claim a step takes before it runs (`SET NX`), so a redelivered copy
  does nothing while its original runs or after it finished; a step that cannot take its
  claim (Redis away) goes back on the queue (`requeue`), so a chain never ends on a blip;
- `claim_period` is the claim of a periodic job: one run per period, whatever sent it.

A target that takes no claim itself (`guarded_target=False`, the order task) always goes
through at least one hop: two copies of its sender then make two hops with one id, and the
hop's claim lets one of them through.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

import redis
from celery import Task
from celery.exceptions import Reject

from zero_tasks.adapters import redis_clock
from zero_tasks.adapters.outbox import record
from zero_tasks.celery_app import app
from zero_tasks.core import keys
from zero_tasks.core.delayed import (
    DONE,
    DONE_TTL_S,
    RUNNING,
    StepVerdict,
    hop_max_s,
    hop_task_id,
    next_hop,
    period_index,
    running_ttl_s,
    step_verdict,
)
from zero_tasks.core.task_auth import open_seal, seal
from zero_tasks.settings import Settings
from zero_tasks.worker.flow import forged_record
from zero_tasks.worker.runtime import get_runtime

log = logging.getLogger(__name__)

HOP = "zero.hop"
REDIS_AWAY_PAUSE_S = 1.0  # between two tries of one message while Redis is away
HOP_TARGETS = frozenset({"zero.place_order", "zero.follow_order"})  # a hop forwards nothing else


def _now_s() -> float:
    """Now by the Redis host's clock (redis_clock.py): a hop's due time is set on one worker
    host and judged on another, so both read the one clock, not their own."""
    return redis_clock.utcnow().timestamp()


def queue_of(task_name: str) -> str:
    """The queue `task_routes` names for a task: its hops wait where the task will run."""
    route = (app.conf.task_routes or {}).get(task_name) or {}
    return str(route.get("queue") or app.conf.task_default_queue)


def hop_s(settings: Settings) -> float:
    return hop_max_s(settings.visibility_timeout_s, settings.task_time_limit_s)


def send_later(task_name: str, args: list[Any], task_id: str, countdown: float, *,
               guarded_target: bool) -> None:
    """Send `task_name(*args)` with id `task_id`, due `countdown` seconds from now."""
    longest = hop_s(get_runtime().settings)
    countdown = max(0.0, countdown)
    if guarded_target and countdown <= longest:
        app.send_task(task_name, args=args, task_id=task_id, countdown=countdown)
        return
    _send_hop(task_name, args, task_id, _now_s() + countdown, 1, min(countdown, longest))


def _send_hop(task_name: str, args: list[Any], task_id: str, due_s: float, index: int, countdown: float) -> None:
    """One hop, sealed like every task of the gateway: a forged hop could otherwise claim a
    real step's id first and break that order's chain."""
    body = {"target": task_name, "args": args, "target_task_id": task_id, "due_s": due_s, "index": index}
    sealed = seal(get_runtime().settings.task_signing_key.get_secret_value(), HOP, body, redis_clock.utcnow())
    app.send_task(HOP, args=[sealed], task_id=hop_task_id(task_id, index), countdown=countdown,
                  queue=queue_of(task_name))


class StepGuard:
    """The claim of one step (a task id): "running" for the task time limit, then "done"."""

    def __init__(self, r: redis.Redis, task_time_limit_s: float) -> None:
        self._r = r
        self._running_ttl = running_ttl_s(task_time_limit_s)

    def claim(self, step_id: str) -> StepVerdict:
        key = keys.STEP_PREFIX + step_id
        claimed = bool(self._r.set(key, RUNNING, nx=True, ex=self._running_ttl))
        holder = None if claimed else self._r.get(key)
        return step_verdict(claimed, holder.decode() if isinstance(holder, bytes) else holder)

    def claim_or_requeue(self, step_id: str) -> StepVerdict:
        """The claim; with Redis away the step goes back on the queue and runs later."""
        try:
            return self.claim(step_id)
        except redis.RedisError as exc:
            requeue(f"step {step_id}: redis unavailable ({type(exc).__name__})")

    def done(self, step_id: str) -> None:
        """Marked done; with Redis away its claim runs out by itself (a copy comes only after a failure)."""
        try:
            self._r.set(keys.STEP_PREFIX + step_id, DONE, ex=DONE_TTL_S)
        except redis.RedisError as exc:
            log.warning("step %s not marked done, its claim runs out by itself: redis unavailable (%s)",
                        step_id, type(exc).__name__)


def requeue(reason: str, pause_s: float = REDIS_AWAY_PAUSE_S) -> NoReturn:
    """This task back on the queue, after a short pause while Redis is away (no busy loop).

    On the Redis broker a requeue that cannot reach Redis leaves the message in kombu's
    unacked set, from which it comes back after the visibility timeout."""
    log.warning("not run yet, back on the queue: %s", reason)
    time.sleep(pause_s)
    raise Reject(reason, requeue=True)


def _hop_body(body: dict[str, Any]) -> tuple[str, list[Any], str, float, int] | str:
    """The fields of an opened hop, or why it is not one this gateway sends."""
    target, args, task_id = body.get("target"), body.get("args"), body.get("target_task_id")
    due_s, index = body.get("due_s"), body.get("index")
    if target not in HOP_TARGETS:
        return f"{str(target)[:60]!r} is not a delayed task of the gateway"
    if not (isinstance(args, list) and isinstance(task_id, str) and type(index) is int and index >= 1
            and isinstance(due_s, int | float)):
        return "hop fields missing or of the wrong type"
    return str(target), args, task_id, float(due_s), index


def step_guard() -> StepGuard:
    rt = get_runtime()
    return StepGuard(rt.redis, rt.settings.task_time_limit_s)


def claim_period(r: redis.Redis, job: str, period_s: float) -> int | None:
    """The number of the current period if this run claimed it, None if another run did.
    The clock is Redis's: every host agrees on which period it is."""
    seconds, micros = r.time()
    index = period_index(seconds + micros / 1e6, period_s)
    claimed = r.set(f"{keys.PERIOD_PREFIX}{job}:{index}", str(time.time()), nx=True, ex=int(period_s * 2) + 1)
    return index if claimed else None


@app.task(name=HOP, bind=True)
def hop(self: Task, *arguments: Any) -> str:
    """One hop of a long wait: the next hop, or the target itself once it is within one.
    The hop's claim is taken under its own step id, never the task id a sender chose; any
    argument but one sealed hop (the unsealed fields of earlier versions) is refused."""
    rt = get_runtime()
    argument = arguments[0] if len(arguments) == 1 else list(arguments)
    body, problem = open_seal(rt.settings.task_signing_key.get_secret_value(), HOP, argument, redis_clock.utcnow())
    opened = _hop_body(body) if body is not None else (problem or "unsealed")
    if isinstance(opened, str):
        log.warning("refused a forged %s task: %s", HOP, opened)
        record(rt, forged_record(HOP, argument, opened, redis_clock.utcnow()))
        return "refused"
    target, args, target_task_id, due_s, index = opened
    guard = step_guard()
    step = hop_task_id(target_task_id, index)
    verdict = guard.claim_or_requeue(step)
    if verdict is not StepVerdict.RUN:
        log.info("hop %s: a copy, not run (%s)", step, verdict.value)
        return verdict.value
    nxt = next_hop(_now_s(), due_s, hop_s(get_runtime().settings))
    if nxt.final:
        app.send_task(target, args=args, task_id=target_task_id, countdown=nxt.countdown)
    else:
        _send_hop(target, args, target_task_id, due_s, index + 1, nxt.countdown)
    guard.done(step)
    return "sent" if nxt.final else "hopped"
