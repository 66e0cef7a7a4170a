"""Shared bits: percentiles, payload builders, ticker names, the risk-counter reset."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis

from tests.support.gateway import opportunity
from tests.support.procs import wait_for as wait_until  # noqa: F401 - the bench modules' one wait helper
from zero_tasks.adapters.risk import trading_day
from zero_tasks.core import keys
from zero_tasks.core.contract import client_order_id, execution_id

OPPORTUNITY_CHANNEL = keys.OPPORTUNITY_CHANNEL
TRADE_UPDATE_CHANNEL = keys.TRADE_UPDATE_CHANNEL
NEW_YORK = ZoneInfo("America/New_York")


# statistics -----------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(values_ms: Iterable[float]) -> dict[str, Any]:
    """n, min, mean, p50, p90, p99, max of a list of milliseconds (None when empty)."""
    vals = sorted(v for v in values_ms if v is not None and not math.isnan(v))
    if not vals:
        return {"n": 0, "min": None, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "n": len(vals),
        "min": round(vals[0], 3),
        "mean": round(sum(vals) / len(vals), 3),
        "p50": round(percentile(vals, 50), 3),
        "p90": round(percentile(vals, 90), 3),
        "p99": round(percentile(vals, 99), 3),
        "max": round(vals[-1], 3),
    }


def ms(seconds: float) -> float:
    return seconds * 1000.0


# payloads -------------------------------------------------------------------------------
def now_utc() -> datetime:
    return datetime.now(UTC)


def market(state: str = "GREEN", age_s: float = 0.0) -> str:
    """A MarketState as the regime service writes it."""
    return json.dumps({"schema_version": "1.0", "timestamp": (now_utc() - timedelta(seconds=age_s)).isoformat(),
                       "state": state, "vix_level": 14.2, "vixy_price": 13.9, "vix_roc": -0.8, "adv_decl": 1.4,
                       "trin": 0.9, "breadth_score": 62.0, "event_risk": False, "reason": "bench"})


class Signal:
    """One OpportunityRank as published, with the ids the gateway will derive from it."""

    __slots__ = ("client_order_id", "data", "execution_id", "rank_time", "ticker")

    def __init__(self, ticker: str, probability: float = 0.95, age_s: float = 0.0) -> None:
        self.ticker = ticker
        self.rank_time = now_utc() - timedelta(seconds=age_s)
        rank = {"schema_version": "1.0", "timestamp": self.rank_time.isoformat(), "horizon": "H30",
                "rank_time": self.rank_time.isoformat(), "total_candidates": 57,
                "opportunities": [opportunity(ticker, probability),
                                  opportunity("SPY", 0.91), opportunity("QQQ", 0.90)]}
        self.data = json.dumps(rank).encode()
        self.execution_id = execution_id(ticker, "H30", self.rank_time)
        self.client_order_id = client_order_id(self.execution_id)




def letters(n: int, width: int) -> str:
    """`n` in base 26 with letters only, `width` wide: tickers are letters (contract, Tickers)."""
    out = ""
    for _ in range(width):
        n, d = divmod(n, 26)
        out = chr(65 + d) + out
    return out


class Tickers:
    """Distinct US equity symbols (at most 5 letters, as the simulator lists them): no
    cooldown or position collides."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.width = 5 - len(prefix)
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"{self.prefix}{letters(self.count, self.width)}"


def list_at_broker(state: Any, *prefixes: str) -> int:
    """Every symbol of at most 5 letters that starts with one of these prefixes (the names
    `Tickers` and `first_signals` make), listed at the simulator as an active, tradable US
    equity; how many.

    ZERO ranks listed equities, and the account mirror's leader keeps the day's verdict of
    every equity the broker lists before their first signal: the latency phases measure that
    path. A made-up symbol the broker does not list costs its first order one `GET
    /v2/assets/{symbol}` more (a round trip to the broker), which no deployment pays for
    ZERO's names. List before the gateway starts: the leader reads the list at its first
    resync of the day."""
    symbols = [prefix + letters(k, width) for prefix in prefixes
               for width in range(1, 6 - len(prefix)) for k in range(26 ** width)]
    for symbol in symbols:
        state.add_asset({"symbol": symbol})
    return len(symbols)


# gateway state --------------------------------------------------------------------------
def set_green(r: redis.Redis, enabled: bool = True) -> None:
    if enabled:
        r.set(keys.EXECUTION_ENABLED_KEY, "true")
    r.set(keys.MARKET_STATE_KEY, market("GREEN"))


def risk_counter_keys() -> list[str]:
    """The daily order cap and the broker rate window (gateway risk controls), if they exist.

    The gateway caps orders per New York day (at most 10) and broker calls per minute (at
    most 120). A latency sample of 300 orders needs both counters emptied between signals;
    the bench does that in its private Redis (as the test suite's reset does) and says so
    in the report. The checks themselves still run on every decision.
    """
    names = []
    daily = getattr(keys, "DAILY_ORDERS_PREFIX", None)
    if daily:
        now = datetime.now(UTC)
        today = now.astimezone(NEW_YORK).date()
        days = {(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)}
        days.add(trading_day(now))  # after Friday's close and at the weekend: Monday's
        names += [daily + day for day in sorted(days)]
    rate = getattr(keys, "BROKER_RATE_KEY", None)
    if rate:
        names.append(rate)
    return names


MIRROR_RECOUNT_AT = 5  # entries the account mirror has counted today before the bench makes it count afresh


def reset_risk_counters(r: redis.Redis, state: Any = None, gw: Any = None) -> None:
    """The daily cap's and broker rate's counters emptied: in Redis, and (given the bench's
    simulator state) the broker's own list of the day's entries (StampingState.forget_entries).
    Given the gateway too, the account mirror's count of the day's entries (in its sealed
    sync record, which no Redis write resets) is made afresh once it nears the cap: the
    consumer is restarted and counts from the broker's list, which no longer shows the
    forgotten entries. That wait falls between signals, outside every measured window."""
    names = risk_counter_keys()
    if names:
        r.delete(*names)
    if state is not None:
        state.forget_entries()
    mirror = getattr(gw, "mirror", None)
    if mirror is not None and mirror.alive() and _mirror_entries(r) >= MIRROR_RECOUNT_AT:
        gw.mirror_off()
        gw.mirror_on()


def _mirror_entries(r: redis.Redis) -> int:
    """The day's entries the mirror's sync record counts (read, not trusted: the bench's own)."""
    raw = r.get(keys.MIRROR_SYNC_KEY)
    try:
        record = json.loads(json.loads(raw)["record"]) if raw else {}
    except (TypeError, ValueError, KeyError):
        return 0
    return int(record.get("entries_today") or 0) if isinstance(record, dict) else 0


