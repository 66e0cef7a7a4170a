"""The bridge process: listener + enqueuer + /health and /metrics, in one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge
from redis.exceptions import RedisError

from zero_tasks.adapters import db_probe, redis_clock, scripts
from zero_tasks.adapters.redis_state import connect_async
from zero_tasks.core.intake import Message, message_from_bytes
from zero_tasks.core.task_auth import seal
from zero_tasks.settings import Settings

from . import handover
from .broker_probe import BrokerProbe
from .handover import DECIDE_TASK, Enqueuer
from .health import HealthSources, health, render
from .http import HttpServer
from .listener import Listener
from .memory import IdleTrimmer
from .metrics import Snapshot, read_stored
from .metrics import render as render_metrics
from .read_clients import ReadClients

log = logging.getLogger("bridge")

MESSAGES = Counter("zero_bridge_messages_total", "Messages received on chan:opportunity_update", ["verdict"])
ENQUEUED = Counter("zero_bridge_enqueued_total", "Messages handed to the worker queue")
PENDING = Gauge("zero_bridge_pending", "Messages kept by the bridge while the queue is unreachable")
RESCUED = Counter("zero_bridge_rescued_total", "Messages queued again: handed over long ago, never decided")
RESCUE_EVERY_S = 5


class Bridge:
    def __init__(self, settings: Settings) -> None:
        from zero_tasks.celery_app import app  # celeryconfig (and its paper guard) loads at its first use

        self.settings = settings
        self.enqueuer = Enqueuer(app)
        self.listener = Listener(settings.redis_url, self.on_batch)
        self.rescued = 0
        self._trimmer = IdleTrimmer()
        self._redis = connect_async(settings.redis_url)
        self._ledger = handover.Ledger(self._redis)
        self._unrecorded: list[handover.Entry] = []  # not in the hand-over ledger yet: not queued either
        self.sources = HealthSources(
            clients=ReadClients(settings.redis_url, settings.broker_url),
            db_ping=db_probe.pinger(settings.sqlalchemy_url),
            broker_probe=BrokerProbe(settings),
            database_label=db_probe.label(settings.sqlalchemy_url),
            stats=self.stats,
            market_state_max_age_s=settings.market_state_max_age_s,
            mirror_max_age_s=settings.mirror_max_age_s,
            mirror_seal_key=settings.task_signing_key.get_secret_value(),
        )

    @property
    def pending(self) -> int:
        """Messages this bridge keeps, not on the queue yet: waiting for the ledger or the queue."""
        return len(self._unrecorded) + self.enqueuer.pending

    def stats(self) -> dict[str, object]:
        return {"bridge": {"subscribed": self.listener.connected, "received": self.listener.received,
                           "won": self.listener.won,
                           "enqueued": self.enqueuer.enqueued, "pending": self.pending,
                           "dropped": self.enqueuer.dropped,
                           "reconnects": self.listener.reconnects,
                           "subscription_drops": self.listener.dropped,
                           "watching": self.listener.watching,  # claimed elsewhere, looked at again soon
                           "taken_over": self.listener.taken_over, "rescued": self.rescued,
                           "handler_errors": self.listener.handler_errors}}

    async def on_batch(self, batch: list[tuple[bytes, str, datetime]]) -> set[str]:
        """Hand a batch to the worker, in order: one task (`decide` for a message heard alone,
        `decide_many` for a burst's batch), each message sealed. The bridge decides nothing,
        not even an invalid message: it bounds and reads the bytes only to name the task by
        the execution_id. Returns the message ids on the queue (not those kept for a broker
        that is away: until they are sent, another bridge may take them over)."""
        entries = []
        for data, message_id, heard in batch:
            message, subject = message_from_bytes(data, message_id, heard, self.settings.max_payload_bytes)
            MESSAGES.labels("invalid" if message.invalid_reason else "valid").inc()
            entries.append(handover.Entry(subject.execution_id, self._sealed(message)))
        handed = await self._hand_over(entries)
        PENDING.set(self.pending)
        return handed

    async def _hand_over(self, entries: list[handover.Entry]) -> set[str]:
        """The hand-over ledger first, then the queue: the ids now on the queue.

        A task is put on the queue only once its ledger entry is written: kombu's Redis
        transport can lose a task between its BRPOP and its unacked hash (a worker whose
        connection broke, a BRPOP left blocked by a client that gave up during a partition),
        and the ledger is what queues it again. Entries the ledger did not take wait here
        (`_unrecorded`, shown as pending) and go once it does; meanwhile another bridge may
        take their messages over, which is harmless."""
        if not entries:
            return set()
        if not await self._record_in_flight(entries):
            self._unrecorded.extend(entries)
            return set()
        if not await self.enqueuer.submit(entries):
            return set()
        ENQUEUED.inc(len(entries))
        return {entry.message_id for entry in entries}

    async def _record_in_flight(self, entries: list[handover.Entry]) -> bool:
        """Into the hand-over ledger; tried twice, since a connection the server closed (Redis
        restarted or cut off) fails its next command and the second goes on a new one."""
        for attempt in (1, 2):
            try:
                await self._ledger.record(entries)
                return True
            except RedisError as exc:
                log.warning("hand-over ledger not written for %d message(s) (%s, attempt %d); not queued yet",
                            len(entries), type(exc).__name__, attempt)
        return False

    async def _hand_over_unrecorded(self) -> None:
        """What waits for the ledger, handed over once Redis takes it."""
        entries, self._unrecorded = self._unrecorded, []
        await self._hand_over(entries)
        PENDING.set(self.pending)

    async def _rescue(self) -> None:
        """Queue again what was handed over long ago and still has no decision (handover.py)."""
        try:
            entries = await self._ledger.due(self.settings.handover_rescue_after_s)
        except RedisError as exc:
            log.warning("hand-over ledger not read (%s)", type(exc).__name__)
            return
        except ValueError:  # an entry that is not ours: say so, keep the loop alive
            log.exception("hand-over ledger entry unreadable")
            return
        now = redis_clock.utcnow()  # the Redis host's clock, as the workers judge
        for entry in entries:
            if entry.too_old(now):
                log.error("message %s (task %s) was never decided and is too old to queue again; "
                          "dropped from the hand-over ledger", entry.message_id, entry.task_id)
                try:
                    await self._ledger.forget(entry.message_id)
                except RedisError as exc:
                    log.warning("hand-over ledger entry %s not dropped (%s)", entry.message_id, type(exc).__name__)
                continue
            log.warning("message %s was handed over %d s ago or more and has no decision: queued again (task %s)",
                        entry.message_id, self.settings.handover_rescue_after_s, entry.task_id)
            self.rescued += 1
            RESCUED.inc()
            await self.enqueuer.submit([entry])

    def _sealed(self, message: Message) -> dict[str, object]:
        """The decide task's argument, sealed: the worker runs no task it cannot open."""
        return seal(self.settings.task_signing_key.get_secret_value(), DECIDE_TASK, message.to_task(),
                    redis_clock.utcnow())  # the clock the workers open it by

    async def _health(self) -> tuple[int, str, bytes]:
        status, body = await health(self.sources)
        return status, "application/json", render(body)

    async def _metrics(self) -> tuple[int, str, bytes]:
        PENDING.set(self.pending)
        _, body = await health(self.sources)
        try:
            stored, queues = await read_stored(self.sources.clients)
        except Exception:  # noqa: BLE001 - Redis down: the up gauges say so
            stored, queues = {}, {}
        return 200, CONTENT_TYPE_LATEST, render_metrics(Snapshot(stored, body, queues))

    async def _drain_forever(self, stop: asyncio.Event) -> None:
        """Every second: hand over what the ledger did not take, resend what the queue did not
        take, or keep the queue's connection warm while quiet (handover.py); after a burst, give
        memory back. Every RESCUE_EVERY_S: queue again what the worker never decided."""
        ticks = 0
        while not stop.is_set():
            await asyncio.sleep(1.0)
            if self._unrecorded:
                await self._hand_over_unrecorded()
            if self.enqueuer.pending:
                await self.enqueuer.drain()
                PENDING.set(self.pending)
            elif self.enqueuer.due_to_keep_warm(time.monotonic()):
                await self.enqueuer.keep_warm()
            await self._trimmer.tick(self.listener.received)
            ticks += 1
            if ticks % RESCUE_EVERY_S == 0:
                await self._rescue()

    async def _warm_scripts(self) -> None:
        """Redis compiles the gateway's Lua scripts now (those of a message's path: the
        claims, the hand-over ledger, the outbox), so the first signal after a start does not
        pay for it; a Redis restarted later loads them again at their next call (redis-py's
        NOSCRIPT path)."""
        try:
            await scripts.load_all_async(self._redis)
        except RedisError as exc:  # the first message loads them the usual way
            log.warning("warm-up: Lua scripts not loaded (%s)", type(exc).__name__)

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = await HttpServer({"/health": self._health, "/metrics": self._metrics}).start(
            self.settings.execution_api_host, self.settings.execution_api_port)
        log.info("bridge serving /health on http://%s:%d (paper only)",
                 self.settings.execution_api_host, self.settings.execution_api_port)
        if self.settings.gateway_clock == "redis":
            await asyncio.to_thread(redis_clock.CLOCK.start, self.settings.redis_url)
        await asyncio.to_thread(self.enqueuer.connect)
        await self._warm_scripts()
        async with server:
            await asyncio.gather(self.listener.run(stop), self._drain_forever(stop))
        await self._redis.aclose()
        await self.sources.clients.aclose()
        log.info("bridge stopped")
