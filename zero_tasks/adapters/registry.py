"""Who is there, without a SCAN: the workers' heartbeats and the audit writers' failure reports.

Each worker (and each failing audit writer) keeps a key of its own with a TTL, as before;
beside it, its name goes into a small sorted set (the registry), scored by when it last
wrote. A reader (/health, `zero-ops status`) reads the registry and then the named keys in
one MGET: what is there is what is alive or failing now, a name whose key expired is not.
A SCAN MATCH would walk the whole keyspace of the Redis the gateway shares with ZERO, on
every /health call. A name silent for REGISTRY_KEEP_S leaves the registry at the next write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis

REGISTRY_KEEP_S = 86_400


def register(pipe: Any, registry_key: str, name: str, now_s: float) -> None:
    """Queue on a pipeline: `name` is there now; names silent for a day go."""
    pipe.zadd(registry_key, {name: now_s})
    pipe.zremrangebyscore(registry_key, "-inf", now_s - REGISTRY_KEEP_S)


def unregister(pipe: Any, registry_key: str, name: str) -> None:
    pipe.zrem(registry_key, name)


def names(r: redis.Redis, registry_key: str) -> list[str]:
    """The registered names, sorted (their keys may have expired since: read them to know)."""
    return sorted(_text(name) for name in r.zrange(registry_key, 0, -1))


async def present_async(client: aioredis.Redis, registry_key: str, key_of: Callable[[str], str]) -> list[Any]:
    """The values of the registered names' keys that are there now (one MGET)."""
    registered = [_text(name) for name in await client.zrange(registry_key, 0, -1)]
    if not registered:
        return []
    return [value for value in await client.mget([key_of(name) for name in registered]) if value is not None]


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
