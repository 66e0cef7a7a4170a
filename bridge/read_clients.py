"""The Redis clients /health and /metrics read through: made once, pooled, kept.

A client made per request opened a new TCP connection (and AUTH) on every probe: a
monitoring system, or anyone reaching the port, could make the bridge open connections to
Redis as fast as it could ask. These clients keep their connections in redis-py's pool; a
connection Redis closed is dropped by the pool and the next request opens one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

READ_TIMEOUT_S = 1.0  # a probe that waits longer than this reports Redis as unusable
CONNECT_TIMEOUT_S = 1.0
REDIS_BROKERS = ("redis://", "rediss://")


@dataclass
class ReadClients:
    """Lazily made clients of the gateway's Redis (bytes and text) and of the Celery broker."""

    redis_url: str
    broker_url: str = ""
    _made: dict[str, aioredis.Redis] = field(default_factory=dict, repr=False)

    def _client(self, name: str, url: str, decode: bool) -> aioredis.Redis:
        if name not in self._made:
            self._made[name] = aioredis.Redis.from_url(
                url, decode_responses=decode, socket_timeout=READ_TIMEOUT_S,
                socket_connect_timeout=CONNECT_TIMEOUT_S)
        return self._made[name]

    def state(self) -> aioredis.Redis:
        """Bytes: a key another service wrote need not be UTF-8."""
        return self._client("state", self.redis_url, decode=False)

    def text(self) -> aioredis.Redis:
        """Text: the gateway's own metric hashes."""
        return self._client("text", self.redis_url, decode=True)

    def queues(self) -> aioredis.Redis | None:
        """The Celery broker, when it is a Redis (RabbitMQ has metrics of its own)."""
        if not self.broker_url.startswith(REDIS_BROKERS):
            return None
        return self._client("queues", self.broker_url, decode=False)

    async def aclose(self) -> None:
        for client in self._made.values():
            await client.aclose()
        self._made.clear()
