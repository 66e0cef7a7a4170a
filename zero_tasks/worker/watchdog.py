"""A worker that takes no more work exits, so that its supervisor starts a fresh one.

A thread of the worker's main process, started when the worker is ready. Every few seconds
it looks at two things (judged by core/liveness.py):

- whether the worker's blueprint still runs: a warm shutdown that hangs (on a pool process
  that will never finish, after an "Unrecoverable error" say) leaves a process that consumes
  nothing and never ends;
- whether its consumer still takes its queues: it asks its own worker, through the broker and
  on a connection of its own, which queues it consumes (Celery's remote control,
  `active_queues`, addressed to this worker alone). A consumer that lost its broker
  connection and never came back (celery#10205, #10302) does not answer.

On a verdict it says why (CRITICAL), deletes the worker's heartbeat so /health stops counting
it, kills its own processes (its pool's, the embedded beat of `-B`) and exits with EXIT_CODE:
the supervisor (compose's `restart`, systemd, `make run`) starts a fresh worker. A task it
held unacked goes back to the queue, where its claims make a second run a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import redis
from celery import bootsteps, signals
from kombu.exceptions import OperationalError

from zero_tasks.adapters.redis_state import connect
from zero_tasks.core import keys
from zero_tasks.core.liveness import Limits, Liveness, Sight
from zero_tasks.settings import settings_or_exit

EXIT_CODE = os.EX_SOFTWARE  # 70: what `make run` restarts a worker on
ASK_TIMEOUT_S = 2.0
log = logging.getLogger(__name__)
_stop = threading.Event()


def takes_work(controller: Any) -> bool:
    """The worker's main blueprint still runs (a worker that is stopping takes nothing more)."""
    blueprint = getattr(controller, "blueprint", None)
    return blueprint is None or blueprint.state == bootsteps.RUN


class Watchdog:
    """What one worker's watchdog needs: the worker, its queues, the limits, and a connection."""

    def __init__(self, consumer: Any) -> None:
        settings = settings_or_exit()
        self.app = consumer.app
        self.hostname: str = consumer.hostname
        self.controller = consumer.controller
        self.queues = frozenset(self.app.amqp.queues.consume_from)
        # without remote control nobody can ask the consumer: only the shutdown is watched
        self.can_ask = bool(self.app.conf.worker_enable_remote_control)
        self.limits = Limits(deaf_after_s=settings.worker_watchdog_s,
                             stop_grace_s=settings.task_time_limit_s + settings.worker_watchdog_s)
        self.every_s = max(1.0, min(5.0, settings.worker_watchdog_s / 4))
        self.redis_url = settings.redis_url
        self.connection: Any = None
        unconnected = self.app.connection_for_write()  # only its transport's error classes are read
        self.broker_errors: tuple[type[BaseException], ...] = (
            OSError, OperationalError, *unconnected.connection_errors, *unconnected.channel_errors)

    def consuming(self) -> bool | None:
        """Whether the consumer answered with every queue; None when the broker took no question."""
        try:
            if self.connection is None:
                self.connection = self.app.connection_for_write()
                self.connection.ensure_connection(max_retries=1, timeout=ASK_TIMEOUT_S)
            replies = self.app.control.inspect(destination=[self.hostname], timeout=ASK_TIMEOUT_S, limit=1,
                                               connection=self.connection).active_queues() or {}
        except self.broker_errors as exc:
            log.info("watchdog: the broker did not take the question (%s)", type(exc).__name__)
            self.drop_connection()
            return None
        named = {queue.get("name") for queue in replies.get(self.hostname) or [] if isinstance(queue, dict)}
        if not self.queues <= named:
            # the next question goes on a new connection: one that a partition has silently
            # broken takes the question and brings no answer, and must not pass for the
            # broker answering (a new one cannot connect while the partition lasts: None)
            self.drop_connection()
            return False
        return True

    def drop_connection(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except self.broker_errors as exc:
                log.info("watchdog: its broker connection closed with %s", type(exc).__name__)
            self.connection = None

    def run(self) -> None:
        state = Liveness()
        while not _stop.wait(self.every_s):
            running = takes_work(self.controller)
            state = state.see(Sight(time.monotonic(), running, self.consuming() if running and self.can_ask else None))
            now = time.monotonic()
            reason = state.verdict(now, self.limits)
            if reason is not None:
                self.exit(reason)
            if state.deaf_since_s is not None:
                log.warning("watchdog: worker %s's consumer has not answered for %.0f s (exits at %d s)",
                            self.hostname, now - state.deaf_since_s, self.limits.deaf_after_s)

    def exit(self, reason: str) -> None:
        log.critical("worker %s takes no more work: %s; exiting (code %d) so that its supervisor starts a fresh one",
                     self.hostname, reason, EXIT_CODE)
        try:
            connect(self.redis_url).delete(keys.worker_alive_key(self.hostname))
        except redis.RedisError as exc:
            log.warning("watchdog: heartbeat not deleted (%s); it expires by itself", type(exc).__name__)
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os._exit(EXIT_CODE)

    def children(self) -> set[int]:
        """The worker's own processes: its pool's, and the embedded beat of `-B`. A stopped pool
        process, and the beat in any case, would outlive a parent that exits."""
        pids: set[int] = set()
        for task in Path(f"/proc/{os.getpid()}/task").glob("*/children"):  # Linux: every direct child
            try:
                pids.update(int(pid) for pid in task.read_text().split())
            except OSError as exc:
                log.warning("watchdog: children of thread %s unknown (%s)", task.parent.name, type(exc).__name__)
        try:
            pids.update(pid for pid in (self.controller.pool.info or {}).get("processes") or [] if isinstance(pid, int))
        except (AttributeError, KeyError, ValueError) as exc:
            log.warning("watchdog: pool processes unknown (%s)", type(exc).__name__)
        pids.discard(os.getpid())
        return pids


@signals.worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    if sender is None or getattr(sender, "controller", None) is None:
        return
    threading.Thread(target=Watchdog(sender).run, daemon=True, name="watchdog").start()


@signals.worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    _stop.set()
