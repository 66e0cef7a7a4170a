"""`zero-ops` / `python -m zero_ops`: the operator's verbs over the gateway's Redis keys and audit.

Each verb is thin: it gathers facts (state, auditlog, status), renders them (render) and
writes at most one contract key. Failures are messages with a non-zero exit, never a
traceback: 2 for configuration or infrastructure, 1 when the verb did not get its answer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast, get_args

import click
import redis
from alpaca.common.exceptions import APIError
from alpaca.trading.models import TradeAccount
from sqlalchemy.exc import SQLAlchemyError

from zero_tasks.adapters.alpaca_adapter import make_trading_client
from zero_tasks.adapters.audit import SchemaNotAtHead
from zero_tasks.core import keys
from zero_tasks.core.contract import Direction, Horizon, State, Status
from zero_tasks.core.inert import inert, inert_any, inert_json_line
from zero_tasks.core.intake import Invalid, parse_payload

from . import auditlog, lifecycle_cli, render, risk_cli, samples, state
from .context import Ops, OpsError, OpsFailure
from .pubsub import messages, subscribe, wait_for_decision
from .status import build_report

pass_ops = click.make_pass_decorator(Ops, ensure=True)
STATUSES = list(get_args(Status))


def utcnow() -> datetime:
    return datetime.now(UTC)


def shown(value: object) -> str:
    """A previous key value for display: `missing` or its repr, cut short."""
    if value is None:
        return "missing"
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return repr(text[:40])


class OpsGroup(click.Group):
    """Turns Redis and database failures anywhere in a verb into one clear line and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        ops = ctx.ensure_object(Ops)
        try:
            return super().invoke(ctx)
        except redis.RedisError as exc:
            raise ops.redis_error(exc) from None
        except SQLAlchemyError as exc:
            raise ops.database_error(exc) from None
        except SchemaNotAtHead as exc:  # the audit store is not migrated: say what to run
            raise OpsError(ops.scrub(f"database {ops.database_label()}: {exc}")) from None
        finally:
            ops.close()


class When(click.ParamType):
    """`--since/--until`: ISO 8601 (no offset = UTC) or relative (`15m`, `2h`, `1d` ago)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return auditlog.parse_when(str(value), utcnow())
        except ValueError as exc:
            self.fail(inert(str(exc)), param, ctx)


@click.group(cls=OpsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operator's CLI of the ZERO execution gateway (paper only).

    Reads the gateway's own validated settings from the environment, so it refuses to
    run unless ALPACA_PAPER=true. No verb ever prints a key or a password.
    """


# --- kill switch ----------------------------------------------------------------------

@main.command()
@click.option("--yes", "-y", is_flag=True, help="Enable without asking.")
@pass_ops
def enable(ops: Ops, yes: bool) -> None:
    """Set key:execution_enabled to "true" after showing what that arms."""
    r = ops.redis()
    snap = state.read_keys(r)
    for line in preflight(ops, snap.market_state, snap.execution_enabled, snap.session):
        click.echo(line)
    if not yes:
        click.confirm("Enable execution (the gateway may place 1-share paper orders)?", abort=True)
    previous = r.set(keys.EXECUTION_ENABLED_KEY, "true", get=True)
    click.echo(click.style("ENABLED", fg="green", bold=True)
               + f': {keys.EXECUTION_ENABLED_KEY} = "true" (was {shown(previous)})')


def preflight(ops: Ops, market_raw: str | None, enabled_raw: str | None, kept_session: str | None) -> list[str]:
    """What the operator should see before arming: mode, broker, market state, account."""
    view = inert_any(state.market_state(market_raw, utcnow(), ops.settings.market_state_max_age_s, kept_session))
    lines = ["About to enable execution:"]
    lines += render.section("mode", "paper")
    lines += render.section("broker", ops.broker_label())
    lines += render.section("market state", render.market_text(view))
    lines += render.section("account", account_text(ops))
    lines += render.section("kill switch", f"currently {shown(enabled_raw)}")
    return lines


def account_text(ops: Ops) -> str:
    """Account status and buying power; an unreachable broker is shown, not fatal."""
    try:
        # raw_data is off: the model, not the JSON
        account = cast(TradeAccount, make_trading_client(ops.settings).get_account())
    except Exception as exc:  # noqa: BLE001 - any broker failure is information here
        return click.style("broker unreachable", fg="red", bold=True) + f" ({ops.scrub(broker_error(exc))})"
    status = getattr(account.status, "value", account.status)
    return f"{status}, buying power {account.buying_power}"


def broker_error(exc: Exception) -> str:
    """Short: the HTTP status and Alpaca's message, or the kind of network failure."""
    if isinstance(exc, APIError):
        return f"HTTP {exc.status_code}: {str(exc)[:120]}"
    return type(exc).__name__


@main.command()
@pass_ops
def disable(ops: Ops) -> None:
    """Set key:execution_enabled to "false" at once (no question: stopping must be instant)."""
    previous = ops.redis().set(keys.EXECUTION_ENABLED_KEY, "false", get=True)
    click.echo(click.style("DISABLED", fg="red", bold=True)
               + f': {keys.EXECUTION_ENABLED_KEY} = "false" (was {shown(previous)})')


# --- status ---------------------------------------------------------------------------

@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the human view.")
@click.option("--last", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many recent decisions to show (0: none, no database access).")
@pass_ops
def status(ops: Ops, as_json: bool, last: int) -> None:
    """Kill switch, market state, stand-down, cooldowns, queues, workers, last decisions."""
    report = inert_any(build_report(ops, utcnow(), last))  # reasons other services wrote
    if as_json:
        click.echo(render.dumps(report))
        return
    for line in render.status_lines(report):
        click.echo(line)


# --- tail -----------------------------------------------------------------------------

@main.command()
@click.option("--json", "as_json", is_flag=True,
              help="Print each message as received, on one line, control characters escaped.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N messages.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="Stop after this many seconds.")
@pass_ops
def tail(ops: Ops, as_json: bool, count: int | None, timeout: float | None) -> None:
    """Follow chan:trade_update: one line per decision, as the gateway publishes it."""
    pubsub = subscribe(ops.redis(decode=False), keys.TRADE_UPDATE_CHANNEL)
    click.echo(f"following {keys.TRADE_UPDATE_CHANNEL} on {ops.redis_label()} (Ctrl-C stops)", err=True)
    seen = 0
    try:
        for text in messages(pubsub, timeout):
            click.echo(inert_json_line(text) if as_json else render.trade_update_line(text))
            seen += 1
            if count is not None and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        pubsub.close()


# --- log ------------------------------------------------------------------------------

@main.command()
@click.option("--since", type=When(), help="ISO time (no offset = UTC) or 15m, 2h, 1d ago.")
@click.option("--until", type=When(), help="ISO time (no offset = UTC) or 15m, 2h, 1d ago.")
@click.option("--ticker", help="Only this ticker.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES, case_sensitive=False),
              help="Only these statuses (repeatable).")
@click.option("--execution-id", help="Only this execution_id.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines, every column, datetimes ISO.")
@pass_ops
def log(ops: Ops, since: datetime | None, until: datetime | None, ticker: str | None,
        statuses: tuple[str, ...], execution_id: str | None, limit: int, as_json: bool) -> None:
    """Decisions from execution_log, newest first."""
    query = auditlog.LogQuery(since=since, until=until, ticker=ticker.upper() if ticker else None,
                              statuses=tuple(s.upper() for s in statuses), execution_id=execution_id,
                              limit=limit)
    render.emit_rows(auditlog.fetch(ops.engine(), query), auditlog.TABLE_COLUMNS, as_json,
                     f"no decisions match in {ops.database_label()}")


# --- demo helpers ---------------------------------------------------------------------

@main.command("publish-sample")
@click.option("--ticker", default="SPY", show_default=True)
@click.option("--probability", type=click.FloatRange(0.0, 1.0), default=0.95, show_default=True)
@click.option("--direction", type=click.Choice(list(get_args(Direction)), case_sensitive=False),
              default="LONG", show_default=True)
@click.option("--horizon", type=click.Choice(list(get_args(Horizon)), case_sensitive=False),
              default="H30", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the gateway's decision.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds to wait for the decision.")
@pass_ops
def publish_sample(ops: Ops, ticker: str, probability: float, direction: str, horizon: str, wait: bool,
                   timeout: float) -> None:
    """Publish a valid OpportunityRank on chan:opportunity_update and show the decision."""
    payload = sample_payload(ops, ticker.upper(), probability, direction.upper(), horizon.upper())
    exec_id = samples.sample_execution_id(json.loads(payload))
    r = ops.redis(decode=False)
    pubsub = subscribe(r, keys.TRADE_UPDATE_CHANNEL) if wait else None
    try:
        receivers = r.publish(keys.OPPORTUNITY_CHANNEL, payload)
        if receivers == 0:
            raise OpsFailure(f"nobody is subscribed to {keys.OPPORTUNITY_CHANNEL} on {ops.redis_label()}: "
                             "is the bridge running? (the message is lost)")
        click.echo(f"published {exec_id} to {receivers} subscriber(s)")
        update = wait_for_decision(pubsub, exec_id, timeout) if pubsub is not None else None
    finally:
        if pubsub is not None:
            pubsub.close()
    if wait:
        show_decision(update, exec_id, timeout)


def sample_payload(ops: Ops, ticker: str, probability: float, direction: str, horizon: str) -> str:
    """The sample as JSON, checked by the gateway's own intake so it is never SKIPPED as invalid."""
    payload = json.dumps(samples.opportunity_rank(ticker, probability, direction, horizon, utcnow()))
    verdict = parse_payload(payload, ops.settings.max_payload_bytes)
    if isinstance(verdict, Invalid):
        raise click.UsageError(f"the sample would not be a valid OpportunityRank: {verdict.reason}")
    return payload


def show_decision(update: dict[str, Any] | None, exec_id: str, timeout: float) -> None:
    if update is None:
        raise OpsFailure(f"no decision for {exec_id} on {keys.TRADE_UPDATE_CHANNEL} within {timeout:g}s: "
                         "are the workers running?")
    update = inert_any(update)
    click.echo(render.trade_update_line(json.dumps(update)))
    for line in (update.get("why") or [])[1:]:
        click.echo(f"    {line}")


@main.command()
@click.argument("state_name", metavar="STATE", type=click.Choice(list(get_args(State)), case_sensitive=False))
@click.option("--reason", default="set by zero-ops market (local demo)", show_default=True)
@pass_ops
def market(ops: Ops, state_name: str, reason: str) -> None:
    """Write key:market_state = STATE stamped now (a local demo of the regime service)."""
    click.echo(click.style("warning:", fg="yellow", bold=True) + " in production the regime service owns "
               f"{keys.MARKET_STATE_KEY} (it writes the key when the state changes); this is for a local demo",
               err=True)
    state_name = state_name.upper()
    ops.redis().set(keys.MARKET_STATE_KEY, samples.market_state(state_name, reason, utcnow()))
    click.echo(f"{keys.MARKET_STATE_KEY} = {state_name} (good for orders until the trading session closes)")


risk_cli.register(main)
lifecycle_cli.register(main)

__all__ = ["main"]
