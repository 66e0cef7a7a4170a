"""Prices that move: one seeded random walk per symbol, a pure function of (seed, symbol, time).

Each session day gets its own path, drawn from a generator seeded with the simulator's seed,
the symbol and the date, so the price at any simulated instant is the same however and
whenever it is asked for (a test that freezes the clock at 10:31 sees the same price every
run). The day opens at the symbol's price level times a daily log-normal gap (about 1.5 % a
day, a liquid US equity) and moves every 20 seconds by a random step scaled to the same daily
volatility (a centred uniform byte: cheap to draw, and normal enough once summed); between
those points the price is linear, so a level is crossed at an exact instant (limit and stop
triggers, the minute bars' high and low and the fills all agree).
Out of session the price is the last session's close.

A pinned price (``PriceBook.pin``) holds until it is released: no walk, no noise, so a test
drives "target first" or "stop first" by pinning. Pure: no clock of its own and no lock
(the broker state holds the one lock).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import overload

from .session import NEW_YORK, SessionDay, TradingSession

STEP_S = 20  # seconds between two points of the walk
DAILY_VOL = 0.015  # one standard deviation of a day's move, as a log return
_CENT = Decimal("0.01")
_MIN_LEVEL, _MAX_LEVEL = 10.0, 400.0  # a symbol nobody listed: a level derived from its name
_CACHE_DAYS = 2048  # symbol-days kept (about 35 kB each around the clock)
_BYTE_MEAN = 127.5  # a uniform byte's mean and standard deviation: one step is (byte - mean) / sd
_BYTE_SD = math.sqrt((256**2 - 1) / 12)


def name_level(symbol: str) -> Decimal:
    """A stable price level for a symbol without a listed one: log-uniform in $10-$400."""
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big") / 2**64
    level = _MIN_LEVEL * (_MAX_LEVEL / _MIN_LEVEL) ** digest
    return Decimal(str(round(level, 2)))


def cents(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Point:
    """One vertex of the walk: at `at` the price is `price`."""

    at: datetime
    price: float


@dataclass(frozen=True)
class Bar:
    """Open, high, low, close, volume, trade count and volume-weighted price over [start, end)."""

    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    trades: int
    vwap: Decimal


class PriceBook:
    """The walk of every symbol over one session calendar, plus the prices tests pinned."""

    def __init__(self, session: TradingSession, seed: int = 0,
                 listed: Callable[[str], Decimal | None] | None = None) -> None:
        self.session = session
        self.seed = seed
        self._listed = listed  # the asset's price level, where it has one
        self._levels: dict[str, Decimal] = {}
        self._pins: dict[str, Decimal] = {}
        self._paths: dict[tuple[str, date], _Walk] = {}

    # -------------------------------------------------------------- settings
    def set_level(self, symbol: str, level: Decimal) -> None:
        """The price a symbol's walk starts each day around (the asset's listed level)."""
        self._levels[symbol] = level
        self._paths = {k: v for k, v in self._paths.items() if k[0] != symbol}

    def level(self, symbol: str) -> Decimal:
        found = self._levels.get(symbol) or (self._listed(symbol) if self._listed is not None else None)
        return found or name_level(symbol)

    def pin(self, symbol: str, price: Decimal | None) -> None:
        """Hold `symbol` at `price` (None: back to the walk)."""
        if price is None:
            self._pins.pop(symbol, None)
        else:
            self._pins[symbol] = price

    def pinned(self, symbol: str) -> Decimal | None:
        return self._pins.get(symbol)

    def pins(self) -> dict[str, Decimal]:
        return dict(self._pins)

    # ---------------------------------------------------------------- prices
    def price(self, symbol: str, at: datetime) -> Decimal:
        """The price of `symbol` at `at`: pinned, in the session's walk, or the last close."""
        pinned = self._pins.get(symbol)
        if pinned is not None:
            return pinned
        day = self.session.current(at)
        if day is None:
            last = self.last_session(at)
            return cents(self._path(symbol, last)[-1]) if last is not None else self.level(symbol)
        path = self._path(symbol, day)
        offset = (at - day.open).total_seconds() / STEP_S
        index = min(int(offset), len(path) - 2)
        fraction = offset - index
        return cents(path[index] + (path[index + 1] - path[index]) * fraction)

    def points(self, symbol: str, start: datetime, end: datetime) -> list[Point]:
        """The walk's vertices in (start, end], with `end` itself: where a level can be crossed.
        A pinned symbol has none (its price does not move while it is pinned)."""
        if symbol in self._pins or end <= start:
            return []
        found: list[Point] = []
        for day in self.session.days(start.astimezone(NEW_YORK).date(), end.astimezone(NEW_YORK).date()):
            if day.close <= start or day.open > end:
                continue
            path = self._path(symbol, day)
            first = max(0, math.floor((start - day.open).total_seconds() / STEP_S) + 1)
            for index in range(first, len(path)):
                at = day.open + timedelta(seconds=index * STEP_S)
                if at > end:
                    break
                found.append(Point(at, path[index]))
        if self.session.is_open(end) and (not found or found[-1].at < end):
            found.append(Point(end, float(self.price(symbol, end))))
        return found

    def bars(self, symbol: str, start: datetime, end: datetime, minutes: int) -> list[Bar]:
        """Bars of `minutes` (1, 5, or 0 for a whole session day) starting in [start, end),
        only where the session traded; a bar still forming ends at `end`."""
        found: list[Bar] = []
        for day in self.session.days(start.astimezone(NEW_YORK).date(), end.astimezone(NEW_YORK).date()):
            if day.open >= end or day.close <= start:
                continue
            path = self._path(symbol, day)
            per_bar = len(path) - 1 if minutes == 0 else minutes * 60 // STEP_S
            for first in range(0, len(path) - 1, per_bar):
                bar_start = day.open + timedelta(seconds=first * STEP_S)
                if minutes == 0:
                    bar_start = datetime.combine(day.day, datetime.min.time(), NEW_YORK)
                if bar_start < start and minutes != 0:
                    continue
                if bar_start >= end or (minutes == 0 and day.open >= end):
                    break
                last = min(first + per_bar, len(path) - 1)
                last_at = day.open + timedelta(seconds=last * STEP_S)
                if last_at > end:  # the bar still forming: up to now
                    last = max(first, int((end - day.open).total_seconds() // STEP_S))
                found.append(self._bar(symbol, day, bar_start, path[first:last + 1], first))
        return found

    def last_session(self, at: datetime) -> SessionDay | None:
        """The latest session that closed at or before `at`."""
        on = at.astimezone(NEW_YORK).date()
        for back in range(15):
            day = self.session.day(on - timedelta(days=back))
            if day is not None and day.close <= at:
                return day
        return None

    # -------------------------------------------------------------- internal
    def _bar(self, symbol: str, day: SessionDay, start: datetime, path: list[float], first: int) -> Bar:
        rng = random.Random(f"{self.seed}:{symbol}:{day.day}:volume:{first}")
        volume = sum(rng.randint(200, 4000) for _ in range(max(1, len(path) - 1)))
        trades = max(1, volume // 90)
        mean = sum(path) / len(path)
        return Bar(start, cents(path[0]), cents(max(path)), cents(min(path)), cents(path[-1]),
                   volume, trades, Decimal(str(round(mean, 4))))

    def _path(self, symbol: str, day: SessionDay) -> _Walk:
        key = (symbol, day.day)
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= _CACHE_DAYS:
                self._paths.clear()
            rng = random.Random(f"{self.seed}:{symbol}:{day.day}")
            steps = max(1, int((day.close - day.open).total_seconds()) // STEP_S)
            opening = float(self.level(symbol)) * math.exp(rng.gauss(0.0, DAILY_VOL))
            path = _Walk(opening, DAILY_VOL / math.sqrt(steps), rng.randbytes(steps))
            self._paths[key] = path
        return path


class _Walk:
    """One session day's walk, cheap to make (a new symbol costs microseconds, not a loop of
    normal draws): each step is a uniform byte, centred and scaled to the step's volatility, and
    their running sum (``itertools.accumulate``, in C) is the log price; a price is computed only
    when asked for. Indexable like a list of floats: element 0 is the open, one per ``STEP_S``."""

    def __init__(self, opening: float, step_vol: float, noise: bytes) -> None:
        self._opening = opening
        self._scale = step_vol / _BYTE_SD
        self._sums = array("l", itertools.accumulate(noise, initial=0))

    def __len__(self) -> int:
        return len(self._sums)

    def _at(self, index: int) -> float:
        return self._opening * math.exp(self._scale * (self._sums[index] - _BYTE_MEAN * index))

    @overload
    def __getitem__(self, index: int) -> float: ...

    @overload
    def __getitem__(self, index: slice) -> list[float]: ...

    def __getitem__(self, index: int | slice) -> float | list[float]:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(len(self)))]
        return self._at(index if index >= 0 else len(self) + index)
