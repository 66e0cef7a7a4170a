"""A worker process is ready before its first message, not at it.

Celery's hooks (`worker_process_init` in every prefork pool process, `worker_ready` for
the solo and threads pools) run `warm`: the runtime and its connections to Redis, the
database and the broker, the schema check, the Lua scripts, the trading session, then
Celery's own producer. The app names this module in its `include` (zero_tasks/celery_app.py),
so the worker loads it at its start; a process that only sends tasks never does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from celery import signals
from sqlalchemy import text

from zero_tasks.adapters import scripts
from zero_tasks.adapters.redis_clock import CLOCK
from zero_tasks.adapters.redis_state import read_snapshot
from zero_tasks.adapters.runtime import Runtime, ensure_audit_schema
from zero_tasks.celery_app import app
from zero_tasks.settings import settings_or_exit
from zero_tasks.worker import keep_warm
from zero_tasks.worker.flow import utcnow, with_session
from zero_tasks.worker.runtime import get_runtime

log = logging.getLogger(__name__)


def _load_scripts(rt: Runtime) -> None:
    """Every script of the registry, compiled by Redis now (redis-py would load one at its first call)."""
    scripts.load_all(rt.redis)


def _open_database(rt: Runtime) -> None:
    ensure_audit_schema(rt)
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _know_session(rt: Runtime) -> None:
    """The trading session row 3 needs, asked of the broker now unless another process has."""
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


def warm_celery() -> None:
    """What Celery makes at its first publish: the result backend's class (found through
    entry points), the producer's connection to the queue, the queues' declarations."""
    _ = app.backend
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)
        for queue in app.amqp.queues.values():
            producer.maybe_declare(queue)


def _warm(**_: object) -> None:
    """A pool process is ready before its first message, not at it (`warm`; never raises)."""
    settings = settings_or_exit()
    if settings.gateway_clock == "redis":
        CLOCK.start(settings.redis_url)  # before warm: the session step judges by it
    failed = warm()
    keep_warm.start()  # BROKER_KEEP_WARM_S: the broker connections stay open through quiet minutes
    try:
        warm_celery()
    except Exception as exc:  # noqa: BLE001 - the first publish connects the usual way
        log.warning("warm-up: celery producer not ready (%s); the first publish tries again", type(exc).__name__)
        failed.append("celery")


@signals.worker_process_init.connect
def _warm_pool_process(**_: object) -> None:
    _warm()


@signals.worker_ready.connect
def _warm_without_pool_processes(sender: object = None, **_: object) -> None:
    """The solo and threads pools fork no pool process: the worker itself is warmed."""
    pool = getattr(getattr(sender, "controller", None), "pool_cls", "")
    if "prefork" not in str(getattr(pool, "__module__", pool)):
        _warm()
