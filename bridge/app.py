"""The bridge process: listener + enqueuer + /health and /metrics, in one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge
from sqlalchemy.engine import make_url

from zero_tasks.audit import make_engine
from zero_tasks.message import message_from_bytes
from zero_tasks.settings import Settings

from .broker_probe import BrokerProbe
from .enqueue import Enqueuer
from .health import HealthSources, health, render
from .http import HttpServer
from .listener import Listener
from .metrics import Snapshot, read_stored
from .metrics import render as render_metrics

log = logging.getLogger("bridge")

MESSAGES = Counter("zero_bridge_messages_total", "Messages received on chan:opportunity_update", ["verdict"])
ENQUEUED = Counter("zero_bridge_enqueued_total", "Decide tasks handed to the worker queue")
PENDING = Gauge("zero_bridge_pending", "Messages kept by the bridge while the queue is unreachable")


def database_label(settings: Settings) -> str:
    """The database in use, without credentials."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{url.database}"
    return f"{url.get_backend_name()}://{url.host}:{url.port or 5432}/{url.database}"


class Bridge:
    def __init__(self, settings: Settings) -> None:
        from zero_tasks.celery_app import app  # loads celeryconfig: the paper guard has run

        self.settings = settings
        self.enqueuer = Enqueuer(app)
        self.listener = Listener(settings.redis_url, self.on_message)
        self.sources = HealthSources(
            redis_url=settings.redis_url,
            engine=make_engine(settings.sqlalchemy_url),
            broker_probe=BrokerProbe(settings),
            database_label=database_label(settings),
            broker_url=settings.broker_url,
            stats=self.stats,
        )

    def stats(self) -> dict[str, object]:
        return {"bridge": {"subscribed": self.listener.connected, "received": self.listener.received, "won": self.listener.won,
                           "enqueued": self.enqueuer.enqueued, "pending": self.enqueuer.pending,
                           "dropped": self.enqueuer.dropped,
                           "reconnects": self.listener.reconnects,
                           "handler_errors": self.listener.handler_errors}}

    async def on_message(self, data: bytes, message_id: str, received_at: datetime) -> None:
        message, parsed = message_from_bytes(data, message_id, received_at, self.settings.max_payload_bytes)
        MESSAGES.labels("invalid" if message.invalid_reason else "valid").inc()
        if await self.enqueuer.submit(parsed.execution_id, message.to_task()):
            ENQUEUED.inc()
        PENDING.set(self.enqueuer.pending)

    async def _health(self) -> tuple[int, str, bytes]:
        status, body = await health(self.sources)
        return status, "application/json", render(body)

    async def _metrics(self) -> tuple[int, str, bytes]:
        PENDING.set(self.enqueuer.pending)
        _, body = await health(self.sources)
        try:
            stored, queues = await read_stored(self.settings.redis_url, self.settings.broker_url)
        except Exception:  # noqa: BLE001 - Redis down: the up gauges say so
            stored, queues = {}, {}
        return 200, CONTENT_TYPE_LATEST, render_metrics(Snapshot(stored, body, queues))

    async def _drain_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            if self.enqueuer.pending:
                await self.enqueuer.drain()
                PENDING.set(self.enqueuer.pending)

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = await HttpServer({"/health": self._health, "/metrics": self._metrics}).start(
            self.settings.execution_api_host, self.settings.execution_api_port)
        log.info("bridge serving /health on http://%s:%d (paper only)",
                 self.settings.execution_api_host, self.settings.execution_api_port)
        async with server:
            await asyncio.gather(self.listener.run(stop), self._drain_forever(stop))
        log.info("bridge stopped")
