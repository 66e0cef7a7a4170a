"""Rows 2-6 of the decision table: pure checks over a snapshot, first denial wins.

Beyond the contract's rows, two operator controls sit where an operator expects them:
the circuit breaker right after the kill switch, the per-ticker block list right after
the stand-down. Both are BLOCKED with their own codes.

Nothing here touches Redis, SQL or the broker. The snapshot is read once by
`redis_state.read_snapshot`; `now` is passed in so every rule is testable at any instant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from . import session
from .contract import MarketState, StandDownSignal
from .decision import Code, Verdict, deny
from .intake import Signal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The operator/regime keys (and the session the gateway keeps) as read from Redis,
    raw, in one round trip.

    `error` is set when Redis could not be read at all: every check then fails closed.
    """

    execution_enabled: str | None
    market_state: str | None
    stand_down: str | None
    error: str | None = None
    breaker: str | None = None  # key:execution_breaker, set while the circuit is open
    blocklist: str | None = None  # key:execution_blocklist:<ticker> of the signal's ticker
    session: str | None = None  # key:execution_session: the broker's trading session (session.py)
    session_error: str | None = None  # why the broker could not tell the session just now


@dataclass(frozen=True)
class Limits:
    min_probability: float
    market_state_max_age_s: float | None  # an optional extra bound; off (None) by default
    signal_max_age_s: float


def check_kill_switch(snap: Snapshot) -> Verdict | None:
    if snap.error:
        return deny(Code.DISABLED, f"kill switch unreadable ({snap.error})")
    if snap.execution_enabled is None:
        return deny(Code.DISABLED, "key:execution_enabled is not set")
    if snap.execution_enabled != "true":
        return deny(Code.DISABLED, f"key:execution_enabled is {snap.execution_enabled[:40]!r}, not 'true'")
    return None


def parse_market_state(raw: str | None) -> MarketState | str:
    """The parsed state, or a reason why there is none."""
    if raw is None:
        return "key:market_state is not set"
    try:
        return MarketState.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "value"
        return f"unreadable ({loc}: {first['msg']})"


def market_state_snapshot(raw: str | None) -> dict[str, Any] | None:
    """What the audit keeps of key:market_state: the JSON as read, or why it was unusable."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:200]}
    return value if isinstance(value, dict) else {"unreadable": raw[:200]}


CLOCK_SKEW_S = 300.0  # a market state stamped this far in the future is a clock problem, not a state


def check_market_state(snap: Snapshot, now: datetime, max_age_s: float | None) -> Verdict | None:
    """Row 3: GREEN, written during the session now open (however long ago: ZERO writes the
    key only when the state changes), and, when configured, no older than `max_age_s`."""
    if snap.error:
        return deny(Code.MARKET_STATE, f"unreadable ({snap.error})")
    state = parse_market_state(snap.market_state)
    if isinstance(state, str):
        return deny(Code.MARKET_STATE, state)
    current = session.parse(snap.session)
    if isinstance(current, str):
        why = snap.session_error or current
        return deny(Code.MARKET_STATE, f"trading session unknown ({why}); failing closed")
    if now >= current.until:
        return deny(Code.MARKET_STATE, f"trading session answer expired at {current.until.isoformat()}; failing closed")
    if not current.is_open:
        opens = current.next_open.isoformat() if current.next_open else "unknown"
        return deny(Code.MARKET_STATE, f"market closed (next session opens {opens}); no state is good before it")
    assert current.opened_at is not None  # session.parse guarantees it while open
    if state.timestamp < current.opened_at:
        return deny(Code.MARKET_STATE, f"stale: {state.state} written {state.timestamp.isoformat()}, "
                                       f"before this session opened at {current.opened_at.isoformat()}")
    age = (now - state.timestamp).total_seconds()
    if age < -CLOCK_SKEW_S:
        return deny(Code.MARKET_STATE, f"timestamp {-age:.0f}s in the future")
    if max_age_s is not None and age > max_age_s:
        return deny(Code.MARKET_STATE, f"stale: {state.state} is {age:.0f}s old (MARKET_STATE_MAX_AGE_S {max_age_s:.0f}s)")
    if state.state != "GREEN":
        why = f" ({state.reason})" if state.reason else ""
        return deny(Code.MARKET_STATE, f"{state.state}{why}, only GREEN permits an order")
    return None


def check_stand_down(snap: Snapshot, ticker: str, now: datetime) -> Verdict | None:
    if snap.error:
        return deny(Code.STAND_DOWN, f"unreadable ({snap.error})")
    if snap.stand_down is None:
        return None
    try:
        signal = StandDownSignal.model_validate_json(snap.stand_down)
    except ValidationError:
        return deny(Code.STAND_DOWN, "key:stand_down_reason is unreadable; failing closed")
    if signal.expires_at is not None and signal.expires_at <= now:
        return None
    if signal.scope == "GLOBAL":
        return deny(Code.STAND_DOWN, f"GLOBAL: {signal.reason}")
    if signal.scope == "TICKER" and (signal.ticker or "").upper() == ticker:
        return deny(Code.STAND_DOWN, f"TICKER {ticker}: {signal.reason}")
    if signal.scope == "SECTOR":
        log.info("stand-down for sector %r not applied to %s: the gateway has no sector data",
                 signal.sector, ticker)
    return None


def _json_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def operator_time(value: object) -> datetime | str:
    """A time an operator wrote into a key: aware ISO 8601, or the reason it is not one.

    Operator keys are typed by hand; a naive or garbled time must block the message it
    concerns (with the reason), never raise inside a batch of other messages."""
    if not isinstance(value, str):
        return f"time {value!r} is not an ISO 8601 string"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"time {value[:40]!r} is not ISO 8601"
    if parsed.tzinfo is None:
        return f"time {value[:40]!r} has no UTC offset"
    return parsed


def check_breaker(snap: Snapshot) -> Verdict | None:
    """While the circuit breaker is open nothing is submitted (it closes after a probe)."""
    if snap.breaker is None:
        return None
    state = _json_object(snap.breaker) or {}
    return deny(Code.CIRCUIT_OPEN, f"since {state.get('since', '?')}: {state.get('reason', 'unreadable state')}")


def breaker_probe_due(raw: str | None, now: datetime) -> bool:
    """An open breaker whose cool-off has passed asks for a broker probe before closing.

    An `until` that is not an aware time never makes a probe due: the breaker stays open
    until an operator resets it (fail closed)."""
    state = _json_object(raw) if raw else None
    if not state or "until" not in state:
        return False
    until = operator_time(state["until"])
    return isinstance(until, datetime) and until <= now


def check_blocklist(snap: Snapshot, ticker: str, now: datetime) -> Verdict | None:
    """The operator's per-ticker block (earnings, news), with its own expiry."""
    if snap.blocklist is None:
        return None
    entry = _json_object(snap.blocklist)
    if entry is None:
        return deny(Code.BLOCKLIST, f"{ticker} blocked (entry unreadable; failing closed)")
    until = entry.get("until")
    if until is None:
        return deny(Code.BLOCKLIST, f"{ticker} blocked until removed: {entry.get('reason', '')}")
    expiry = operator_time(until)
    if isinstance(expiry, str):
        return deny(Code.BLOCKLIST, f"{ticker} blocked ({expiry}; failing closed): {entry.get('reason', '')}")
    if expiry <= now:
        return None
    return deny(Code.BLOCKLIST, f"{ticker} blocked until {until}: {entry.get('reason', '')}")


def check_threshold(signal: Signal, min_probability: float) -> Verdict | None:
    top = signal.top
    if top.probability < min_probability:
        return deny(Code.THRESHOLD, f"probability {top.probability} < {min_probability}")
    if top.direction != "LONG":
        return deny(Code.THRESHOLD, f"direction {top.direction} is not LONG")
    return None


def check_signal_age(signal: Signal, now: datetime, max_age_s: float) -> Verdict | None:
    age = (now - signal.rank.rank_time).total_seconds()
    if age > max_age_s:
        return deny(Code.EXPIRED, f"ranking is {age:.0f}s old (max {max_age_s:.0f}s)")
    if age < -max_age_s:
        return deny(Code.EXPIRED, f"rank_time is {-age:.0f}s in the future")
    return None


def veto(signal: Signal, snap: Snapshot, now: datetime, limits: Limits) -> Verdict | None:
    """Rows 2-6 in the contract's order; the first denial is the decision."""
    return (
        check_kill_switch(snap)
        or check_breaker(snap)
        or check_market_state(snap, now, limits.market_state_max_age_s)
        or check_stand_down(snap, signal.top.ticker, now)
        or check_blocklist(snap, signal.top.ticker, now)
        or check_threshold(signal, limits.min_probability)
        or check_signal_age(signal, now, limits.signal_max_age_s)
    )


def recheck_before_submit(signal: Signal, snap: Snapshot, now: datetime, limits: Limits) -> Verdict | None:
    """The whole veto again, over a snapshot read after the broker answered row 9: a kill
    switch, breaker, market state, stand-down or block list that changed while the broker
    was asked stops the order, and so does a signal that grew too old while it retried."""
    return veto(signal, snap, now, limits)
