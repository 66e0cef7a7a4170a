"""Recording a decision: kept in the outbox and announced on chan:trade_update (one
atomic step, see outbox.py: the first decision of a message wins), then audited.

Order matters: the event goes out first (consumers are live), then the row. A database
that is down does not lose the row: it goes to the audit task, retried until the
database is back. A Redis that is down raises DecisionNotRecorded: the task is then not
acknowledged and runs again once Redis is back, completing what is missing.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any, Callable

import redis
from sqlalchemy.exc import SQLAlchemyError

from . import outbox
from .audit import insert_row
from .metrics import observe_decision
from .record import DecisionRecord
from .runtime import Runtime, ensure_audit_schema

log = logging.getLogger("zero_tasks.decision")

_DATETIME_FIELDS = ("time", "decided_at", "submitted_at")
DATABASE_BACKOFF_S = 2.0  # after a failed write, spool straight away for this long
_database_down_until = 0.0
Spool = Callable[[dict[str, Any]], None]


class DecisionNotRecorded(Exception):
    """Redis was unavailable: the decision is not kept yet; the task must run again."""


def row_to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def row_from_json(data: dict[str, Any]) -> dict[str, Any]:
    row = dict(data)
    for name in _DATETIME_FIELDS:
        if row.get(name):
            row[name] = datetime.fromisoformat(row[name])
    return row


class AuditUnavailable(SQLAlchemyError):
    """The database failed moments ago; not tried again yet (the row is retried later)."""


def write_audit(rt: Runtime, row: dict[str, Any]) -> bool:
    """Insert one row; fail fast for DATABASE_BACKOFF_S after a failure.

    A database that is down makes every connect wait its timeout; without this, spooled
    rows retrying in a loop would keep the workers busy and starve new decisions.
    """
    global _database_down_until
    if time.monotonic() < _database_down_until:
        raise AuditUnavailable("database failed moments ago")
    try:
        ensure_audit_schema(rt)
        return insert_row(rt.engine, row)
    except SQLAlchemyError:
        _database_down_until = time.monotonic() + DATABASE_BACKOFF_S
        raise


def record(rt: Runtime, rec: DecisionRecord, spool: Spool) -> DecisionRecord:
    """Keep, announce and audit one decision; returns the decision that counts."""
    try:
        rec, published = outbox.keep_and_announce(rt.redis, rec)
    except redis.RedisError as exc:
        raise DecisionNotRecorded(f"{rec.event_key}: redis unavailable ({type(exc).__name__})") from exc
    row = rec.to_row()
    try:
        write_audit(rt, row)
    except SQLAlchemyError as exc:
        log.warning("audit write of %s failed (%s); spooled for retry", rec.event_key, type(exc).__name__)
        spool(row_to_json(row))
    if published:
        log_decision(rec)
        observe_decision(rt.redis, rec, rt.broker.drain_timings())
    return rec


def complete_if_decided(rt: Runtime, event_key: str, spool: Spool) -> bool:
    """A message that already has a decision is only completed, never decided again."""
    try:
        existing = outbox.find(rt.redis, event_key)
    except redis.RedisError as exc:
        raise DecisionNotRecorded(f"{event_key}: redis unavailable ({type(exc).__name__})") from exc
    if existing is None:
        return False
    record(rt, existing, spool)
    return True


def log_decision(rec: DecisionRecord) -> None:
    """One line per decision, machine-readable, no secrets."""
    log.info(json.dumps({
        "event": "decision", "execution_id": rec.execution_id, "ticker": rec.ticker,
        "status": rec.status.value, "reason": rec.reason, "latency_ms": rec.latency_ms,
        "alpaca_order_id": rec.alpaca_order_id, "event_key": rec.event_key,
    }))
