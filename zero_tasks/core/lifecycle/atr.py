"""ATR(14) of 5-minute bars, as ZERO's truth test computes it (services/truth-test/db.py,
`compute_atr`, at commit 0a64d61):

- the bars are 5-minute candles whose start time is at or before the issue time and no
  older than `period x 5 minutes + 2 hours` before it; the most recent `period + 1` of them;
- the true range of each bar after the first: max(high - low, |high - prev close|,
  |low - prev close|); the first bar only lends its close;
- ATR is the SIMPLE mean of the last `period` true ranges (not Wilder's smoothing);
- fewer than `period + 1` bars: no ATR.

The gateway passes the ranking's `rank_time` as the issue time, so its ATR is the one
ZERO used for the opportunity's target and stop.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

PERIOD = 14
# Reads of the bars that got no answer (network, timeout, 5xx, 429) are tried again at the
# next looks, this many in all, before the protect is given up (`no protect`, the horizon
# exit alone): a data host's blip must not cost an execution its PASS or FAIL, and an outage
# must not leave the position's protect undecided for long.
DATA_TRIES = 5
BAR_MINUTES = 5
LOOKBACK_EXTRA = timedelta(hours=2)


@dataclass(frozen=True)
class Bar:
    """One 5-minute candle: its start time and the prices ATR needs."""

    t: datetime
    high: float
    low: float
    close: float


def lookback(period: int = PERIOD) -> timedelta:
    """How far before the issue time ZERO looks for bars."""
    return timedelta(minutes=period * BAR_MINUTES) + LOOKBACK_EXTRA


def true_range(bar: Bar, prev_close: float) -> float:
    return max(bar.high - bar.low, abs(bar.high - prev_close), abs(bar.low - prev_close))


def atr(bars: Iterable[Bar], as_of: datetime, period: int = PERIOD) -> float | str:
    """ATR at `as_of`, or why there is none (too few bars, or a bar that is not a price)."""
    start = as_of - lookback(period)
    window = sorted((b for b in bars if start <= b.t <= as_of), key=lambda b: b.t)[-(period + 1):]
    if len(window) < period + 1:
        return f"too few 5-minute bars: {len(window)} of {period + 1} before {as_of.isoformat()}"
    for bar in window:
        if not all(math.isfinite(v) and v > 0 for v in (bar.high, bar.low, bar.close)):
            return f"bar at {bar.t.isoformat()} has a price that is not a positive number"
    ranges = [true_range(bar, prev.close) for prev, bar in itertools.pairwise(window)]
    value = sum(ranges[-period:]) / period
    if value <= 0:
        return "ATR is 0 (no price movement in the bars)"
    return value
