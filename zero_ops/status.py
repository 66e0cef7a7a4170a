"""The whole `status` report as one dict: what the gateway would decide on, right now.

Redis is required (without it there is nothing to report and the CLI exits 2); the audit
database is not: if it is down, the report says so and shows everything else.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from zero_tasks.adapters.mirror_store import read_status
from zero_tasks.adapters.risk import DailyCap, trading_day
from zero_tasks.core import keys
from zero_tasks.core.mirror import status_view
from zero_tasks.core.snapshot import operator_time

from . import auditlog, state
from .context import Ops, describe_db_error

REPORT_FIELDS = ("mode", "now", "broker", "redis", "database", "kill_switch", "market_state", "stand_down",
                 "cooldowns", "queues", "workers", "decisions", "decisions_error", "risk", "mirror")


def build_report(ops: Ops, now: datetime, last: int) -> dict[str, Any]:
    """Every fact of `status`, JSON-ready; the keys are REPORT_FIELDS."""
    settings = ops.settings
    r = ops.redis()
    try:
        snap = state.read_keys(r)
        report: dict[str, Any] = {
            "mode": "paper",
            "now": now.isoformat(),
            "broker": ops.broker_label(),
            "redis": f"{ops.redis_label()}/{settings.redis_db}",
            "database": ops.database_label(),
            "kill_switch": state.kill_switch(snap.execution_enabled),
            "market_state": state.market_state(snap.market_state, now, settings.market_state_max_age_s,
                                               snap.session),
            "stand_down": state.stand_down(snap.stand_down, now),
            "cooldowns": state.cooldowns(r),
            "queues": state.queue_depths(settings.broker_url),
            "workers": state.workers(r),
            "risk": risk_view(r, now, settings.max_orders_per_day),
            "mirror": mirror_view(r, now, settings.mirror_max_age_s, settings.task_signing_key.get_secret_value()),
        }
    finally:
        r.close()
    report["decisions"], report["decisions_error"] = last_decisions(ops, last)
    return report


def mirror_view(r: Any, now: datetime, max_age_s: float, seal_key: str) -> dict[str, Any]:
    """The account mirror: who leads, whether row 9 answers from it now (a sync record
    sealed with TASK_SIGNING_KEY, fresh), its counters."""
    raw = read_status(r)
    return status_view(raw["lease"], raw["sync"], raw["stats"], now, max_age_s, seal_key)


def risk_view(r: Any, now: datetime, cap: int) -> dict[str, Any]:
    """Breaker, block list and today's order count: the controls beyond the kill switch."""
    day = trading_day(now)
    raw = r.get(keys.BREAKER_KEY)
    blocked = {}
    for key in r.scan_iter(match=keys.BLOCKLIST_PREFIX + "*", count=200):
        name = key.decode() if isinstance(key, bytes) else key
        blocked[name.removeprefix(keys.BLOCKLIST_PREFIX)] = r.get(key)
    return {"breaker": operator_entry(raw),
            "blocklist": {t: operator_entry(v) for t, v in sorted(blocked.items())},
            "orders_today": DailyCap(r, cap).used(now), "max_orders_per_day": cap,
            "trading_day": day}


def operator_entry(raw: str | None) -> dict[str, Any] | None:
    """A breaker or block-list value as the operator wrote it; garbage is shown as garbage
    (the gateway fails closed on it: checks/breaker.py, checks/blocklist.py), never as a traceback."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return {"unreadable": raw[:200]}
    for name in ("until", "since"):
        if name in value:
            when = operator_time(value[name])
            if isinstance(when, str):
                value[f"{name}_problem"] = when
    return value


def last_decisions(ops: Ops, last: int) -> tuple[list[dict[str, Any]], str | None]:
    """The newest rows of execution_log, or why they cannot be read (the rest still shows)."""
    if last <= 0:
        return [], None
    try:
        return auditlog.latest(ops.engine(), last), None
    except SQLAlchemyError as exc:
        return [], ops.scrub(describe_db_error(exc))
