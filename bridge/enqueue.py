"""Handing a message to the worker: one Celery task, its id the execution_id.

Celery's publish is synchronous. While the queue is healthy it runs right in the event
loop (~0.7 ms, no thread hop: the hop cost ~2 ms of signal-to-order latency, measured with
`python -m bench`); it is not retried there, so a broker that fails blocks the loop at most
once, for its socket timeout. From the first failure on, messages are kept and sent from a
thread with retries, so /health stays responsive while the broker is slow, until a send
succeeds again. A message whose enqueue fails is kept and retried, never dropped.

Faster still, while the queue is healthy: `push_for` builds the task's LPUSH ahead so the
listener's claim script performs it (task_message.py, dedup.claim_and_push), from a
template Celery made and that was checked against Celery's own output at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from celery import Celery

from .task_message import TaskPushBuilder, fusable

log = logging.getLogger(__name__)

DECIDE_TASK = "zero.decide"
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def _argsrepr(message: dict[str, Any]) -> str:
    # Celery would otherwise build a safe repr of the whole payload on every publish
    # (~0.2 ms here); what a log or monitor needs to find the task is its message id.
    return f"[{message['message_id']!r}]"


class Enqueuer:
    def __init__(self, app: Celery, redis_url: str | None = None, max_pending: int = 10_000) -> None:
        """`redis_url`: the database of the bridge's claims; given, tasks may be pushed by
        the claim script when that is the Celery broker too."""
        self._app = app
        self._builder: TaskPushBuilder | None = None
        self._unfused = ("no claim database given" if redis_url is None else
                         fusable(app.conf.broker_url, redis_url, app.conf.broker_transport_options or {}))
        self._pending: deque[tuple[str, dict[str, Any]]] = deque()
        self._max_pending = max_pending
        self.dropped = 0
        self._lock = asyncio.Lock()  # one sender at a time, or a message could go twice
        self.enqueued = 0
        self.pushed_by_claim = 0
        self.failures = 0
        self._healthy = True  # the last send succeeded: the next may go inline

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _send(self, task_id: str, message: dict[str, Any], retry: bool = True) -> None:
        self._app.send_task(DECIDE_TASK, args=[message], task_id=task_id, retry=retry, retry_policy=_RETRY_POLICY,
                            argsrepr=_argsrepr(message), kwargsrepr="{}")

    def push_for(self, task_id: str, message: dict[str, Any]) -> tuple[str, str] | None:
        """The decide task as (queue key, payload) for the claim script to push; None when
        it must go the usual way (`submit`): nothing kept or being sent, so order holds."""
        if not self._healthy or self._pending or self._lock.locked():
            return None
        builder = self.warm()
        return builder.build(task_id, [message], _argsrepr(message)) if builder else None

    def warm(self) -> TaskPushBuilder | None:
        """The task builder, made now if need be (at start, so the first signal does not wait
        for it; it costs two Celery publishes and a connection). None: the usual path."""
        if self._unfused or self._builder is not None:
            return self._builder
        try:
            self._builder = TaskPushBuilder(self._app, DECIDE_TASK)
        except ValueError as exc:  # the routing or the template: it will not change while running
            self._unfused = str(exc)
            log.warning("decide tasks go through send_task from now on: %s", exc)
        except Exception as exc:  # noqa: BLE001 - Redis away: the usual path this time, a new try next
            log.warning("decide task builder not made (%s); sending tasks the usual way", type(exc).__name__)
        return self._builder

    def pushed(self) -> None:
        """A task `push_for` built is on the queue (the claim script pushed it)."""
        self.enqueued += 1
        self.pushed_by_claim += 1

    @property
    def hand_over(self) -> str:
        """How a decide task reaches the queue while healthy, for /health."""
        return "claim script" if not self._unfused else f"send_task ({self._unfused})"

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
