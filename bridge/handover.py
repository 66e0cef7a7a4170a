"""Handing messages to the worker: the hand-over ledger first, then the Celery queue.

**The ledger.** kombu's Redis transport takes a task off the queue (BRPOP) and only then
writes it to its unacked hash. A worker whose main process dies in between, or that stops
while a BRPOP reply is still in its socket (celery/celery#4354, #7950), loses the task for
good: late acks and the visibility timeout never see it, and nothing would ever decide
that message. So every message a bridge puts on the queue is also written to the ledger
just before `send_task` (`Ledger.record`), the outbox script that keeps the message's decision
removes it in the same step, and the bridges queue again whatever stays there longer than
HANDOVER_RESCUE_AFTER_S (`Ledger.due`). Queuing a message twice is harmless, which is what makes
this safe to run on every bridge: the decision outbox keeps the first decision of a
message, its execution_id claim remembers the message (a second run looks the order up by
client_order_id before sending), and the broker refuses a second order with the same
client_order_id.

**The queue** (`Enqueuer`): one Celery task, its id the execution_id; a batch heard together
(a burst) as one `decide_many` task, each message in it sealed and decided alone. Celery's
publish is synchronous. While the queue is healthy it runs right in the event loop (a
thread hop per message would cost more than the publish); it is not retried there, so a
broker that fails blocks the loop at most once, for its socket timeout. From the first
failure on, messages are kept and sent from a thread with retries, so /health stays
responsive while the broker is slow, until a send succeeds again. A message whose enqueue
fails is kept and retried, never dropped silently.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from celery import Celery
from kombu import Queue

from zero_tasks.adapters import scripts
from zero_tasks.core import keys
from zero_tasks.core.task_auth import SEAL_MAX_AGE_S

log = logging.getLogger(__name__)

# Past this its decide task's seal has expired (task_auth.SEAL_MAX_AGE_S, counted from the
# hand-over, just after the message was heard): queued again it would only be refused.
GIVE_UP_AFTER = timedelta(seconds=SEAL_MAX_AGE_S - 600)


@dataclass(frozen=True)
class Entry:
    """What it takes to queue the message again: the decide task's id and argument."""

    task_id: str
    message: dict[str, Any]

    @property
    def message_id(self) -> str:
        return str(self.message["message_id"])

    def to_json(self) -> str:
        return json.dumps({"task_id": self.task_id, "message": self.message}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        """Raises ValueError for anything that is not an entry this module wrote."""
        try:
            data = json.loads(raw)
            return cls(str(data["task_id"]), dict(data["message"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a hand-over entry ({type(exc).__name__})") from exc

    def too_old(self, now: datetime) -> bool:
        """Heard longer ago than its seal lasts (GIVE_UP_AFTER), or when is unreadable: not
        queued again."""
        try:
            heard = datetime.fromisoformat(str(self.message["received_at"]))
            return now - heard > GIVE_UP_AFTER
        except (KeyError, ValueError, TypeError):
            return True


class Ledger:
    """The hand-over ledger on one Redis client: its two scripts bound once (a script bound per
    call would hash its text again for every message)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._record = scripts.register(client, "ledger_record")  # lua/ledger_record.lua
        self._due = scripts.register(client, "ledger_due")  # lua/ledger_due.lua

    async def record(self, entries: list[Entry]) -> None:
        """Before these messages go on the queue by `send_task` (one round trip)."""
        if entries:
            args = [part for e in entries for part in (e.message_id, e.to_json())]
            await self._record(keys=[keys.IN_FLIGHT_KEY, keys.IN_FLIGHT_TASKS_KEY], args=args)

    async def due(self, after_s: float, limit: int = 100) -> list[Entry]:
        """The messages handed over at least `after_s` ago without a decision, taken by this sweep."""
        raw = await self._due(keys=[keys.IN_FLIGHT_KEY, keys.IN_FLIGHT_TASKS_KEY], args=[int(after_s * 1000), limit])
        return [Entry.from_json(item) for item in raw]

    async def forget(self, message_id: str) -> None:
        await self._client.zrem(keys.IN_FLIGHT_KEY, message_id)
        await self._client.hdel(keys.IN_FLIGHT_TASKS_KEY, message_id)


DECIDE_TASK = "zero.decide"
DECIDE_MANY_TASK = "zero.decide_many"
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def _argsrepr(entries: list[Entry]) -> str:
    # Celery would otherwise build a safe repr of the whole payload on every publish; what a
    # log or monitor needs to find the task is its message ids.
    return repr([entry.message_id for entry in entries])


def task_of(entries: list[Entry]) -> tuple[str, str, list[Any]]:
    """(task name, task id, arguments) of the task that hands `entries` over: a message alone
    goes as `decide` under its execution_id, a batch as `decide_many` under an id of its first
    message and its size (a batch sent again is the same task)."""
    if len(entries) == 1:
        return DECIDE_TASK, entries[0].task_id, [entries[0].message]
    return DECIDE_MANY_TASK, f"batch:{entries[0].message_id}+{len(entries)}", [[e.message for e in entries]]


class Enqueuer:
    def __init__(self, app: Celery, max_pending: int = 10_000) -> None:
        self._app = app
        self._pending: deque[list[Entry]] = deque()
        self._max_pending = max_pending
        self.dropped = 0
        self._lock = asyncio.Lock()  # one sender at a time, or a message could go twice
        self.enqueued = 0
        self.failures = 0
        self._healthy = True  # the last send succeeded: the next may go inline
        self._last_used = time.monotonic()  # the last send or keep-warm on the broker connection

    @property
    def pending(self) -> int:
        """Messages kept, not on the queue yet."""
        return sum(len(entries) for entries in self._pending)

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

    def _send(self, entries: list[Entry], retry: bool = True) -> None:
        self._last_used = time.monotonic()
        name, task_id, args = task_of(entries)
        self._app.send_task(name, args=args, task_id=task_id, retry=retry, retry_policy=_RETRY_POLICY,
                            argsrepr=_argsrepr(entries), kwargsrepr="{}")

    def _send_inline(self, entries: list[Entry]) -> bool:
        """The hot path: only when nothing is kept or being sent, so order is preserved."""
        if not self._healthy or self._pending or self._lock.locked():
            return False
        try:
            self._send(entries, retry=False)
        except Exception as exc:  # noqa: BLE001 - kept, sent by the threaded path
            self._healthy = False
            self.failures += 1
            log.warning("enqueue of %s failed (%s); sending from a thread with retries", _argsrepr(entries),
                        type(exc).__name__)
            return False
        self.enqueued += len(entries)
        return True

    async def submit(self, entries: list[Entry]) -> bool:
        """True when on the queue now (as one task); False when kept for `drain` to retry.

        Past `max_pending` messages (the Celery broker unreachable for a long time) the oldest
        kept are dropped: counted, logged as an error and shown in /health, never silently.
        """
        if self._send_inline(entries):
            return True
        while self._pending and self.pending + len(entries) > self._max_pending:
            lost = self._pending.popleft()
            self.dropped += len(lost)
            log.error("enqueue backlog full (%d): message(s) %s dropped undecided", self._max_pending,
                      _argsrepr(lost))
        self._pending.append(entries)
        return await self.drain()

    async def drain(self) -> bool:
        async with self._lock:
            return await self._drain_locked()

    async def _drain_locked(self) -> bool:
        while self._pending:
            entries = self._pending[0]
            try:
                await asyncio.to_thread(self._send, entries)
            except Exception as exc:  # noqa: BLE001 - kept, retried by the next drain
                self.failures += 1
                log.warning("enqueue of %s failed (%s); %d pending", _argsrepr(entries), type(exc).__name__,
                            self.pending)
                return False
            self._pending.popleft()
            self.enqueued += len(entries)
            self._healthy = True
        return True
