"""The Celery tasks: decide -> place_order (later broker rounds); follow_order (only while no
account mirror is in sync: zero_tasks/mirror writes order states then) and reconcile afterwards.

Each task opens its seal (task_auth.py), rebuilds what it needs from the message, runs the
flow (flow.py: the decision, top to bottom) and schedules what the flow asks for: a broker
round again (`RetryLater`, through short delayed hops) or the order's follow-ups. Audit
rows are written by the audit writer thread of every pool process (audit_thread.py), not
by a task. A run that ends without a decision (Redis away: DecisionNotRecorded; the soft
time limit reached outside the flow's own ERROR path) puts the message back on the queue
(`requeue_if_undecided`); it is decided by a later run.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from zero_tasks.adapters import reconcile_job
from zero_tasks.adapters.alpaca_adapter import BrokerRejected, BrokerTransient
from zero_tasks.adapters.audit import OrderFate, update_order_status
from zero_tasks.adapters.outbox import DecisionNotRecorded, complete_if_decided, record
from zero_tasks.adapters.risk import RateLimited
from zero_tasks.adapters.runtime import Runtime
from zero_tasks.celery_app import app
from zero_tasks.core import keys
from zero_tasks.core.decision import Status
from zero_tasks.core.delayed import StepVerdict
from zero_tasks.core.intake import BATCH_MAX, Message
from zero_tasks.core.mirror import answers as mirror_answers
from zero_tasks.core.record import DecisionRecord
from zero_tasks.core.retry import FOLLOW_FIRST_S, FOLLOW_MAX_TRIES, TERMINAL, follow_up_delay
from zero_tasks.core.task_auth import open_seal, seal
from zero_tasks.worker import flow, lifecycle
from zero_tasks.worker.delayed_send import claim_period, requeue, send_later, step_guard
from zero_tasks.worker.flow import RetryLater, foreign_reservations, forged_record, ticket_from_task, utcnow
from zero_tasks.worker.runtime import get_runtime

DECIDE = "zero.decide"
DECIDE_MANY = "zero.decide_many"
PLACE_ORDER = "zero.place_order"
FOLLOW_ORDER = "zero.follow_order"
LIFECYCLE_TICK = "zero.lifecycle_tick"
LIFECYCLE_STEP = "zero.lifecycle_step"

log = logging.getLogger(__name__)


def requeue_if_undecided(task: Callable[..., str]) -> Callable[..., str]:
    """A message whose run ended without a decision goes back on the queue.

    Two ways a run ends so: the decision cannot be kept (Redis away), or the task's soft
    time limit strikes outside the flow's own `except Exception` (reading the outbox,
    keeping the decision, sending the next round). Celery would reject either without
    requeueing it: the Redis transport then drops the message from its unacked set and
    RabbitMQ drops it, and only the hand-over ledger brings it back, after
    HANDOVER_RESCUE_AFTER_S. Requeued (after a short pause while Redis is away), it is tried
    again; on the Redis
    broker a requeue that cannot reach Redis leaves the message in kombu's unacked set,
    from which it comes back after the visibility timeout. A copy that runs again finds
    what the first attempt did (the outbox, the claim, the order by client_order_id)."""

    @functools.wraps(task)
    def run(self: Task, *args: Any) -> str:
        try:
            return task(self, *args)
        except DecisionNotRecorded as exc:
            requeue(str(exc))
        except SoftTimeLimitExceeded:
            # no pause: the hard limit is near, and a run this long is no busy loop
            requeue(f"{self.name}[{self.request.id}]: soft time limit reached before a decision", pause_s=0.0)

    return run


def _scheduled(rt: Runtime, outcome: DecisionRecord | RetryLater | None) -> str:
    """What the task reports, after scheduling what the flow asked for."""
    if outcome is None:
        return "already decided"
    if isinstance(outcome, RetryLater):
        ticket = outcome.ticket
        sealed = seal(_signing_key(rt), PLACE_ORDER, ticket.to_task(), utcnow())
        # through short hops, claimed one at a time (delayed_send.py): one retry chain per order
        send_later(PLACE_ORDER, [sealed], f"{ticket.execution_id}:order:{ticket.broker_attempt}:{ticket.waited_s:.0f}",
                   outcome.countdown_s, guarded_target=False)
        return "retrying"
    if outcome.status is Status.SUBMITTED and outcome.client_order_id and not _mirror_follows(rt):
        _follow_later(rt, outcome.event_key, outcome.client_order_id, 0, FOLLOW_FIRST_S)
    return outcome.status.value


def _follow_later(rt: Runtime, event_key: str, client_order_id: str, tries: int, countdown: float) -> None:
    """The order's next follow-up step, sealed: its id is the step's, whoever asks."""
    body = {"event_key": event_key, "client_order_id": client_order_id, "tries": tries}
    send_later(FOLLOW_ORDER, [seal(_signing_key(rt), FOLLOW_ORDER, body, utcnow())], follow_step(event_key, tries),
               countdown, guarded_target=True)


def follow_step(event_key: str, tries: int) -> str:
    return f"follow:{event_key}:{tries}"


def _follow_body(body: dict[str, Any]) -> tuple[str, str, int] | str:
    """(event_key, client_order_id, tries) of an opened follow-up, or why it is not one."""
    event_key, client_order_id, tries = body.get("event_key"), body.get("client_order_id"), body.get("tries")
    if not (isinstance(event_key, str) and isinstance(client_order_id, str)):
        return "follow-up without its order"
    if not (type(tries) is int and 0 <= tries < FOLLOW_MAX_TRIES):
        return f"follow-up step {tries!r} out of range"
    return event_key, client_order_id, tries


def _mirror_follows(rt: Runtime) -> bool:
    """Whether the account mirror will write what becomes of the order: in sync and fresh,
    its consumer writes the SUBMITTED row's order_status from the stream (and from its REST
    snapshot after a drop), so no follow-up chain is sent (only a sync record sealed with
    TASK_SIGNING_KEY says so: a hand-written one does not stop the chain); the reconcile stays the backstop.
    Without a mirror in sync (none deployed, stream down, Redis unreadable) the chain goes
    as before."""
    try:
        raw = rt.redis.get(keys.MIRROR_SYNC_KEY)
    except redis.RedisError:
        return False
    return mirror_answers(raw if isinstance(raw, str) else None, utcnow(), rt.settings.mirror_max_age_s,
                          _signing_key(rt))


def _signing_key(rt: Runtime) -> str:
    return rt.settings.task_signing_key.get_secret_value()


def _refuse_forged(rt: Runtime, task: str, argument: object, problem: str) -> str:
    """A task that did not come through the decision table: one ERROR decision, no broker call."""
    log.warning("refused a forged %s task: %s", task, problem)
    return _scheduled(rt, record(rt, forged_record(task, argument, problem, utcnow())))


@app.task(name=DECIDE, bind=True)
@requeue_if_undecided
def decide(self: Task, message: dict[str, Any]) -> str:
    """Entry task, sealed by the bridge (task_auth.py); its Celery task id is the execution_id."""
    rt = get_runtime()
    msg = _opened(rt, message)
    return msg if isinstance(msg, str) else _scheduled(rt, flow.decide(rt, msg))


@app.task(name=DECIDE_MANY, bind=True)
@requeue_if_undecided
def decide_many(self: Task, messages: list[Any]) -> str:
    """The messages a bridge heard together (a burst), each sealed by it for `decide`: each
    opened and decided as `decide` would, in order, with their reads and writes shared
    (flow.decide_many). The batch is no authority of its own: a message whose seal does not
    open is refused as a forged `decide`, alone, and the others are decided as usual.
    Reports how many of each outcome."""
    rt = get_runtime()
    if not (isinstance(messages, list) and 1 <= len(messages) <= BATCH_MAX):
        return _refuse_forged(rt, DECIDE_MANY, messages, f"not a list of 1 to {BATCH_MAX} messages")
    results, opened = [], []
    for message in messages:
        msg = _opened(rt, message)
        if isinstance(msg, str):
            results.append(msg)
        else:
            opened.append(msg)
    if opened:
        results += [_scheduled(rt, outcome) for outcome in flow.decide_many(rt, opened)]
    return " ".join(f"{name}={count}" for name, count in sorted(Counter(results).items()))


def _opened(rt: Runtime, message: object) -> Message | str:
    """The message a bridge sealed for `decide`; or, for anything else, the forged task's
    refusal, decided and recorded (what the task then reports)."""
    body, problem = open_seal(_signing_key(rt), DECIDE, message, utcnow())
    if body is None:
        return _refuse_forged(rt, DECIDE, message, problem or "unsealed")
    try:
        return Message.from_task(body)
    except (KeyError, TypeError, ValueError) as exc:
        return _refuse_forged(rt, DECIDE, message, f"message unreadable ({type(exc).__name__})")


@app.task(name=PLACE_ORDER, bind=True)
@requeue_if_undecided
def place_order(self: Task, ticket_data: dict[str, Any]) -> str:
    """A later broker round of one order (the first runs inside decide), sealed by the
    worker that scheduled it. Only a message that passed the decision table has one: the
    ticket is rebuilt from its payload and must hold that message's own reservations."""
    rt = get_runtime()
    body, problem = open_seal(_signing_key(rt), PLACE_ORDER, ticket_data, utcnow())
    if body is None:
        return _refuse_forged(rt, PLACE_ORDER, ticket_data, problem or "unsealed")
    ticket = ticket_from_task(rt, body)
    if isinstance(ticket, str):
        return _refuse_forged(rt, PLACE_ORDER, ticket_data, ticket)
    if complete_if_decided(rt, ticket.message_id):
        return "already decided"
    try:
        foreign = foreign_reservations(rt, ticket)
    except redis.RedisError as exc:
        raise DecisionNotRecorded(f"{ticket.message_id}: redis unavailable ({type(exc).__name__})") from exc
    if foreign:
        return _refuse_forged(rt, PLACE_ORDER, ticket_data, foreign)
    return _scheduled(rt, flow.order_round(rt, ticket))



@app.task(name=FOLLOW_ORDER, bind=True)
def follow_order(self: Task, *arguments: Any) -> str | None:
    """Order status follow-up: what became of a SUBMITTED order, written on its audit row.

    Sealed by the worker that placed the order (or took the step before): a hand-written
    one is refused before it reads or writes anything or spends the broker budget. Each
    step is claimed first, under the step's own id (never the task id a sender chose): a
    copy of it (redelivered, or sent twice) does nothing, so an order has one chain of
    follow-ups, one broker lookup per step. Any other shape of arguments (the unsealed
    `event_key, client_order_id, tries` of earlier versions) is refused the same way."""
    rt = get_runtime()
    argument = arguments[0] if len(arguments) == 1 else list(arguments)
    body, problem = open_seal(_signing_key(rt), FOLLOW_ORDER, argument, utcnow())
    opened = _follow_body(body) if body is not None else (problem or "unsealed")
    if isinstance(opened, str):
        _refuse_forged(rt, FOLLOW_ORDER, argument, opened)
        return None
    event_key, client_order_id, tries = opened
    guard, step = step_guard(), follow_step(event_key, tries)
    verdict = guard.claim_or_requeue(step)
    if verdict is not StepVerdict.RUN:
        log.info("follow-up %s: a copy, not run (%s)", step, verdict.value)
        return None
    status, rate_wait_s = None, None
    try:
        rt.rate_limit.acquire("follow-up")
        order = rt.broker.find_order(client_order_id)
        if order:
            status = order.status
            update_order_status(rt.engine, event_key, OrderFate(order.status, order.filled_avg_price, order.filled_at),
                                utcnow())
    except RateLimited as exc:
        log.info("follow-up of %s postponed: %s", client_order_id, exc)
        rate_wait_s = exc.wait_s
    except (BrokerTransient, BrokerRejected, SQLAlchemyError, redis.RedisError) as exc:
        log.info("follow-up of %s postponed: %s", client_order_id, exc)
    if status not in TERMINAL and tries + 1 < FOLLOW_MAX_TRIES:
        _follow_later(rt, event_key, client_order_id, tries + 1, follow_up_delay(tries, rate_wait_s))
    guard.done(step)
    return status


RECONCILE_HOURS = 24.0


@app.task(name="zero.reconcile", bind=True)
def reconcile_task(self: Task, *_ignored: Any, **_ignored_too: Any) -> dict[str, int]:
    """Periodic (Celery beat) reconcile of the last RECONCILE_HOURS of SUBMITTED rows; one
    run per period across every worker and host, however many beats send it (a period
    claim, on Redis's clock). Not sealed, because it carries nothing to trust: its
    arguments are ignored, so whoever sends it gets the same job once per period, the one
    beat would have run."""
    hours = RECONCILE_HOURS
    rt = get_runtime()
    period = claim_period(rt.redis, "reconcile", rt.settings.reconcile_every_s)
    if period is None:
        log.info("reconcile: this period's run was claimed already; not run")
        return {"skipped": 1}
    report = reconcile_job.run(rt, utcnow(), hours, lambda rec: record(rt, rec))
    return {"audited": report.audited, "at_broker": report.at_broker, "findings": len(report.findings)}


@app.task(name=LIFECYCLE_TICK, bind=True)
def lifecycle_tick(self: Task) -> int:
    """Periodic (Celery beat, every LIFECYCLE_TICK_S): one sealed step task per execution
    whose lifecycle step is due; one tick per period across every worker and host."""
    rt = get_runtime()
    if claim_period(rt.redis, "lifecycle", rt.settings.lifecycle_tick_s) is None:
        return 0
    key = _signing_key(rt)

    def send(execution_id: str) -> None:
        app.send_task(LIFECYCLE_STEP, args=[seal(key, LIFECYCLE_STEP, {"execution_id": execution_id}, utcnow())])

    return lifecycle.tick(rt, send)


@app.task(name=LIFECYCLE_STEP, bind=True)
def lifecycle_step(self: Task, sealed: dict[str, Any]) -> str:
    """One step of one execution's position lifecycle (worker/lifecycle.py), sealed by the
    tick that sent it. A forged one is refused before anything runs: one ERROR decision,
    no broker call, no budget spent. A sealed copy only repeats an idempotent step."""
    rt = get_runtime()
    body, problem = open_seal(_signing_key(rt), LIFECYCLE_STEP, sealed, utcnow())
    execution_id = body.get("execution_id") if body is not None else None
    if body is None or not isinstance(execution_id, str):
        return _refuse_forged(rt, LIFECYCLE_STEP, sealed, problem or "no execution_id")
    result = lifecycle.step(rt, execution_id)
    return f"{result.action}: {result.reason}"[:200]
