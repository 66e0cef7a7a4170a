"""When the simulated market trades: the regular session, as Alpaca's clock and calendar tell it.

Pure time arithmetic, no HTTP and no state, so the clock, the calendar and the order fills
all agree on one answer. The default is the New York Stock Exchange's own calendar
(``exchange_calendars``' "XNYS", 1970-2030: its holidays, and its early closes at 13:00),
minus any extra holiday given; outside that range, 09:30-16:00 Monday-Friday. "Always open" is a
session that runs every calendar day from midnight to midnight New York time: the
newcomer's demo trades at any hour, and the clock and calendar still answer consistently.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
WEEKDAYS = frozenset(range(5))  # Monday..Friday
EXTENDED_OPEN, EXTENDED_CLOSE = "0400", "2000"  # Alpaca's calendar session_open / session_close
_SEARCH_DAYS = 400  # far more than any run of weekends and holidays
EXCHANGE_CALENDAR = "XNYS"
CALENDAR_YEARS = (1970, 2030)  # the range read from exchange_calendars (Alpaca's calendar: 1970-2029)


@functools.cache
def nyse_sessions() -> dict[date, tuple[datetime, datetime]]:
    """Every NYSE session 1970-2030 with its aware open and close, read once per process
    (exchange_calendars takes about a second to build it)."""
    import exchange_calendars  # type: ignore[import-untyped]  # imported here: a second, only when needed

    with warnings.catch_warnings():  # a pandas deprecation inside exchange_calendars, not ours to fix
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        calendar = exchange_calendars.get_calendar(
            EXCHANGE_CALENDAR, start=f"{CALENDAR_YEARS[0]}-01-01", end=f"{CALENDAR_YEARS[1]}-12-31")
        return {
            session.date(): (opened.to_pydatetime().astimezone(NEW_YORK),
                             closed.to_pydatetime().astimezone(NEW_YORK))
            for session, opened, closed in zip(calendar.sessions, calendar.opens, calendar.closes, strict=True)
        }


@dataclass(frozen=True)
class SessionDay:
    """One trading day: its New York date and the session's aware open and close."""

    day: date
    open: datetime
    close: datetime


@dataclass(frozen=True)
class TradingSession:
    """A market that is open on `weekdays`, not on `holidays`, from `open_at` to `close_at`."""

    always_open: bool = False
    holidays: frozenset[date] = field(default_factory=frozenset)
    open_at: time = REGULAR_OPEN
    close_at: time = REGULAR_CLOSE
    weekdays: frozenset[int] = WEEKDAYS
    exchange: bool = True  # the NYSE calendar's days and hours (False: `weekdays` from open_at to close_at)

    @classmethod
    def new_york(cls, holidays: Iterable[date] = ()) -> TradingSession:
        return cls(holidays=frozenset(holidays))

    @classmethod
    def around_the_clock(cls) -> TradingSession:
        return cls(always_open=True)

    @property
    def name(self) -> str:
        return "always_open" if self.always_open else "new_york"

    def day(self, on: date) -> SessionDay | None:
        """The session on this New York date, or None when the market does not open."""
        if self.always_open:
            start = datetime.combine(on, time(0), NEW_YORK)
            return SessionDay(on, start, datetime.combine(on + timedelta(days=1), time(0), NEW_YORK))
        if on in self.holidays:
            return None
        if self.exchange and CALENDAR_YEARS[0] <= on.year <= CALENDAR_YEARS[1]:
            hours = nyse_sessions().get(on)
            return SessionDay(on, hours[0], hours[1]) if hours is not None else None
        if on.weekday() not in self.weekdays:
            return None
        return SessionDay(on, datetime.combine(on, self.open_at, NEW_YORK),
                          datetime.combine(on, self.close_at, NEW_YORK))

    def current(self, at: datetime) -> SessionDay | None:
        """The session `at` falls in (open inclusive, close exclusive), if any."""
        today = self.day(at.astimezone(NEW_YORK).date())
        return today if today is not None and today.open <= at < today.close else None

    def is_open(self, at: datetime) -> bool:
        return self.current(at) is not None

    def _days_from(self, at: datetime) -> Iterable[SessionDay]:
        start = at.astimezone(NEW_YORK).date()
        for offset in range(_SEARCH_DAYS):
            found = self.day(start + timedelta(days=offset))
            if found is not None:
                yield found
        raise ValueError("the session never opens (no weekday left)")

    def next_open(self, at: datetime) -> datetime:
        """The first open strictly after `at` (while open: tomorrow's, as Alpaca's clock says)."""
        return next(d.open for d in self._days_from(at) if d.open > at)

    def next_close(self, at: datetime) -> datetime:
        """The close of the current session, or of the next one while closed."""
        return next(d.close for d in self._days_from(at) if d.close > at)

    def fill_time(self, at: datetime) -> datetime:
        """When an order that is due `at` can execute: at once in session, else at the next open."""
        return at if self.is_open(at) else self.next_open(at)

    def days(self, start: date, end: date) -> list[SessionDay]:
        found = []
        on = start
        while on <= end:
            session = self.day(on)
            if session is not None:
                found.append(session)
            on += timedelta(days=1)
        return found

    def settlement(self, day: SessionDay) -> date:
        """T+1: the next trading day (US equities settle T+1)."""
        return next(d.day for d in self._days_from(day.close) if d.day > day.day)


def _hhmm(moment: datetime, separator: str) -> str:
    local = moment.astimezone(NEW_YORK)
    return f"{local.hour:02d}{separator}{local.minute:02d}"


def calendar_json(session: TradingSession, day: SessionDay) -> dict[str, Any]:
    """Alpaca's calendar entry. An always-open day closes at "23:59": HH:MM cannot say 24:00."""
    close = "23:59" if session.always_open else _hhmm(day.close, ":")
    return {
        "date": day.day.isoformat(),
        "open": _hhmm(day.open, ":"),
        "close": close,
        "session_open": "0000" if session.always_open else EXTENDED_OPEN,
        "session_close": "2359" if session.always_open else EXTENDED_CLOSE,
        "settlement_date": session.settlement(day).isoformat(),
    }


def eastern(moment: datetime) -> str:
    """Alpaca's clock speaks New York time with its offset: 2026-11-23T09:30:00-05:00."""
    return moment.astimezone(NEW_YORK).isoformat()


def clock_json(session: TradingSession, now: datetime) -> dict[str, Any]:
    return {
        "timestamp": now.astimezone(NEW_YORK).isoformat(timespec="microseconds"),
        "is_open": session.is_open(now),
        "next_open": eastern(session.next_open(now)),
        "next_close": eastern(session.next_close(now)),
    }
