"""The Celery application. `celery -A zero_tasks worker` finds `app` here."""

from __future__ import annotations

import logging

from celery import Celery, signals

from zero_tasks.adapters import kombu_fixes
from zero_tasks.logs import configure_logging

log = logging.getLogger(__name__)
kombu_fixes.apply()
app = Celery("zero_tasks")
app.config_from_object("celeryconfig")
app.conf.include = ["zero_tasks.worker.tasks", "zero_tasks.worker.delayed_send", "zero_tasks.worker.heartbeat",
                    "zero_tasks.worker.audit_writer"]


@signals.setup_logging.connect
def _configure_logging(loglevel: int | str | None = None, logfile: str | None = None, **_: object) -> None:
    """Our JSON/terminal formatter instead of Celery's, at the level and to the file of the
    worker's `-l/--loglevel` and `-f/--logfile` (Celery passes them to this signal)."""
    configure_logging(loglevel or "INFO", logfile or None)


def warm_celery() -> None:
    """What Celery makes at its first publish: the result backend's class (found through
    entry points), the producer's connection to the queue, the queues' declarations."""
    _ = app.backend
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)
        for queue in app.amqp.queues.values():
            producer.maybe_declare(queue)


def _warm(**_: object) -> None:
    """A pool process is ready before its first message, not at it (runtime.warm; never raises)."""
    from zero_tasks.adapters.redis_clock import CLOCK
    from zero_tasks.settings import settings_or_exit
    from zero_tasks.worker import keep_warm
    from zero_tasks.worker.runtime import warm

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
