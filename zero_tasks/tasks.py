"""The task chain: decide (rows 1-8, and the first order attempt inline) -> place_order
(retries of rows 9-12); follow_order and reconcile afterwards. Audit rows are written by
the audit writer thread of every pool process (audit_writer.py), not by a task.

Retry policy per error class:
- broker network error, timeout, 5xx, 429: `place_order` again after an exponential
  backoff with full jitter (Retry-After respected), looking the order up by
  client_order_id first; at most BROKER_MAX_RETRIES times, then one ERROR decision;
- broker 4xx and every veto: final, never retried;
- anything unexpected: one ERROR decision;
- Redis unavailable while recording (DecisionNotRecorded): the task fails without an ack
  (task_acks_on_failure_or_timeout=False) and is delivered again once Redis is back.
The first order attempt runs inside `decide`: one queue hop fewer on the hot path.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import SQLAlchemyError

from . import reconcile_job
from .alpaca_adapter import BrokerRejected, BrokerTransient
from .audit import update_order_status
from .decision import Status
from .follow_up import FOLLOW_FIRST_S, FOLLOW_MAX_TRIES, TERMINAL, follow_up_delay
from .celery_app import app
from .intake import Signal
from .pipeline import Message, OrderTicket, evaluate, exhausted, place, rate_limited, signal_of, unexpected, utcnow
from .record import DecisionRecord
from .recorder import complete_if_decided, complete_or_snapshot, record
from .risk import RateLimited
from .runtime import Runtime, get_runtime

log = logging.getLogger(__name__)


def _again(ticket: OrderTicket, countdown: float) -> None:
    place_order.apply_async(args=[ticket.to_task()], countdown=countdown,
                            task_id=f"{ticket.execution_id}:order:{ticket.broker_attempt}:{ticket.waited_s:.0f}")


def _attempt_order(rt: Runtime, ticket: OrderTicket) -> DecisionRecord | None:
    """One broker round; None when it must be retried later (already scheduled)."""
    try:
        return place(rt, ticket)
    except RateLimited as exc:
        if ticket.waited_s + exc.wait_s > rt.settings.rate_limit_max_wait_s:
            detail = (f"{rt.settings.broker_requests_per_min} broker calls/min spent; "
                      f"waited {ticket.waited_s:.0f}s of {rt.settings.rate_limit_max_wait_s}s")
            return rate_limited(rt, ticket, detail, utcnow())
        log.info("rate limit for %s: waiting %.1fs", ticket.execution_id, exc.wait_s)
        _again(ticket.after_wait(exc.wait_s), exc.wait_s)
        return None
    except BrokerTransient as exc:
        if ticket.broker_attempt >= rt.settings.broker_max_retries:
            detail = f"broker unavailable after {ticket.broker_attempt + 1} attempts: {exc.detail}"
            return exhausted(rt, ticket, detail, utcnow())
        countdown = get_exponential_backoff_interval(
            factor=1, retries=ticket.broker_attempt, maximum=rt.settings.broker_retry_backoff_max_s,
            full_jitter=True)
        if exc.retry_after:
            countdown = max(countdown, min(exc.retry_after, rt.settings.broker_retry_backoff_max_s))
        log.warning("broker transient for %s (%s); attempt %d in %ss",
                    ticket.execution_id, exc.detail, ticket.broker_attempt + 2, countdown)
        _again(ticket.next_attempt(), countdown)
        return None
    except Exception as exc:  # noqa: BLE001 - ends as one ERROR decision
        log.exception("order attempt failed for %s", ticket.execution_id)
        return unexpected(rt, ticket.message, exc, utcnow())


@app.task(name="zero.decide", bind=True, acks_late=True, reject_on_worker_lost=True)
def decide(self: Task, message: dict[str, Any]) -> str:
    """Entry task; its Celery task id is the execution_id (the bridge sets it)."""
    rt = get_runtime()
    msg = Message.from_task(message)
    subject = signal_of(rt, msg)
    snap = None
    if isinstance(subject, Signal):
        snap = complete_or_snapshot(rt, msg.message_id, subject.top.ticker)
        if snap is None:
            return "already decided"
    elif complete_if_decided(rt, msg.message_id):
        return "already decided"
    try:
        outcome = evaluate(rt, msg, subject, snap, utcnow())
    except Exception as exc:  # noqa: BLE001 - ends as one ERROR decision, not a lost message
        log.exception("decide failed for %s", self.request.id)
        outcome = unexpected(rt, message, exc, utcnow())
    if isinstance(outcome, OrderTicket):
        outcome = _attempt_order(rt, outcome)
        if outcome is None:
            return "retrying"
    return _finish(rt, outcome)


def _finish(rt: Runtime, outcome: DecisionRecord) -> str:
    kept = record(rt, outcome)
    if kept.status is Status.SUBMITTED and kept.client_order_id:
        follow_order.apply_async(args=[kept.event_key, kept.client_order_id, 0], countdown=FOLLOW_FIRST_S,
                                 task_id=f"follow:{kept.event_key}:0")
    return kept.status.value


@app.task(name="zero.place_order", bind=True, acks_late=True, reject_on_worker_lost=True)
def place_order(self: Task, ticket_data: dict[str, Any]) -> str:
    """A later broker round of one order (the first runs inside decide)."""
    rt = get_runtime()
    ticket = OrderTicket(**ticket_data)
    if complete_if_decided(rt, ticket.message["message_id"]):
        return "already decided"
    outcome = _attempt_order(rt, ticket)
    if outcome is None:
        return "retrying"
    return _finish(rt, outcome)


@app.task(name="zero.follow_order", bind=True, acks_late=True, reject_on_worker_lost=True)
def follow_order(self: Task, event_key: str, client_order_id: str, tries: int) -> str | None:
    """Order status follow-up: what became of a SUBMITTED order, written on its audit row."""
    rt = get_runtime()
    status, rate_wait_s = None, None
    try:
        rt.rate_limit.acquire("follow-up")
        status = rt.broker.order_status(client_order_id)
        if status:
            update_order_status(rt.engine, event_key, status, utcnow())
    except RateLimited as exc:
        log.info("follow-up of %s postponed: %s", client_order_id, exc)
        rate_wait_s = exc.wait_s
    except (BrokerTransient, BrokerRejected, SQLAlchemyError) as exc:
        log.info("follow-up of %s postponed: %s", client_order_id, exc)
    if status not in TERMINAL and tries + 1 < FOLLOW_MAX_TRIES:
        follow_order.apply_async(args=[event_key, client_order_id, tries + 1],
                                 countdown=follow_up_delay(tries, rate_wait_s),
                                 task_id=f"follow:{event_key}:{tries + 1}")
    return status


@app.task(name="zero.reconcile", bind=True, acks_late=True, reject_on_worker_lost=True)
def reconcile_task(self: Task, hours: float = 24.0) -> dict[str, int]:
    """Periodic (Celery beat) reconcile of the last `hours` of SUBMITTED rows."""
    rt = get_runtime()
    report = reconcile_job.run(rt, utcnow(), hours, lambda rec: record(rt, rec))
    return {"audited": report.audited, "at_broker": report.at_broker, "findings": len(report.findings)}
