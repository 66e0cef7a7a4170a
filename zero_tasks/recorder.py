"""Recording a decision: one chan:trade_update event and one execution_log row.

The event goes out first (consumers are live); the row follows. A database that is down
does not lose the row: it is handed to the audit task, which retries until the database
is back. A Redis that is down does not lose the event silently: the caller is told.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any, Callable

import redis
from sqlalchemy.exc import SQLAlchemyError

from .audit import insert_row
from .events import publish_once
from .record import DecisionRecord
from .runtime import Runtime, ensure_audit_schema

log = logging.getLogger("zero_tasks.decision")

_DATETIME_FIELDS = ("time", "decided_at", "submitted_at")


def row_to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def row_from_json(data: dict[str, Any]) -> dict[str, Any]:
    row = dict(data)
    for name in _DATETIME_FIELDS:
        if row.get(name):
            row[name] = datetime.fromisoformat(row[name])
    return row


def publish_with_retry(r: redis.Redis, rec: DecisionRecord, attempts: int = 3) -> bool:
    for attempt in range(attempts):
        try:
            publish_once(r, rec)
            return True
        except redis.RedisError as exc:
            log.warning("publish of %s failed (%s), attempt %d", rec.event_key, type(exc).__name__, attempt + 1)
            time.sleep(0.2 * (attempt + 1))
    return False


def write_audit(rt: Runtime, row: dict[str, Any]) -> bool:
    ensure_audit_schema(rt)
    return insert_row(rt.engine, row)


def record(rt: Runtime, rec: DecisionRecord, spool: Callable[[dict[str, Any]], None]) -> None:
    """Announce and audit one decision. Raises only when the decision could be lost."""
    published = publish_with_retry(rt.redis, rec)
    row = rec.to_row()
    try:
        write_audit(rt, row)
    except SQLAlchemyError as exc:
        log.warning("audit write of %s failed (%s); spooled for retry", rec.event_key, type(exc).__name__)
        spool(row_to_json(row))
    log_decision(rec, published)
    if not published:
        raise RuntimeError(f"trade_update for {rec.event_key} not published: redis unavailable")


def log_decision(rec: DecisionRecord, published: bool) -> None:
    """One line per decision, machine-readable, no secrets."""
    log.info(json.dumps({
        "event": "decision", "execution_id": rec.execution_id, "ticker": rec.ticker,
        "status": rec.status.value, "reason": rec.reason, "latency_ms": rec.latency_ms,
        "alpaca_order_id": rec.alpaca_order_id, "event_key": rec.event_key, "published": published,
    }))
