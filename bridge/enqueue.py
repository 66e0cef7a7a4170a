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
import logging
from collections import deque
from typing import Any

from celery import Celery

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
            queue = self._app.amqp.router.route({}, DECIDE_TASK)["queue"]  # where send_task puts it
            with self._app.producer_or_acquire() as producer:  # the pooled producer send_task takes next
                producer.connection.ensure_connection(max_retries=1)
                producer.maybe_declare(queue)
        except Exception as exc:  # noqa: BLE001 - the first message connects the usual way
            log.warning("warm-up: Celery broker not connected (%s)", type(exc).__name__)

    def _send(self, task_id: str, message: dict[str, Any], retry: bool = True) -> None:
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
