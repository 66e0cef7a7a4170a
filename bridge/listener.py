"""The subscription loop: reconnects by itself, never dies on a message.

Messages are read as bytes (decode_responses=False): redis-py would raise on non-UTF-8
pub/sub bytes, and those too must end as a SKIPPED decision.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import datetime, timezone
from typing import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from zero_tasks import keys

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str, datetime], Awaitable[None]]


class Listener:
    def __init__(self, redis_url: str, handler: Handler, on_connect: Callable[[], Awaitable[None]] | None = None) -> None:
        self._url = redis_url
        self._handler = handler
        self._on_connect = on_connect
        self.connected = False
        self.received = 0
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                await self._listen(stop)
                delay = 0.1
            except (RedisError, OSError) as exc:
                self.connected = False
                self.reconnects += 1
                log.warning("redis subscription lost (%s); reconnecting in %.1fs", type(exc).__name__, delay)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, 5.0) * random.uniform(0.8, 1.2)

    async def _listen(self, stop: asyncio.Event) -> None:
        client = aioredis.Redis.from_url(self._url, decode_responses=False, socket_connect_timeout=2,
                                         health_check_interval=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.OPPORTUNITY_CHANNEL)
            self.connected = True
            log.info("subscribed to %s", keys.OPPORTUNITY_CHANNEL)
            if self._on_connect:
                await self._on_connect()
            while not stop.is_set():
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                received_at = datetime.now(timezone.utc)
                self.received += 1
                data = message["data"]
                await self._handler(data if isinstance(data, bytes) else str(data).encode(),
                                    uuid.uuid4().hex, received_at)
        finally:
            self.connected = False
            try:
                await pubsub.aclose()
                await client.aclose()
            except (RedisError, OSError):
                pass
