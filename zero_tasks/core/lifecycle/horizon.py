"""When the horizon exit is due: `rank_time + horizon` in TRADING minutes.

The contract counts ZERO's horizons in trading minutes (H30 = 30, H2H = 120, HDAY = 390,
HWEEK = 1950) over the broker's calendar: only minutes inside a session count, so an
early close is a shorter day and a weekend or holiday counts nothing. A ranking made
outside a session starts counting at the next open. (ZERO's truth test at 0a64d61 adds
wall-clock minutes to the issue time; the contract's trading minutes are what the
gateway keeps.)

A due time inside the last `buffer` of a session is moved to `close - buffer`: a market
sell must go out while the session still takes it, never be left overnight by mistake.
A due time that lands past a close lands in the next session by construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

HORIZON_MINUTES = {"H30": 30, "H2H": 120, "HDAY": 390, "HWEEK": 1950}


@dataclass(frozen=True)
class Session:
    """One trading session of the broker's calendar, as aware datetimes."""

    open: datetime
    close: datetime


def due_time(rank_time: datetime, horizon: str, sessions: Iterable[Session], buffer: timedelta) -> datetime | str:
    """The moment the horizon exit is due, or why it cannot be known (an unknown horizon,
    a calendar that ends before the horizon does)."""
    minutes = HORIZON_MINUTES.get(horizon)
    if minutes is None:
        return f"unknown horizon {horizon!r}"
    remaining = timedelta(minutes=minutes)
    last_close = None
    for session in sorted(sessions, key=lambda s: s.open):
        if session.close <= rank_time or session.close <= session.open:
            continue
        start = max(session.open, rank_time)
        available = session.close - start
        if remaining <= available:
            return min(start + remaining, session.close - buffer)
        remaining -= available
        last_close = session.close
    until = f" (it ends {last_close.isoformat()})" if last_close else ""
    return f"the calendar has too few sessions after {rank_time.isoformat()} for {horizon}{until}"


def trading_minutes_between(start: datetime, end: datetime, sessions: Iterable[Session]) -> float:
    """Trading minutes from `start` to `end` (what is left to the horizon, for the operator)."""
    total = timedelta()
    for session in sessions:
        lo, hi = max(session.open, start), min(session.close, end)
        if hi > lo:
            total += hi - lo
    return total.total_seconds() / 60
