"""Cross-bridge message identity (bridge/dedup.py), against a real Redis.

Several bridges hear every message; each message must be decided by exactly one of them.
These tests drive two `MessageIdentity` objects (two bridges) through the orderings that
matter, including the one a restarted bridge meets: another bridge claims a message after
this bridge subscribed but before it finished subscribing.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from bridge.dedup import MessageIdentity, claim_catch_up, content_hash, mark_handed, take_over
from bridge.listener import Listener
from tests.support.bridge_redis import run, subscribed
from tests.support.monitor import commands_during
from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import redis_db
from zero_tasks.core import keys

MSG = b'{"ranking": "one"}'


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    private_redis.client(db=redis_db(__name__)).flushdb()
    return f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__)}"


def test_two_bridges_hearing_one_message_decide_it_once(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[bool]:
        a, b = await subscribed(client), await subscribed(client)
        return [won for _, won in await a.claim(client, [MSG]) + await b.claim(client, [MSG])]

    assert sorted(run(redis_url, scenario)) == [False, True]


def test_identical_bytes_published_twice_are_two_messages(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[tuple[str, bool]]:
        a = await subscribed(client)
        return await a.claim(client, [MSG, MSG])

    (first, won_first), (second, won_second) = run(redis_url, scenario)
    assert first.endswith(":1") and second.endswith(":2") and won_first and won_second


def test_a_claim_made_while_a_bridge_subscribes_is_not_counted_as_history(redis_url: str) -> None:
    """The race CI met: bridge B claims a message that restarted bridge A also hears, after
    A subscribed but before A's first claim. A must lose it, not decide it a second time."""
    async def scenario(client: aioredis.Redis) -> list[tuple[str, bool]]:
        b = await subscribed(client)
        a = await subscribed(client)          # A (re)subscribes ...
        await b.claim(client, [MSG])          # ... the message is published and B claims it ...
        return await a.claim(client, [MSG])   # ... then A hears it too

    [(message_id, won)] = run(redis_url, scenario)
    assert message_id.endswith(":1") and not won


def test_a_bridge_subscribing_later_continues_the_count_of_earlier_publications(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[tuple[str, bool]]:
        b = await subscribed(client)
        await b.claim(client, [MSG])          # published once before A listened
        a = await subscribed(client)
        await b.claim(client, [MSG])          # published again: both hear it
        return await a.claim(client, [MSG])

    [(message_id, won)] = run(redis_url, scenario)
    assert message_id.endswith(":2") and not won


def test_the_stored_ranking_is_caught_up_once_across_bridges(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[object]:
        await client.set(keys.OPPORTUNITY_RANK_KEY, MSG, ex=60)
        return [await claim_catch_up(client), await claim_catch_up(client)]

    first, second = run(redis_url, scenario)
    assert first is not None and first[0] == MSG and first[1].endswith(":1")
    assert second is None


def test_the_same_bytes_twice_in_one_batch_continue_the_count_of_earlier_publications(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[tuple[str, bool]]:
        b = await subscribed(client)
        await b.claim(client, [MSG])          # published once before A listened
        a = await subscribed(client)
        return await a.claim(client, [MSG, MSG, b"other"])

    (first, won_first), (second, won_second), (other, won_other) = run(redis_url, scenario)
    assert (first[-2:], second[-2:], other[-2:]) == (":2", ":3", ":1")
    assert won_first and won_second and won_other


def test_a_message_costs_one_round_trip_to_claim(private_redis: PrivateRedis) -> None:
    """The latency path: no HVALS, no SCRIPT EXISTS, just the claim script (EVALSHA)."""
    private_redis.client(db=redis_db(__name__, 1)).flushdb()
    identity = MessageIdentity()
    url = f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__, 1)}"

    async def warm() -> None:
        async with aioredis.Redis.from_url(url) as client:
            await identity.subscribing(client)
            await identity.claim(client, [b"warm-up: loads the script"])

    async def one_message() -> None:
        async with aioredis.Redis.from_url(url) as client:
            assert [won for _, won in await identity.claim(client, [MSG])] == [True]

    asyncio.run(warm())
    sent = commands_during(private_redis, redis_db(__name__, 1), one_message)
    assert len(sent) == 1 and sent[0].startswith("EVALSHA"), sent


async def running(listener: Listener) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """A Listener started and subscribed; set the event and await the task to stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    for _ in range(200):
        if listener.connected:
            break
        await asyncio.sleep(0.01)
    return stop, task


def test_a_listener_reads_its_subscription_time_before_it_subscribes(private_redis: PrivateRedis) -> None:
    """The order that makes the race test above hold for a real bridge: TIME is answered
    before SUBSCRIBE is sent, so no claim of a message this bridge hears is older than it."""

    async def scenario() -> None:
        stop, task = await running(Listener(f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__, 2)}",
                                            handler=lambda batch: asyncio.sleep(0)))
        stop.set()
        await task

    commands = commands_during(private_redis, redis_db(__name__, 2), scenario)
    time_at = commands.index("TIME")
    assert time_at < next(i for i, c in enumerate(commands) if c.startswith("SUBSCRIBE"))


def test_a_message_its_winner_never_handed_over_is_taken_over_once(redis_url: str) -> None:
    """The winner died between its claim and the hand-over: the first loser to ask owns it."""
    async def scenario(client: aioredis.Redis) -> tuple[list[bool], list[bool]]:
        a, b = await subscribed(client), await subscribed(client)
        (message_id, won), = await a.claim(client, [MSG])
        assert won and not (await b.claim(client, [MSG]))[0][1]
        return await take_over(client, [message_id]), await take_over(client, [message_id])

    assert run(redis_url, scenario) == ([True], [False])


def test_a_message_handed_over_is_not_taken_over(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> list[bool]:
        a = await subscribed(client)
        (message_id, _), = await a.claim(client, [MSG])
        await mark_handed(client, [message_id])
        return await take_over(client, [message_id])

    assert run(redis_url, scenario) == [False]


def _listen_to_one_message_claimed_elsewhere(redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                             winner_hands_over: bool) -> tuple[list[str], int]:
    """A Listener hears MSG after another bridge claimed it; that bridge hands it over or not."""
    import bridge.listener as listener_module

    monkeypatch.setattr(listener_module, "TAKE_OVER_AFTER_S", 0.2)
    handled: list[str] = []

    async def handler(batch: list[tuple[bytes, str, object]]) -> set[str]:
        handled.extend(message_id for _, message_id, _ in batch)
        return {message_id for _, message_id, _ in batch}

    async def scenario(client: aioredis.Redis) -> int:
        listener = Listener(redis_url, handler)
        stop, task = await running(listener)
        digest = content_hash(MSG)
        # the other bridge's claim, stamped later than this listener's subscription: not history to it
        await client.hset(keys.BRIDGE_MSG_PREFIX + digest, "1", 10 ** 15)
        if winner_hands_over:
            await mark_handed(client, [f"{digest}:1"])
        await client.publish(keys.OPPORTUNITY_CHANNEL, MSG)
        await asyncio.sleep(1.5)  # past the take-over time, and one idle read of the channel
        stop.set()
        await task
        return listener.taken_over

    taken = run(redis_url, scenario)
    return handled, taken


def test_a_listener_takes_over_a_message_another_bridge_claimed_and_never_handed_over(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handled, taken = _listen_to_one_message_claimed_elsewhere(redis_url, monkeypatch, winner_hands_over=False)
    assert handled == [f"{content_hash(MSG)}:1"] and taken == 1


def test_a_listener_leaves_a_message_another_bridge_handed_over(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handled, taken = _listen_to_one_message_claimed_elsewhere(redis_url, monkeypatch, winner_hands_over=True)
    assert handled == [] and taken == 0
