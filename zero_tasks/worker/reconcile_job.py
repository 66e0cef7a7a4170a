"""Running a reconcile: read the audit and the broker, compare, record the findings.

Each finding becomes one decision-shaped record (status ERROR, reason `error: reconcile:
...`), kept, announced on chan:trade_update and audited like any decision; its event key
is the finding's own, so running reconcile again never reports it twice. A summary goes
to chan:execution_alert. No order is ever placed or canceled here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest
from sqlalchemy import select

from zero_tasks.adapters.audit import execution_log, update_order_status
from zero_tasks.adapters.risk import alert
from zero_tasks.core.contract import as_utc  # SQLite hands back naive datetimes; the audit stores UTC
from zero_tasks.core.decision import Code, deny
from zero_tasks.core.reconcile import AuditedOrder, BrokerOrder, Finding, Report, compare
from zero_tasks.core.record import DecisionRecord
from zero_tasks.worker.runtime import Runtime, ensure_audit_schema

Recorder = Callable[[DecisionRecord], DecisionRecord]


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
    orders = cast(list[Order], client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=since, limit=500)))
    # symbol is None only for a multi-leg order, which this gateway never places
    return [BrokerOrder(str(o.id), o.client_order_id, o.symbol or "", str(getattr(o.status, "value", o.status)),
                        o.submitted_at) for o in orders]


def finding_record(finding: Finding, now: datetime) -> DecisionRecord:
    verdict = deny(Code.ERROR, f"reconcile: {finding.kind}: {finding.detail}")
    return DecisionRecord(
        event_key=finding.key, time=finding.at, decided_at=now, execution_id=finding.execution_id,
        ticker=finding.ticker, horizon="", probability=None, opportunity_score=None, status=verdict.status,
        reason=verdict.reason, why=[verdict.reason], market_state_snapshot=None,
        client_order_id=finding.client_order_id, payload=finding.as_dict())


def run(rt: Runtime, now: datetime, hours: float, record: Recorder) -> Report:
    since = now - timedelta(hours=hours)
    report = compare(audited_orders(rt, since), broker_orders(rt, since))
    for event_key, status in report.statuses.items():
        update_order_status(rt.engine, event_key, status, now)
    for finding in report.findings:
        record(finding_record(finding, now))
    alert(rt.redis, "reconcile", audited=report.audited, at_broker=report.at_broker,
          findings=[f.as_dict() for f in report.findings], at=now)
    return report
