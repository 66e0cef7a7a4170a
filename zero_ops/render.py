"""Turning facts into text: JSON, aligned tables, coloured TradeUpdate lines, the status view.

Nothing here reads Redis or SQL; every function takes values and returns strings, so the
human and `--json` outputs are two renderings of the same data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import click

from zero_tasks.core.inert import inert, inert_any

from .auditlog import TABLE_COLUMNS

STATUS_STYLE: dict[str, dict[str, Any]] = {
    "SUBMITTED": {"fg": "green", "bold": True},
    "REJECTED": {"fg": "red", "bold": True},
    "ERROR": {"fg": "red", "bold": True},
    "BLOCKED": {"fg": "yellow"},
    "SKIPPED": {"fg": "blue", "dim": True},
}
MAX_CELL = 80


def to_jsonable(value: Any) -> Any:
    """json.dumps default: datetimes as ISO (naive means UTC), Decimals as numbers."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, default=to_jsonable, ensure_ascii=False)


def styled_status(status: str) -> str:
    """The status word padded to one width, then coloured (padding first keeps columns aligned)."""
    return click.style(f"{status:<9}", **STATUS_STYLE.get(status, {}))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Aligned columns with a header; the status column is coloured after alignment."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    for row in cells:
        parts = [_styled_cell(col, text, w) for col, text, w in zip(columns, row, widths, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return lines


def emit_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str) -> None:
    """What a listing verb prints: JSON lines, or a table (`empty` on stderr when there is no
    row). Every text cell is made inert first: rows hold text other services wrote."""
    rows = inert_any(list(rows))
    if as_json:
        for row in rows:
            click.echo(dumps(row))
        return
    if not rows:
        click.echo(empty, err=True)
        return
    for line in table(rows, columns):
        click.echo(line)


def _styled_cell(column: str, text: str, width: int) -> str:
    padded = text.ljust(width)
    return click.style(padded, **STATUS_STYLE.get(text, {})) if column == "status" else padded


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def trade_update_line(text: str) -> str:
    """One readable line per TradeUpdate; anything that is not one is shown as it came,
    control characters escaped (as every field of one is)."""
    try:
        update = json.loads(text)
    except ValueError:
        return inert(text)
    if not isinstance(update, dict) or "status" not in update:
        return inert(text)
    update = inert_any(update)
    why = update.get("why")
    first = why[0] if isinstance(why, list) and why else ""
    return " ".join([local_time(update.get("timestamp")), styled_status(str(update["status"])),
                     str(update.get("execution_id") or "?"), str(update.get("ticker") or "?"), str(first)])


def local_time(stamp: Any) -> str:
    """The event's own time in the operator's zone; the receipt time if it has none."""
    try:
        when = datetime.fromisoformat(str(stamp))
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        when = datetime.now(UTC)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m{secs:02d}s" if minutes else f"{sign}{secs}s"


# --- the status view ---------------------------------------------------------------

def kill_switch_text(view: dict[str, Any]) -> str:
    if view["enabled"]:
        return click.style("ENABLED", fg="green", bold=True) + ' (key:execution_enabled = "true")'
    shown = "missing" if view["value"] is None else f"= {view['value'][:40]!r}"
    return click.style("DISABLED", fg="red", bold=True) + f" (key:execution_enabled {shown})"


def market_text(view: dict[str, Any]) -> str:
    if view["problem"]:
        return click.style("NONE", fg="red") + f" ({view['problem']})"
    colour = {"GREEN": "green", "YELLOW": "yellow"}.get(view["state"], "red")
    text = click.style(view["state"], fg=colour, bold=True) + f", written {age(view['age_s'])} ago"
    if view["max_age_s"] is not None:
        text += f" (MARKET_STATE_MAX_AGE_S {view['max_age_s']:.0f}s)"
    if view["reason"]:
        text += f" - {view['reason']}"
    text += "; " + session_text(view)
    if view["veto"]:
        text += "; " + click.style("orders BLOCKED", fg="red", bold=True) + f" ({view['veto']})"
    return text


def session_text(view: dict[str, Any]) -> str:
    """The trading session as the workers last heard it from the broker."""
    current = view["session"]
    if current is None:
        return f"trading session {view['session_problem']} (a worker asks the broker at the next signal)"
    if current["is_open"]:
        return f"session open since {current['opened_at']}"
    return f"market closed, next session opens {current['next_open']}"


def stand_down_text(view: dict[str, Any]) -> str:
    if not view["present"]:
        return "none"
    if view["problem"]:
        return click.style("IN FORCE", fg="red", bold=True) + f" ({view['problem']})"
    scope = view["scope"] + (f" {view['ticker']}" if view["ticker"] else "") + (
        f" {view['sector']}" if view["sector"] else "")
    until = f" until {view['expires_at']}" if view["expires_at"] else " (no expiry)"
    if view["in_force"]:
        return click.style("IN FORCE", fg="red", bold=True) + f" {scope}{until}: {view['reason']}"
    return f"expired {scope} (at {view['expires_at']}): {view['reason']}"


def cooldowns_text(items: list[dict[str, Any]]) -> list[str]:
    if not items:
        return ["none"]
    return [f"{c['ticker']} since {c['since']}, {age(c['ttl_s'])} left" for c in items]


def queues_text(queues: dict[str, int] | str) -> str:
    if isinstance(queues, str):
        return queues
    return "  ".join(f"{name}={depth}" for name, depth in queues.items())


def workers_text(items: list[dict[str, Any]]) -> list[str]:
    if not items:
        return [click.style("none alive", fg="red")]
    return [f"{w['hostname']} pid {w['pid']} concurrency {w['concurrency']}" for w in items]


def section(label: str, lines: Iterable[str] | str) -> list[str]:
    """`label  first line`, continuation lines indented under the first."""
    items = [lines] if isinstance(lines, str) else list(lines) or [""]
    pad = " " * 16
    return [f"  {label:<14}{items[0]}"] + [f"  {pad[2:]}{line}" for line in items[1:]]


def status_lines(report: dict[str, Any]) -> list[str]:
    """The human view of `status`: one section per fact, then the last decisions."""
    lines = [click.style("ZERO execution gateway", bold=True) + f" - {report['mode']} only, at {report['now']}"]
    lines += section("broker", report["broker"])
    lines += section("redis", report["redis"])
    lines += section("database", report["database"])
    lines += section("kill switch", kill_switch_text(report["kill_switch"]))
    lines += section("market state", market_text(report["market_state"]))
    lines += section("stand-down", stand_down_text(report["stand_down"]))
    lines += section("cooldowns", cooldowns_text(report["cooldowns"]))
    lines += section("queues", queues_text(report["queues"]))
    lines += section(f"workers ({len(report['workers'])})", workers_text(report["workers"]))
    lines += risk_lines(report["risk"])
    if "mirror" in report:
        lines += section("mirror", mirror_text(report["mirror"]))
    lines += decisions_lines(report)
    return lines


def escaped(value: Any) -> str:
    """Text from outside (a Redis value anyone may write) with its control characters
    shown as escapes, never sent to the terminal as they are."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(value))


def mirror_text(view: dict[str, Any]) -> str:
    """One line: in sync (row 9 answers from it) or why not, who leads, the counters."""
    state = click.style("in sync", fg="green") if view["in_sync"] else click.style(
        f"not used ({escaped(view['why_not'])}): row 9 asks the broker", fg="yellow")
    leader = escaped(view["leader"]) if view["leader"] else "none"
    last = age(view["last_event_age_s"]) if view["last_event_age_s"] is not None else "never"
    return (f"{state}; leader {leader}, epoch {view['epoch']}, last event {last}, {view['resyncs']} resync(s), "
            f"row 9 {view['row9_from_mirror']} from the mirror / {view['row9_from_rest']} by REST")


def _garbled(entry: dict[str, Any]) -> str:
    """What is wrong with an operator's entry, for the line that shows it; '' when nothing."""
    if "unreadable" in entry:
        return click.style(f" UNREADABLE {entry['unreadable']!r} (orders blocked)", fg="red", bold=True)
    problems = [entry[k] for k in ("until_problem", "since_problem") if k in entry]
    return click.style(f" ({'; '.join(problems)}: orders blocked)", fg="red", bold=True) if problems else ""


def risk_lines(risk: dict[str, Any]) -> list[str]:
    breaker = risk["breaker"]
    text = (click.style("OPEN", fg="red", bold=True) + f" since {breaker.get('since')}: {breaker.get('reason')}"
            + _garbled(breaker) if breaker else "closed")
    lines = section("breaker", text)
    lines += section("orders today", f"{risk['orders_today']} of {risk['max_orders_per_day']} "
                                     f"(trading day {risk['trading_day']})")
    blocked = [f"{t} until {(e or {}).get('until')}: {(e or {}).get('reason')}{_garbled(e or {})}"
               for t, e in risk["blocklist"].items()]
    lines += section("blocklist", blocked or "none")
    return lines


def decisions_lines(report: dict[str, Any]) -> list[str]:
    if report["decisions_error"]:
        return ["", f"last decisions: unavailable ({report['decisions_error']})"]
    if not report["decisions"]:
        return ["", "last decisions: none"]
    return ["", f"last decisions, newest first ({len(report['decisions'])} shown):",
            *("  " + line for line in table(report["decisions"], TABLE_COLUMNS))]
