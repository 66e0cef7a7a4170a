"""The task chain: decide (rows 1-8) -> place_order (rows 9-12); write_audit on DB faults.

Retry policy per error class, declared on the tasks:
- broker network error, timeout, 5xx, 429: retried with exponential backoff and full
  jitter (Retry-After respected), looking the order up by client_order_id first;
- broker 4xx and every veto: final, never retried;
- retries exhausted or anything unexpected: one ERROR decision.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import SQLAlchemyError

from .alpaca_adapter import BrokerTransient
from .celery_app import app
from .pipeline import Message, OrderTicket, evaluate, exhausted, place, unexpected, utcnow
from .record import DecisionRecord
from .recorder import record, row_from_json, write_audit
from .runtime import get_runtime

log = logging.getLogger(__name__)


def _spool(row: dict[str, Any]) -> None:
    write_audit_task.apply_async(args=[row], task_id=f"audit:{row['event_key']}", countdown=1)


def _record(rec: DecisionRecord) -> None:
    record(get_runtime(), rec, _spool)


@app.task(name="zero.decide", bind=True, acks_late=True, reject_on_worker_lost=True)
def decide(self: Task, message: dict[str, Any]) -> str:
    """Entry task; its Celery task id is the execution_id (the bridge sets it)."""
    rt = get_runtime()
    try:
        outcome = evaluate(rt, Message.from_task(message), utcnow())
    except Exception as exc:  # noqa: BLE001 - ends as one ERROR decision, not a lost message
        log.exception("decide failed for %s", self.request.id)
        outcome = unexpected(rt, message, exc, utcnow())
    if isinstance(outcome, OrderTicket):
        place_order.apply_async(args=[outcome.to_task()], task_id=f"{outcome.execution_id}:order")
        return "order"
    _record(outcome)
    return outcome.status.value


@app.task(name="zero.place_order", bind=True, acks_late=True, reject_on_worker_lost=True,
          max_retries=None)
def place_order(self: Task, ticket_data: dict[str, Any]) -> str:
    rt = get_runtime()
    ticket = OrderTicket(**ticket_data)
    attempt = self.request.retries
    try:
        rec = place(rt, ticket, attempt)
    except BrokerTransient as exc:
        if attempt >= rt.settings.broker_max_retries:
            rec = exhausted(rt, ticket, f"broker unavailable after {attempt + 1} attempts: {exc.detail}", utcnow())
        else:
            countdown = get_exponential_backoff_interval(
                factor=1, retries=attempt, maximum=rt.settings.broker_retry_backoff_max_s, full_jitter=True)
            if exc.retry_after:
                countdown = max(countdown, min(exc.retry_after, rt.settings.broker_retry_backoff_max_s))
            log.warning("broker transient for %s (%s); retry %d in %ss",
                        ticket.execution_id, exc.detail, attempt + 1, countdown)
            raise self.retry(exc=exc, countdown=countdown)
    except Exception as exc:  # noqa: BLE001 - ends as one ERROR decision
        log.exception("place_order failed for %s", ticket.execution_id)
        rec = unexpected(rt, ticket.message, exc, utcnow())
    _record(rec)
    return rec.status.value


@app.task(name="zero.write_audit", bind=True, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(SQLAlchemyError,), retry_backoff=True, retry_backoff_max=10,
          retry_jitter=True, max_retries=None)
def write_audit_task(self: Task, row: dict[str, Any]) -> bool:
    """A row whose database was away: retried until it is written (a no-op if it was)."""
    return write_audit(get_runtime(), row_from_json(row))
