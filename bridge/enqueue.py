"""Handing a message to the worker: one Celery task, its id the execution_id.

The path is the public one: claim, hand-over ledger, Celery's `send_task`, mark handed
over (bridge/app.py, listener.py). Celery's publish is synchronous. While the queue is
healthy it runs right in the event loop (a thread hop per message would cost more than the
publish); it is not retried there, so a broker that fails blocks the loop at most once, for
its socket timeout. From the first failure on, messages are kept and sent from a
thread with retries, so /health stays responsive while the broker is slow, until a send
succeeds again. A message whose enqueue fails is kept and retried, never dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from typing import Any

from celery import Celery
from kombu import Queue

log = logging.getLogger(__name__)

DECIDE_TASK = "zero.decide"
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def _argsrepr(message: dict[str, Any]) -> str:
    # Celery would otherwise build a safe repr of the whole payload on every publish; what a
    # log or monitor needs to find the task is its message id.
    return f"[{message['message_id']!r}]"


class Enqueuer:
    def __init__(self, app: Celery, max_pending: int = 10_000) -> None:
        self._app = app
        self._pending: deque[tuple[str, dict[str, Any]]] = deque()
        self._max_pending = max_pending
        self.dropped = 0
        self._lock = asyncio.Lock()  # one sender at a time, or a message could go twice
        self.enqueued = 0
        self.failures = 0
        self._healthy = True  # the last send succeeded: the next may go inline
        self._last_used = time.monotonic()  # the last send or keep-warm on the broker connection

    @property
    def pending(self) -> int:
        return len(self._pending)

    def connect(self) -> None:
        """Makes now what the first `send_task` would otherwise make while a signal waits:
        the connection it publishes on, the decide queue declared on it (kombu declares an
        entity once per connection), Celery's result backend object (resolved through the
        package entry points, even when disabled) and its task sender (which imports the
        events machinery). Blocking (run it in a thread); never raises."""
        try:
            _ = self._app.backend, self._app.amqp.send_task_message
            with self._app.producer_or_acquire() as producer:  # the pooled producer send_task takes next
                producer.connection.ensure_connection(max_retries=1)
                producer.maybe_declare(self._decide_queue())
        except Exception as exc:  # noqa: BLE001 - the first message connects the usual way
            log.warning("warm-up: Celery broker not connected (%s)", type(exc).__name__)

    @functools.cached_property
    def keep_warm_every_s(self) -> float | None:
        """Half of kombu's Redis health-check interval (its documented default 25 s when
        unset); None on another transport (AMQP keeps a connection alive by heartbeats)."""
        with self._app.connection_for_write() as connection:  # not connected: only the URL read
            if connection.transport.driver_type != "redis":
                return None
        options = self._app.conf.broker_transport_options or {}
        return float(options.get("health_check_interval", 25)) / 2

    def due_to_keep_warm(self, now: float) -> bool:
        """Idle for half the health-check interval, and nothing kept or being sent."""
        every = self.keep_warm_every_s
        return (every is not None and now - self._last_used >= every
                and not self._pending and not self._lock.locked())

    async def keep_warm(self) -> None:
        """One command on the connection `send_task` publishes on, while the bridge is quiet.

        kombu's Redis connections PING before a command once idle for its health-check
        interval: with one ranking a minute, before the queue write of every signal. Declaring
        the decide queue again (its binding, as the warm-up does) is a command of kombu's
        public API on the pooled producer's connection, the one the next `send_task` takes,
        made here from a thread, off the signal's path. It also tells how the connection is:
        after a failure the next send goes by the threaded path with retries (as after a
        failed send), after a success inline again."""
        async with self._lock:  # a send meanwhile goes by the threaded path, after this
            try:
                await asyncio.to_thread(self._declare_decide_queue)
            except Exception as exc:  # noqa: BLE001 - the next send reconnects, with retries
                if self._healthy:
                    log.warning("Celery broker connection failed its keep-warm (%s); the next send goes with "
                                "retries", type(exc).__name__)
                self._healthy = False
            else:
                self._healthy = True
            self._last_used = time.monotonic()

    def _decide_queue(self) -> Queue:
        return self._app.amqp.router.route({}, DECIDE_TASK)["queue"]  # where send_task puts it

    def _declare_decide_queue(self) -> None:
        with self._app.producer_or_acquire() as producer:
            self._decide_queue().bind(producer.channel).declare()

    def _send(self, task_id: str, message: dict[str, Any], retry: bool = True) -> None:
        self._last_used = time.monotonic()
        self._app.send_task(DECIDE_TASK, args=[message], task_id=task_id, retry=retry, retry_policy=_RETRY_POLICY,
                            argsrepr=_argsrepr(message), kwargsrepr="{}")

    def _send_inline(self, task_id: str, message: dict[str, Any]) -> bool:
        """The hot path: only when nothing is kept or being sent, so order is preserved."""
        if not self._healthy or self._pending or self._lock.locked():
            return False
        try:
            self._send(task_id, message, retry=False)
        except Exception as exc:  # noqa: BLE001 - kept, sent by the threaded path
            self._healthy = False
            self.failures += 1
            log.warning("enqueue of %s failed (%s); sending from a thread with retries", task_id, type(exc).__name__)
            return False
        self.enqueued += 1
        return True

    async def submit(self, task_id: str, message: dict[str, Any]) -> bool:
        """True when on the queue now; False when kept for `drain` to retry.

        Past `max_pending` (the Celery broker unreachable for a long time) the oldest kept
        message is dropped: counted, logged as an error and shown in /health, never silently.
        """
        if self._send_inline(task_id, message):
            return True
        if len(self._pending) >= self._max_pending:
            lost_id, _ = self._pending.popleft()
            self.dropped += 1
            log.error("enqueue backlog full (%d): message %s dropped undecided", self._max_pending, lost_id)
        self._pending.append((task_id, message))
        return await self.drain()

    async def drain(self) -> bool:
        async with self._lock:
            return await self._drain_locked()

    async def _drain_locked(self) -> bool:
        while self._pending:
            task_id, message = self._pending[0]
            try:
                await asyncio.to_thread(self._send, task_id, message)
            except Exception as exc:  # noqa: BLE001 - kept, retried by the next drain
                self.failures += 1
                log.warning("enqueue of %s failed (%s); %d pending", task_id, type(exc).__name__, len(self._pending))
                return False
            self._pending.popleft()
            self.enqueued += 1
            self._healthy = True
        return True
