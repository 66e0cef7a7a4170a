"""What one process connects to (settings, Redis, locks, broker, audit engine), built from the settings.

A worker builds one per pool process (zero_tasks/worker/runtime.py: after fork, sockets
and connection pools must not cross one); `zero-ops reconcile` builds its own per command.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import redis
from alpaca.data.historical import StockHistoricalDataClient
from sqlalchemy import Engine

from zero_tasks.adapters.alpaca_adapter import AlpacaBroker, ExitOrders, make_trading_client
from zero_tasks.adapters.audit import make_engine, require_schema
from zero_tasks.adapters.market_data import make_data_client
from zero_tasks.adapters.redis_state import ExecutionLocks, connect
from zero_tasks.adapters.risk import BrokerRateLimit, CircuitBreaker, DailyCap
from zero_tasks.core.snapshot import Limits
from zero_tasks.settings import Settings


def limits_of(settings: Settings) -> Limits:
    """The veto's limits, from the settings."""
    return Limits(min_probability=settings.min_probability,
                  market_state_max_age_s=settings.market_state_max_age_s,
                  signal_max_age_s=settings.signal_max_age_s)


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    locks: ExecutionLocks
    broker: AlpacaBroker
    engine: Engine
    limits: Limits
    daily_cap: DailyCap
    rate_limit: BrokerRateLimit
    breaker: CircuitBreaker
    exits: ExitOrders  # the position lifecycle's broker calls (on `broker`'s main connection)
    market_data: StockHistoricalDataClient  # the ATR's bars


def build_runtime(settings: Settings) -> Runtime:
    r = connect(settings.redis_url)
    broker = AlpacaBroker(make_trading_client(settings))
    return Runtime(
        settings=settings,
        redis=r,
        locks=ExecutionLocks(r, settings.cooldown_seconds),
        broker=broker,
        engine=make_engine(settings.sqlalchemy_url),
        limits=limits_of(settings),
        daily_cap=DailyCap(r, settings.max_orders_per_day),
        rate_limit=BrokerRateLimit(r, settings.broker_requests_per_min, settings.exit_broker_reserve),
        breaker=CircuitBreaker(r, settings.breaker_failures, settings.breaker_window_s, settings.breaker_cooloff_s),
        exits=ExitOrders(broker),
        market_data=make_data_client(settings),
    )


# The audit stores whose schema this process has checked (each engine once: zero-ops
# builds runtimes of its own, one per command).
_schema_checked: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_audit_schema(rt: Runtime) -> None:
    """Once per audit store and process; a database that is down now is retried at the next write."""
    if rt.engine not in _schema_checked:
        require_schema(rt.engine)  # never migrates: `alembic upgrade head` does
        _schema_checked.add(rt.engine)
