"""Reading execution_log for `log` and `status`: SQLAlchemy Core over the gateway's own table.

Time bounds are converted to UTC before they are bound: SQLite keeps the gateway's UTC
wall time without an offset, so an aware bound in another zone would compare wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from zero_tasks.adapters.audit import execution_log
from zero_tasks.core.contract import as_utc  # naive means UTC, as in the contract

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

TABLE_COLUMNS = ("time", "status", "ticker", "execution_id", "reason", "alpaca_order_id")


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `15m`, `2h`, `1d`, `1w`, or None when the text is not a duration."""
    match = _RELATIVE.match(text)
    if not match:
        return None
    try:
        return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2).lower()])
    except OverflowError:  # more than timedelta can hold: not a duration anybody means
        return None


def parse_when(text: str, now: datetime) -> datetime:
    """`15m`, `2h`, `1d` (ago) or an ISO 8601 time; no offset means UTC, as in the contract."""
    ago = parse_duration(text)
    try:
        if ago is not None:
            return now - ago
        return as_utc(datetime.fromisoformat(text.strip()))
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither an ISO time nor a relative time like 15m, 2h, 1d "
                         "(within the years 1-9999)") from None


@dataclass(frozen=True)
class LogQuery:
    """The filters of `log`; empty means no filter."""

    since: datetime | None = None
    until: datetime | None = None
    ticker: str | None = None
    statuses: tuple[str, ...] = field(default_factory=tuple)
    execution_id: str | None = None
    limit: int = 50


def fetch(engine: Engine, query: LogQuery, columns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Matching rows, newest first, as dicts with aware UTC datetimes."""
    cols = [execution_log.c[name] for name in columns] if columns else [execution_log]
    stmt = select(*cols).order_by(execution_log.c.time.desc()).limit(query.limit)
    stmt = _filtered(stmt, query)
    with engine.connect() as conn:
        return [_normalised(dict(row._mapping)) for row in conn.execute(stmt)]


def latest(engine: Engine, count: int) -> list[dict[str, Any]]:
    """The last `count` decisions with the columns of the table view, for `status`."""
    return fetch(engine, LogQuery(limit=count), TABLE_COLUMNS)


def _filtered(stmt: Any, query: LogQuery) -> Any:
    c = execution_log.c
    if query.since is not None:
        stmt = stmt.where(c.time >= as_utc(query.since))
    if query.until is not None:
        stmt = stmt.where(c.time <= as_utc(query.until))
    if query.ticker:
        stmt = stmt.where(c.ticker == query.ticker)
    if query.statuses:
        stmt = stmt.where(c.status.in_(query.statuses))
    if query.execution_id:
        stmt = stmt.where(c.execution_id == query.execution_id)
    return stmt


def _normalised(row: dict[str, Any]) -> dict[str, Any]:
    return {k: as_utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
