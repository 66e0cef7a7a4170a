"""Async Redis helpers for the bridge's claim tests (message identity, catch-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from bridge.dedup import MessageIdentity

T = TypeVar("T")


def run(redis_url: str, scenario: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    """Run one async scenario against its own client of `redis_url`."""
    async def main() -> T:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await scenario(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


async def subscribed(client: aioredis.Redis) -> MessageIdentity:
    """A bridge's identity right after it subscribed: earlier claims are older, later ones newer."""
    identity = MessageIdentity()
    await asyncio.sleep(0.002)  # Redis TIME has millisecond steps
    await identity.subscribing(client)
    await asyncio.sleep(0.002)
    return identity
