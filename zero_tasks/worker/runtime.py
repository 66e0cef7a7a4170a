"""Per-process resources (settings, Redis, locks, broker, audit engine), made after fork.

Celery's prefork pool forks worker processes; sockets and connection pools must not
cross a fork, so the runtime is built in the process that uses it: by `warm` when the
process starts (celery_app.py), or lazily by the first message if warming failed.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from alpaca.data.historical import StockHistoricalDataClient
from sqlalchemy import Engine, text

from zero_tasks.adapters import scripts
from zero_tasks.adapters.alpaca_adapter import AlpacaBroker, ExitOrders, make_trading_client
from zero_tasks.adapters.audit import make_engine, require_schema
from zero_tasks.adapters.market_data import make_data_client
from zero_tasks.adapters.redis_state import ExecutionLocks, connect
from zero_tasks.adapters.risk import BrokerRateLimit, CircuitBreaker, DailyCap
from zero_tasks.core.prejudge import limits_of
from zero_tasks.core.snapshot import Limits
from zero_tasks.settings import Settings, settings_or_exit

log = logging.getLogger(__name__)


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


@dataclass
class _ThisProcess:
    """What this process has made: its runtime, the pid it was made in (a forked child makes
    its own), and the audit stores whose schema it has checked (each engine once: zero-ops
    builds runtimes of its own, one per command)."""

    runtime: Runtime | None = None
    pid: int | None = None
    schema_checked: weakref.WeakSet[Engine] = field(default_factory=weakref.WeakSet)


_this = _ThisProcess()


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


def get_runtime() -> Runtime:
    if _this.runtime is None or _this.pid != os.getpid():
        _this.runtime = build_runtime(settings_or_exit())
        _this.pid = os.getpid()
    return _this.runtime


def ensure_audit_schema(rt: Runtime) -> None:
    """Once per audit store and process; a database that is down now is retried at the next write."""
    if rt.engine not in _this.schema_checked:
        require_schema(rt.engine)  # never migrates: `alembic upgrade head` does
        _this.schema_checked.add(rt.engine)


def _load_scripts(rt: Runtime) -> None:
    """Every script of the registry, compiled by Redis now (redis-py would load one at its first call)."""
    scripts.load_all(rt.redis)


def _open_database(rt: Runtime) -> None:
    ensure_audit_schema(rt)
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _know_session(rt: Runtime) -> None:
    """The trading session row 3 needs, asked of the broker now unless another process has."""
    from zero_tasks.adapters.redis_state import read_snapshot
    from zero_tasks.worker.flow import utcnow, with_session

    snap = with_session(rt, read_snapshot(rt.redis), utcnow())
    if snap.session is None:
        raise RuntimeError(snap.session_error or "trading session unknown")


WARM_STEPS: tuple[tuple[str, Callable[[Runtime], object]], ...] = (
    ("redis", lambda rt: rt.redis.ping()),
    ("lua scripts", _load_scripts),
    ("database", _open_database),
    ("broker", lambda rt: rt.broker.probe()),  # GET /v2/account: connection, TLS, alpaca-py
    ("trading session", _know_session),  # GET /v2/clock and /v2/calendar, kept for every process
)


def warm() -> list[str]:
    """Make now what the first message would otherwise make: the runtime, its connections
    to Redis, the database and the broker, the schema check and the Lua scripts. Never
    raises: a step that fails is logged and named in the result, and the first message
    builds it the usual lazy way, failing closed as it always does."""
    try:
        rt = get_runtime()
    except Exception as exc:  # noqa: BLE001 - a bad configuration exits before this (celeryconfig)
        log.warning("warm-up: runtime not built (%s); the first message builds it", type(exc).__name__)
        return ["runtime"]
    failed = []
    for name, step in WARM_STEPS:
        try:
            step(rt)
        except Exception as exc:  # noqa: BLE001 - the lazy path retries it and fails closed
            # the type only: a driver's message may carry a URL
            log.warning("warm-up: %s not ready (%s); the first message tries again", name, type(exc).__name__)
            failed.append(name)
    log.info("pool process %d warm%s", os.getpid(), f" except {', '.join(failed)}" if failed else "")
    return failed
