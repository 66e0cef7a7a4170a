"""Running a reconcile: read the audit and the broker, compare, record the findings.

Each finding becomes one decision-shaped record (status ERROR, reason `error: reconcile:
...`), kept, announced on chan:trade_update and audited like any decision; its event key
is the finding's own, so running reconcile again never reports it twice. A summary goes
to chan:execution_alert. No order is ever placed or canceled here.

It is also the position lifecycle's backstop: a SUBMITTED entry of the last days with
neither an outcome nor a lifecycle in Redis (Redis lost its data) gets its lifecycle again.

No Celery here: the worker's periodic task (worker/tasks.py) and `zero-ops reconcile` both run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

import redis
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest
from sqlalchemy import select

from zero_tasks.adapters import lifecycle_store as store
from zero_tasks.adapters.audit import OrderFate, execution_log, execution_outcome, update_order_status
from zero_tasks.adapters.risk import alert
from zero_tasks.adapters.runtime import Runtime, ensure_audit_schema
from zero_tasks.core.contract import ENTRY_PREFIX, as_utc  # SQLite hands back naive datetimes; the audit stores UTC
from zero_tasks.core.decision import Code, deny
from zero_tasks.core.lifecycle.seed import seed_from, with_exits_recorded
from zero_tasks.core.lifecycle.state import LifecycleRecord
from zero_tasks.core.reconcile import AuditedOrder, BrokerOrder, Finding, Report, compare
from zero_tasks.core.record import DecisionRecord

Recorder = Callable[[DecisionRecord], DecisionRecord]
log = logging.getLogger(__name__)


def audited_orders(rt: Runtime, since: datetime) -> list[AuditedOrder]:
    ensure_audit_schema(rt)
    query = select(execution_log).where(execution_log.c.status == "SUBMITTED").where(execution_log.c.time >= since)
    with rt.engine.connect() as conn:
        rows = [r._mapping for r in conn.execute(query)]
    return [AuditedOrder(r["event_key"], r["execution_id"], r["ticker"], r["client_order_id"] or "",
                         r["alpaca_order_id"], r["order_status"], as_utc(r["time"])) for r in rows]


def broker_orders(rt: Runtime, since: datetime) -> list[BrokerOrder]:
    client = rt.broker.client
    # cast: alpaca-py types the reply list[Order] | RawData; this client is not raw_data, so Orders
    request = GetOrdersRequest(status=QueryOrderStatus.ALL, after=since, limit=500, nested=True)
    orders = cast(list[Order], client.get_orders(request))
    # nested: an OCO's stop leg rolls up under its protect order (the leg's own client_order_id
    # is the broker's, not the gateway's); symbol is None only for a multi-leg options order
    return [BrokerOrder(str(o.id), o.client_order_id, o.symbol or "", str(getattr(o.status, "value", o.status)),
                        o.submitted_at) for o in orders]


def finding_record(finding: Finding, now: datetime) -> DecisionRecord:
    verdict = deny(Code.ERROR, f"reconcile: {finding.kind}: {finding.detail}")
    return DecisionRecord(
        event_key=finding.key, time=finding.at, decided_at=now, execution_id=finding.execution_id,
        ticker=finding.ticker, horizon="", probability=None, opportunity_score=None, status=verdict.status,
        reason=verdict.reason, why=[verdict.reason], market_state_snapshot=None,
        client_order_id=finding.client_order_id, payload=finding.as_dict())


RESEED_DAYS = 5  # under the week a finished lifecycle is kept: a finished one is never reseeded


def unfinished_entries(rt: Runtime, now: datetime) -> list[LifecycleRecord]:
    """SUBMITTED entries of the last RESEED_DAYS days with no outcome row, as lifecycles."""
    ensure_audit_schema(rt)
    log_ = execution_log.c
    query = (select(log_.execution_id, log_.ticker, log_.horizon, log_.probability, log_.opportunity_score,
                    log_.payload, log_.event_key)
             .where(log_.status == "SUBMITTED").where(log_.time >= now - timedelta(days=RESEED_DAYS))
             .where(log_.client_order_id.like(f"{ENTRY_PREFIX}%"))
             .where(~log_.execution_id.in_(select(execution_outcome.c.execution_id))))
    with rt.engine.connect() as conn:
        rows = [r._mapping for r in conn.execute(query)]
    made = (seed_from(r["execution_id"], r["ticker"], r["horizon"], r["probability"], r["opportunity_score"],
                      r["payload"], r["event_key"]) for r in rows)
    seeded = [rec for rec in made if rec is not None]
    return [with_exits_recorded(rec, exit_decisions(rt, rec.execution_id)) for rec in seeded]


def exit_decisions(rt: Runtime, execution_id: str) -> list[tuple[str, str, str | None]]:
    """The exit decisions (`<execution_id>#protect`, `#exit`, `#protect-deferred`, `#exit-deferred`)
    the audit holds, oldest first."""
    log_ = execution_log.c
    query = (select(log_.event_key, log_.status, log_.alpaca_order_id)
             .where(log_.execution_id == execution_id).where(log_.event_key.like(f"{execution_id}#%"))
             .order_by(log_.time))
    with rt.engine.connect() as conn:
        return [(r.event_key, r.status, r.alpaca_order_id) for r in conn.execute(query)]


def reseed(rt: Runtime, entries: list[LifecycleRecord], has_outcome: Callable[[str], bool]) -> int:
    """The reconcile's backstop: a SUBMITTED entry with neither a lifecycle in Redis nor an
    outcome gets its lifecycle again (Redis lost its data)."""
    seeded = 0
    for rec in entries:
        try:
            if rt.redis.exists(store.keys.lifecycle_key(rec.execution_id)) or has_outcome(rec.execution_id):
                continue
            seeded += store.seed(rt.redis, rec, rt.settings.task_signing_key.get_secret_value())
        except redis.RedisError:
            log.warning("lifecycle of %s not reseeded (redis away); the next reconcile tries again", rec.execution_id)
    return seeded


def run(rt: Runtime, now: datetime, hours: float, record: Recorder) -> Report:
    reseeded = reseed(rt, unfinished_entries(rt, now), lambda _exec_id: False)
    if reseeded:
        log.warning("reconcile: %d lifecycle(s) reseeded from the audit (Redis had lost them)", reseeded)
    since = now - timedelta(hours=hours)
    report = compare(audited_orders(rt, since), broker_orders(rt, since))
    for event_key, status in report.statuses.items():
        update_order_status(rt.engine, event_key, OrderFate(status), now)
    for finding in report.findings:
        record(finding_record(finding, now))
    alert(rt.redis, "reconcile", audited=report.audited, at_broker=report.at_broker,
          findings=[f.as_dict() for f in report.findings], at=now)
    return report
