"""The trading session now: whether the market is open and since when, as row 3 needs it.

ZERO's regime service writes `key:market_state` only when the state or its reason
changes, so an unchanged GREEN is legitimately hours old; what makes it stale is having
been written before the current session opened (yesterday's GREEN, a weekend's). Row 3
therefore needs the session, which only the broker knows for sure (holidays, early
closes): Alpaca's clock says whether the market is open and when it next opens or closes,
its calendar when today's session opened.

The broker's answer is turned into times on the gateway's own clock by the durations it
gives (opened so long ago, closes in so long), so a gateway clock a little off Alpaca's
still judges consistently. It is good until the session closes (or, while closed, opens),
and at most MAX_TRUST_S. One answer is kept in Redis for every worker and bridge
(`key:execution_session`, alpaca_adapter + redis_state); this module is pure.

The kept answer is sealed like a task (task_auth.py: HMAC under TASK_SIGNING_KEY, with the
time it was sealed) and opened on every read: anyone who can write Redis could otherwise
keep the market "open" until 2030 with the broker saying closed. A seal older than
MAX_TRUST_S (+ TRUST_SLACK_S) is refused on read, whatever TTL the key has and whatever
`until` it names: the one-hour maximum trust holds on read. A refused answer counts as
none (the worker asks the broker again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from zero_tasks.core.task_auth import open_seal, seal

NEW_YORK = ZoneInfo("America/New_York")
MAX_TRUST_S = 3600.0  # ask the broker again at least this often, whatever it said
SEAL_NAME = "zero.session"  # what the kept answer's seal is made for (never a task's name)
TRUST_SLACK_S = 60.0  # clocks of the hosts that seal and open it may differ this much


@dataclass(frozen=True)
class TradingSession:
    """The broker's answer, on the gateway's clock."""

    is_open: bool
    opened_at: datetime | None  # the current session's open (only while open)
    until: datetime  # when this answer is no longer good: the close, or the next open
    next_open: datetime | None  # while closed: when the next session opens, as the broker says
    checked_at: datetime

    def to_json(self) -> str:
        return json.dumps({"is_open": self.is_open, "opened_at": _iso(self.opened_at), "until": _iso(self.until),
                           "next_open": _iso(self.next_open), "checked_at": _iso(self.checked_at)})

    def ttl_ms(self, now: datetime) -> int:
        """How long Redis may keep this answer (at least 1 ms)."""
        return max(1, int((self.until - now).total_seconds() * 1000))

    def day(self) -> date:
        """The New York date of this session (while closed: of the next one)."""
        moment = self.opened_at if self.is_open else self.next_open
        return (moment or self.checked_at).astimezone(NEW_YORK).date()


def from_broker(now: datetime, clock_at: datetime, is_open: bool, next_open: datetime, next_close: datetime,
                opens_today: Iterable[datetime]) -> TradingSession | str:
    """The session from Alpaca's clock (its `timestamp`, `is_open`, `next_open`,
    `next_close`) and the opening times its calendar gives for the clock's date; or why
    the answer cannot be used."""
    if any(t.tzinfo is None for t in (clock_at, next_open, next_close)):
        return "the broker's clock gave a time without an offset"
    trust = now + timedelta(seconds=MAX_TRUST_S)
    if not is_open:
        if next_open <= clock_at:
            return f"the broker's clock is closed with its next open {next_open.isoformat()} already past"
        return TradingSession(False, None, min(now + (next_open - clock_at), trust), next_open, now)
    opened = [t for t in opens_today if t <= clock_at]
    if not opened:
        return f"the broker's calendar has no session opened by {clock_at.isoformat()}"
    if next_close <= clock_at:
        return f"the broker's clock is open with its next close {next_close.isoformat()} already past"
    return TradingSession(True, now - (clock_at - max(opened)), min(now + (next_close - clock_at), trust), None, now)


def sealed(current: TradingSession, key: str, now: datetime) -> str:
    """The answer as kept in Redis: its JSON with a seal made now."""
    return json.dumps(seal(key, SEAL_NAME, json.loads(current.to_json()), now))


def opened(raw: str | None, key: str, now: datetime) -> tuple[str | None, str | None]:
    """(the kept answer's JSON, None) when its seal opens with `key` and is younger than
    MAX_TRUST_S; (None, why it is refused) otherwise; (None, None) when none is kept."""
    if raw is None:
        return None, None
    if not key:
        return None, "its seal cannot be checked without TASK_SIGNING_KEY"
    try:
        value = json.loads(raw)
    except ValueError:
        return None, "kept answer unreadable"
    body, problem = open_seal(key, SEAL_NAME, value, now, MAX_TRUST_S + TRUST_SLACK_S)
    if body is None:
        return None, f"kept answer refused: {problem}"
    return json.dumps(body), None


def parse(raw: str | None) -> TradingSession | str:
    """The session kept in Redis, or why there is none to judge by."""
    if raw is None:
        return "not known yet"
    try:
        value = json.loads(raw)
        session = TradingSession(
            is_open=_bool(value["is_open"]), opened_at=_time(value["opened_at"]), until=_required(value["until"]),
            next_open=_time(value["next_open"]), checked_at=_required(value["checked_at"]))
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable ({type(exc).__name__})"
    if session.is_open and session.opened_at is None:
        return "unreadable (open with no opening time)"
    return session


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("is_open is not a boolean")
    return value


def _required(value: object) -> datetime:
    parsed = _time(value)
    if parsed is None:
        raise ValueError("time missing")
    return parsed


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("time is not a string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time without an offset")
    return parsed


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None
