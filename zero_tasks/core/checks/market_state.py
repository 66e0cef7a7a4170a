"""Row 3, the final veto: ZERO's market state, GREEN and written during the trading session
now open (session.py), and, when configured, no older than MARKET_STATE_MAX_AGE_S."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from zero_tasks.core import session
from zero_tasks.core.contract import MarketState
from zero_tasks.core.decision import Code, Verdict, deny
from zero_tasks.core.snapshot import Snapshot

CLOCK_SKEW_S = 300.0  # a market state stamped this far in the future is a clock problem, not a state


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
        return deny(Code.MARKET_STATE,
                    f"stale: {state.state} is {age:.0f}s old (MARKET_STATE_MAX_AGE_S {max_age_s:.0f}s)")
    if state.state != "GREEN":
        why = f" ({state.reason})" if state.reason else ""
        return deny(Code.MARKET_STATE, f"{state.state}{why}, only GREEN permits an order")
    return None
