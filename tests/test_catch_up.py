"""The catch-up of key:opportunity_rank (bridge/dedup.py), against a real Redis.

A bridge that (re)subscribes decides the stored ranking only if no bridge heard it: ZERO
stores the very bytes it published, so a ranking some bridge claimed live is never decided
a second time, whatever the kill switch says now.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import redis.asyncio as aioredis

from bridge.dedup import claim_catch_up, content_hash, mark_handed, take_over
from bridge.listener import Listener
from tests.support.bridge_redis import run, subscribed
from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import redis_db
from zero_tasks.core import keys

RANKING = b'{"ranking": "stored"}'
LIVE_ID = f"{content_hash(RANKING)}:1"  # the first occurrence of these bytes, as heard live


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    private_redis.client(db=redis_db(__name__)).flushdb()
    return f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__)}"


async def stored(client: aioredis.Redis) -> None:
    await client.set(keys.OPPORTUNITY_RANK_KEY, RANKING, ex=60)  # as ZERO does, after the PUBLISH


def test_a_ranking_a_bridge_heard_live_is_not_caught_up(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> object:
        heard = await subscribed(client)
        await heard.claim(client, [RANKING])
        await stored(client)
        return await claim_catch_up(client)  # a bridge restarted within ZERO's 60 s

    assert run(redis_url, scenario) is None


def test_a_ranking_no_bridge_heard_is_caught_up_once_across_bridges_and_restarts(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[object]:
        await stored(client)
        return [await claim_catch_up(client), await claim_catch_up(client)]

    first, second = run(redis_url, scenario)
    assert first == (RANKING, f"{content_hash(RANKING)}:1")
    assert second is None


def test_a_bridge_that_heard_the_ranking_but_had_not_claimed_it_yet_lets_the_catch_up_have_it(
        redis_url: str) -> None:
    """The race: bridge A hears the ranking and is slow to claim it; bridge B restarts and
    catches it up first. A loses occurrence 1 and, once B has handed it over, lets it go."""
    async def scenario(client: aioredis.Redis) -> tuple[list[tuple[str, bool]], list[bool]]:
        a = await subscribed(client)           # A listens; the ranking is published and stored
        await stored(client)
        caught = await claim_catch_up(client)  # B's catch-up
        assert caught is not None
        claims = await a.claim(client, [RANKING])  # A's claim comes late
        await mark_handed(client, [caught[1]])
        return claims, await take_over(client, [message_id for message_id, _ in claims])

    claims, taken = run(redis_url, scenario)
    assert claims == [(LIVE_ID, False)]
    assert taken == [False]


def test_a_catch_up_never_handed_over_is_taken_over_by_the_bridge_that_heard_it(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[bool]:
        a = await subscribed(client)
        await stored(client)
        assert await claim_catch_up(client) is not None  # B catches up, then dies
        await a.claim(client, [RANKING])
        return await take_over(client, [LIVE_ID])

    assert run(redis_url, scenario) == [True]


def test_the_same_bytes_heard_after_a_catch_up_are_their_second_occurrence(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[tuple[str, bool]]:
        b = await subscribed(client)
        await stored(client)
        caught = await claim_catch_up(client)
        assert caught is not None
        b.caught_up(caught[0])
        return await b.claim(client, [RANKING])  # published again

    assert run(redis_url, scenario) == [(f"{content_hash(RANKING)}:2", True)]


@pytest.mark.parametrize("handed_over", [True, False])
def test_the_listener_marks_a_caught_up_ranking_handed_over_only_once_it_is(redis_url: str,
                                                                           handed_over: bool) -> None:
    decided: list[str] = []
    stop = asyncio.Event()

    async def handler(batch: list[tuple[bytes, str, datetime]]) -> set[str]:
        decided.extend(message_id for _, message_id, _ in batch)
        stop.set()  # the bridge stops once it has handled the caught-up ranking
        return {message_id for _, message_id, _ in batch} if handed_over else set()

    async def scenario(client: aioredis.Redis) -> list[bool]:
        await stored(client)
        await asyncio.wait_for(Listener(redis_url, handler).run(stop), timeout=30)  # subscribe, catch up
        return await take_over(client, [LIVE_ID])

    taken = run(redis_url, scenario)
    assert decided == [f"{content_hash(RANKING)}:1"]
    assert taken == [not handed_over]
