"""The subscription loop: reconnects by itself, never dies on a message.

Messages are read as bytes (decode_responses=False): redis-py would raise on non-UTF-8
pub/sub bytes, and those too must end as a SKIPPED decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from zero_tasks import failpoints
from zero_tasks.adapters import redis_clock
from zero_tasks.adapters.redis_state import connect_async
from zero_tasks.core import keys
from zero_tasks.core.intake import BATCH_MAX

from .dedup import MessageIdentity, claim_catch_up, mark_handed, take_over

log = logging.getLogger(__name__)

Incoming = tuple[bytes, str, datetime]  # the bytes, the message id, when heard
# Takes a batch; returns the ids it handed over (on the Celery queue).
Handler = Callable[[list[Incoming]], Awaitable["set[str] | None"]]


# How long a message another bridge claimed may stay unhandled before this bridge takes it
# over: far above a hand-over's milliseconds, even for a batch of 200 in a burst.
TAKE_OVER_AFTER_S = 2.0
DROPS = Counter("zero_bridge_subscription_drops_total",
                "Subscriptions to chan:opportunity_update lost while subscribed (Redis closed them, e.g. its "
                "pub/sub output buffer overflowed): what was published meanwhile never reached this bridge")


class Listener:
    """Hears chan:opportunity_update; hands the messages it wins to `handler`, in batches
    of what was already waiting (one message when they come one at a time).

    On every (re)subscription it also decides the ranking ZERO keeps in
    key:opportunity_rank, so a ranking published while no bridge listened is not lost
    while it is still fresh; a ranking any bridge heard live is left alone (dedup.py).
    """

    def __init__(self, redis_url: str, handler: Handler) -> None:
        self._url = redis_url
        self._handler = handler
        self._identity = MessageIdentity()
        self.connected = False
        self.received = 0
        self.won = 0
        self.reconnects = 0
        self.dropped = 0  # subscriptions lost while subscribed (DROPS)
        self.handler_errors = 0
        self.taken_over = 0
        self._lost: deque[tuple[float, Incoming]] = deque()  # (when to look again, message) claimed elsewhere
        self._subscribed = False  # a subscription confirmed and not yet lost

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                await self._listen(stop)
                delay = 0.1
            except (RedisError, OSError) as exc:
                if self._subscribed:
                    # Redis closed a live subscription (a flood past its pub/sub output buffer
                    # limit, a restart, a CLIENT KILL): the messages in between are gone; the
                    # next subscription catches up with key:opportunity_rank.
                    self.dropped += 1
                    DROPS.inc()
                    log.error("subscription to %s dropped (%s): messages published meanwhile are lost; "
                              "resubscribing and catching up from %s", keys.OPPORTUNITY_CHANNEL,
                              type(exc).__name__, keys.OPPORTUNITY_RANK_KEY)
                self._subscribed = False
                self.connected = False
                self.reconnects += 1
                log.warning("redis subscription lost (%s); reconnecting in %.1fs", type(exc).__name__, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, 5.0) * random.uniform(0.8, 1.2)

    async def _listen(self, stop: asyncio.Event) -> None:
        # Two clients: the subscription PINGs while it is quiet (a dead one must not leave
        # the bridge deaf), the claims' connection does not (a PING there would come before
        # the first claim after every quiet minute, on the signal's path).
        subscriber = aioredis.Redis.from_url(self._url, decode_responses=False, socket_connect_timeout=2,
                                             health_check_interval=5)
        pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
        client = connect_async(self._url)
        try:
            await self._identity.subscribing(client)
            await pubsub.subscribe(keys.OPPORTUNITY_CHANNEL)
            self.connected = self._subscribed = True
            log.info("subscribed to %s", keys.OPPORTUNITY_CHANNEL)
            await self._catch_up(client)
            while not stop.is_set():
                batch = await self._next_batch(pubsub)
                if batch:
                    await self._claim_and_handle(client, batch)
                await self._take_over_due(client)
        finally:
            self.connected = False
            try:
                await pubsub.aclose()
                await subscriber.aclose()
                await client.aclose()
            except (RedisError, OSError):
                pass

    @staticmethod
    async def _next_batch(pubsub: aioredis.client.PubSub) -> list[tuple[bytes, datetime]]:
        message = await pubsub.get_message(timeout=1.0)
        batch = []
        while message is not None:
            data = message["data"]
            batch.append((data if isinstance(data, bytes) else str(data).encode(), redis_clock.utcnow()))
            if len(batch) >= BATCH_MAX:
                break
            message = await pubsub.get_message(timeout=0)  # only what is already here
        return batch

    async def _claim_and_handle(self, client: aioredis.Redis, batch: list[tuple[bytes, datetime]]) -> None:
        self.received += len(batch)
        claims = await self._identity.claim(client, [data for data, _ in batch])
        won = [(data, message_id, heard)
               for (data, heard), (message_id, ours) in zip(batch, claims, strict=True) if ours]
        look_again = time.monotonic() + TAKE_OVER_AFTER_S
        self._lost.extend((look_again, (data, message_id, heard))
                          for (data, heard), (message_id, ours) in zip(batch, claims, strict=True) if not ours)
        self.won += sum(ours for _, ours in claims)
        if won:
            if failpoints.ARMED:
                failpoints.hit("bridge_after_claim")  # fault tests: die holding claims
            await mark_handed(client, sorted(await self._handle(won)))

    @property
    def watching(self) -> int:
        """Messages another bridge claimed, to be looked at again (taken over if never handed over)."""
        return len(self._lost)

    async def _take_over_due(self, client: aioredis.Redis) -> None:
        """Messages another bridge claimed and never marked handed over (it died in between):
        decided here, by the first bridge to ask."""
        now = time.monotonic()
        due = []
        while self._lost and self._lost[0][0] <= now:
            due.append(self._lost.popleft()[1])
        if not due:
            return
        owned = await take_over(client, [message_id for _, message_id, _ in due])
        orphans = [message for message, ours in zip(due, owned, strict=True) if ours]
        if orphans:
            self.taken_over += len(orphans)
            log.warning("%d message(s) claimed by another bridge were never handed over (%s...): deciding them here",
                        len(orphans), orphans[0][1])
            await self._handle(orphans)

    async def _handle(self, batch: list[Incoming]) -> set[str]:
        """The ids handed over. A batch the handler cannot take is logged and counted; the
        bridge lives on (and, unmarked, the batch is taken over by another bridge)."""
        try:
            return set(await self._handler(batch) or ())
        except (RedisError, OSError):
            raise  # the connection: reconnect
        except Exception:  # never let one message end the subscription
            self.handler_errors += 1
            log.exception("%d message(s) could not be handed over (%s...)", len(batch), batch[0][1])
            return set()

    async def _catch_up(self, client: aioredis.Redis) -> None:
        caught = await claim_catch_up(client)
        if caught is not None:
            data, message_id = caught
            self._identity.caught_up(data)
            log.info("deciding the stored ranking from %s (%s)", keys.OPPORTUNITY_RANK_KEY, message_id)
            handed = await self._handle([(data, message_id, redis_clock.utcnow())])
            await mark_handed(client, sorted(handed))
