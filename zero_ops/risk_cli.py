"""Operator verbs of the risk controls: the circuit breaker, the per-ticker block list,
and reconcile. Registered on the `zero-ops` group in cli.py.

Nothing here ever writes the kill switch: closing the breaker resumes decisions only
where the kill switch already allows them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
from sqlalchemy.exc import SQLAlchemyError

from zero_tasks.adapters.audit_writer import AuditWriter
from zero_tasks.adapters.outbox import record
from zero_tasks.adapters.risk import CircuitBreaker, alert
from zero_tasks.adapters.runtime import build_runtime
from zero_tasks.core import keys
from zero_tasks.core.inert import inert, inert_any

from . import auditlog, render
from .context import Ops, OpsError
from .state import reply_text
from .status import operator_entry

pass_ops = click.make_pass_decorator(Ops, ensure=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


MAX_BLOCK = timedelta(days=366)  # a block longer than a year is a typo, not a plan


def parse_duration(text: str) -> timedelta:
    duration = auditlog.parse_duration(text)
    if duration is None or duration.total_seconds() <= 0:
        raise click.BadParameter(inert(f"{text!r}: use a number and s, m, h, d or w (e.g. 90m, 6h, 2d)"))
    if duration > MAX_BLOCK:
        raise click.BadParameter(inert(f"{text!r}: at most {MAX_BLOCK.days} days"))
    return duration


@click.group()
def breaker() -> None:
    """The circuit breaker: opens after consecutive broker failures; closes after a probe."""


@breaker.command("status")
@pass_ops
def breaker_status(ops: Ops) -> None:
    r = ops.redis()
    raw, failures = r.mget(keys.BREAKER_KEY, keys.BREAKER_FAILURES_KEY)
    if raw is None:
        click.echo(f"closed ({reply_text(failures) or 0} consecutive broker failure(s) counted)")
        return
    state = inert_any(operator_entry(reply_text(raw)))
    if "unreadable" in state:
        click.echo(click.style("OPEN", fg="red", bold=True) + f" (unreadable value {state['unreadable']!r})")
        return
    click.echo(click.style("OPEN", fg="red", bold=True)
               + f" since {state.get('since')} until at least {state.get('until')}: {state.get('reason')}")


@breaker.command("close")
@click.option("--yes", "-y", is_flag=True, help="Close without asking.")
@pass_ops
def breaker_close(ops: Ops, yes: bool) -> None:
    """Close the breaker by hand (the operator's override of the cool-off and probe)."""
    r = ops.redis()
    if r.get(keys.BREAKER_KEY) is None:
        click.echo("the breaker is already closed")
        return
    if not yes:
        click.confirm("Close the circuit breaker and let orders through again?", abort=True)
    settings = ops.settings
    CircuitBreaker(r, settings.breaker_failures, settings.breaker_window_s, settings.breaker_cooloff_s).close()
    alert(r, "breaker_closed", by="operator", at=utcnow())
    click.echo(click.style("closed", fg="green", bold=True) + " by the operator")


@click.command()
@click.argument("ticker")
@click.option("--for", "duration", default="1d", show_default=True, help="How long: 90m, 6h, 2d.")
@click.option("--reason", required=True, help="Why (shown in every BLOCKED decision), e.g. 'earnings'.")
@pass_ops
def block(ops: Ops, ticker: str, duration: str, reason: str) -> None:
    """Block one ticker for a while (earnings, news); the rest keeps trading."""
    ticker = ticker.upper()
    until = utcnow() + parse_duration(duration)
    value = json.dumps({"reason": reason, "until": until.isoformat(), "since": utcnow().isoformat()})
    ops.redis().set(keys.blocklist_key(ticker), value, exat=int(until.timestamp()) + 1)
    click.echo(inert(f"{ticker} blocked until {until.isoformat()}: {reason}"))


@click.command()
@click.argument("ticker")
@pass_ops
def unblock(ops: Ops, ticker: str) -> None:
    removed = ops.redis().delete(keys.blocklist_key(ticker.upper()))
    click.echo(inert(f"{ticker.upper()} unblocked" if removed else f"{ticker.upper()} was not blocked"))


@click.command()
@click.option("--hours", type=click.FloatRange(min=0.1, max=168), default=24.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ops
def reconcile(ops: Ops, hours: float, as_json: bool) -> None:
    """Compare SUBMITTED audit rows with the broker's orders; record what does not match.

    Never places or cancels an order. Findings are written as ERROR rows and events
    (reason `error: reconcile: ...`), once each however often this runs.
    """
    from zero_tasks.adapters import reconcile_job  # imports alpaca models: only when used

    rt = build_runtime(ops.settings)

    report = reconcile_job.run(rt, utcnow(), hours, lambda rec: record(rt, rec))
    try:
        AuditWriter(rt.redis, rt.engine, name="zero-ops").drain()  # the findings' rows now
    except SQLAlchemyError as exc:
        raise OpsError(f"the audit database is unreachable ({type(exc).__name__}); "
                       "the findings wait in the audit stream for a worker") from exc
    result = {"audited": report.audited, "at_broker": report.at_broker,
              "findings": inert_any([f.as_dict() for f in report.findings])}
    if as_json:
        click.echo(render.dumps(result))
        return
    click.echo(f"{report.audited} SUBMITTED row(s), {report.at_broker} broker order(s) in the last {hours:g} h")
    for finding in report.findings:
        click.echo(click.style(f"  {finding.kind:<14}", fg="red") + inert(f" {finding.ticker:<6} {finding.detail}"))
    if not report.findings:
        click.echo(click.style("  audit and broker agree", fg="green"))


def register(group: click.Group) -> None:
    for command in (breaker, block, unblock, reconcile):
        group.add_command(command)
