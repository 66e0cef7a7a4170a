"""Operator verbs of the position lifecycle: `zero-ops positions` (what the gateway holds,
each protect's prices, the time left to its horizon exit) and `zero-ops outcomes` (per
horizon: how ZERO's signals really did, from paper fills). Registered in cli.py.

Read-only: nothing here places, cancels or schedules anything. Every text that came from
outside (a ticker, a reason) is shown inert: control characters escaped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import select

from zero_tasks.adapters import lifecycle_store
from zero_tasks.adapters.audit import execution_outcome
from zero_tasks.core.lifecycle.state import LifecycleRecord

from . import auditlog, render
from .context import Ops

pass_ops = click.make_pass_decorator(Ops, ensure=True)
LABELS = ("PASS", "FAIL", "EXPIRED")


def inert(value: object) -> str:
    """Text safe to print to a terminal: every control character shown as an escape."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _time_left(rec: LifecycleRecord, left: timedelta | None) -> str:
    """Until the horizon exit; a position handed over is the operator's to sell."""
    if rec.handed_over:
        return "the operator's (" + inert(rec.handed_over) + ")"
    return render.age(left.total_seconds()) if left is not None else "-"


def position_rows(records: Iterable[LifecycleRecord], now: datetime) -> list[dict[str, Any]]:
    """One row per lifecycle still scheduled, soonest horizon first."""
    rows = []
    for rec in sorted(records, key=lambda r: (r.due_at or datetime.max.replace(tzinfo=UTC), r.execution_id)):
        left = None if rec.due_at is None else max(timedelta(0), rec.due_at - now)
        protect = (f"{rec.limit_price} / {rec.stop_price}" if rec.limit_price else
                   "none (" + inert(rec.atr_note or "horizon only") + ")" if rec.protect_skipped else "pending")
        rows.append({"execution_id": inert(rec.execution_id), "ticker": inert(rec.ticker),
                     "horizon": inert(rec.horizon), "target / stop": protect,
                     "atr": f"{rec.atr:.4f}" if rec.atr else "-",
                     "horizon exit": rec.due_at, "in": _time_left(rec, left),
                     "deferred": ", ".join(what for what, said in (("protect", rec.protect_deferred),
                                                                   ("exit", rec.exit_deferred)) if said)})
    return rows


def outcome_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per horizon: count, PASS / FAIL / EXPIRED, hit rate (PASS of the labelled) beside the
    mean probability ZERO gave (its calibration, from fills), mean return, total P&L."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by[inert(row["horizon"])].append(row)
    summary = []
    for horizon in sorted(by):
        group = by[horizon]
        counts = {label: sum(1 for r in group if r["outcome"] == label) for label in LABELS}
        labelled = sum(counts.values())
        probabilities = [float(r["probability"]) for r in group if r["probability"] is not None]
        returns = [float(r["return_pct"]) for r in group if r["return_pct"] is not None]
        pnl = sum(float(r["realized_pnl"]) for r in group if r["realized_pnl"] is not None)
        summary.append({
            "horizon": horizon, "count": len(group), **{label.lower(): counts[label] for label in LABELS},
            "manual": len(group) - labelled,
            "hit rate": f"{counts['PASS'] / labelled:.1%}" if labelled else "-",
            "mean p": f"{sum(probabilities) / len(probabilities):.3f}" if probabilities else "-",
            "mean return %": f"{sum(returns) / len(returns):.3f}" if returns else "-",
            "total p&l": f"{pnl:.2f}"})
    return summary


SUMMARY_COLUMNS = ("horizon", "count", "pass", "fail", "expired", "manual", "hit rate", "mean p", "mean return %",
                   "total p&l")
POSITION_COLUMNS = ("execution_id", "ticker", "horizon", "target / stop", "atr", "horizon exit", "in", "deferred")


def register(main: click.Group) -> None:
    main.add_command(positions)
    main.add_command(outcomes)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
@pass_ops
def positions(ops: Ops, as_json: bool) -> None:
    """What the gateway holds: each lifecycle still open, its protect and its horizon exit."""
    rows = position_rows(lifecycle_store.active(ops.redis(decode=False)), datetime.now(UTC))
    render.emit_rows(rows, POSITION_COLUMNS, as_json, f"no open position lifecycle in {ops.redis_label()}")


@click.command()
@click.option("--since", default="7d", show_default=True, help="ISO time (no offset = UTC) or 15m, 2h, 7d ago.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per horizon.")
@pass_ops
def outcomes(ops: Ops, since: str, as_json: bool) -> None:
    """How each horizon's executions ended: PASS / FAIL / EXPIRED, hit rate beside ZERO's
    mean probability, mean return and total realized P&L (execution_outcome)."""
    try:
        start = auditlog.parse_when(since, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    query = select(execution_outcome).where(execution_outcome.c.closed_at >= start)
    with ops.engine().connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    render.emit_rows(outcome_summary(rows), SUMMARY_COLUMNS, as_json,
                     f"no outcomes since {start.isoformat()} in {ops.database_label()}")
