"""Per-process resources (settings, Redis, locks, broker, audit engine), made after fork.

Celery's prefork pool forks worker processes; sockets and connection pools must not
cross a fork, so the runtime is built lazily in the process that uses it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis
from sqlalchemy import Engine

from .alpaca_adapter import AlpacaBroker, make_trading_client
from .audit import ensure_schema, make_engine
from .redis_state import ExecutionLocks, connect
from .risk import BrokerRateLimit, CircuitBreaker, DailyCap
from .settings import Settings, settings_or_exit
from .prejudge import limits_of
from .veto import Limits


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


_runtime: Runtime | None = None
_pid: int | None = None
_schema_ready = False


def build_runtime(settings: Settings) -> Runtime:
    r = connect(settings.redis_url)
    return Runtime(
        settings=settings,
        redis=r,
        locks=ExecutionLocks(r, settings.cooldown_seconds),
        broker=AlpacaBroker(make_trading_client(settings)),
        engine=make_engine(settings.sqlalchemy_url),
        limits=limits_of(settings),
        daily_cap=DailyCap(r, settings.max_orders_per_day),
        rate_limit=BrokerRateLimit(r, settings.broker_requests_per_min),
        breaker=CircuitBreaker(r, settings.breaker_failures, settings.breaker_window_s, settings.breaker_cooloff_s),
    )


def get_runtime() -> Runtime:
    global _runtime, _pid
    if _runtime is None or _pid != os.getpid():
        _runtime = build_runtime(settings_or_exit())
        _pid = os.getpid()
    return _runtime


def ensure_audit_schema(rt: Runtime) -> None:
    """Once per process; a database that is down now is retried at the next write."""
    global _schema_ready
    if not _schema_ready:
        ensure_schema(rt.engine)
        _schema_ready = True
