"""One identity per message across every bridge, so several bridges decide it once.

Every subscribed bridge hears every message, in the same order. A message is named by
its content hash and its occurrence number (the n-th time these exact bytes were
published); the first bridge to claim `(hash, n)` in Redis enqueues it, the others let
it go. Identical bytes published five times are five messages and five decisions.

A bridge that (re)subscribes does not know how often a payload was published before it
listened: on the first sight of a hash it counts the claims made before its own
subscription time and continues from there. That time is Redis TIME read *before* the
SUBSCRIBE is sent, so every claim of a message this bridge hears is later than it and is
never counted as history (counting one of them would give an occurrence nobody else uses:
a second decision of one message). The error left is the other way and harmless: a
message published before the SUBSCRIBE but claimed after that TIME is not counted, so on
the next identical bytes this bridge counts one low and loses the claim to the bridge that
heard them all, which decides it; a single bridge never meets this case.

A claim is a promise to hand the message over (decide it, or put it on the queue). A
bridge killed between its claim and the hand-over would break it, and the others let the
message go. So the winner marks each message it handed over (`mark_handed`), and every
loser looks again a little later (`take_over`): a message nobody marked is taken over and
handed over by the first loser to ask. Handing a message over twice is harmless (a slow
winner, two losers): its decision outbox keeps the first decision of a message id, and the
execution_id claim stops a second order.

The ranking ZERO also keeps in key:opportunity_rank (the bytes it published, stored right
after the PUBLISH) is caught up by a bridge that (re)subscribes only when no bridge ever
claimed those bytes: the catch-up is itself the claim of their first occurrence, made in
the same hash only while it is empty. A ranking some bridge heard live is never decided a
second time; one that a bridge heard but has not claimed yet is claimed by the catch-up,
and that bridge loses the claim and lets it go (or takes it over, if the catch-up bridge
never hands it over). A hash that exists for other reasons (the same bytes heard live
earlier) also stops the catch-up: in doubt, no second decision.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from typing import cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from zero_tasks.adapters import scripts
from zero_tasks.core import keys

CLAIM_TTL_S = keys.CLAIM_TTL_SECONDS
MAX_TRACKED = 200_000


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


async def redis_time_ms(client: aioredis.Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


class MessageIdentity:
    """Occurrence counting and the cross-bridge claim; reset on every (re)subscription."""

    def __init__(self) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._subscribed_ms = 0
        self._script: AsyncScript | None = None

    async def subscribing(self, client: aioredis.Redis) -> None:
        """Called right before SUBSCRIBE is sent: claims older than now are history."""
        self._counts.clear()
        self._subscribed_ms = await redis_time_ms(client)

    async def claim(self, client: aioredis.Redis, batch: list[bytes]) -> list[tuple[str, bool]]:
        """(message_id, True when this bridge won it) for each message, in order.

        One script call per distinct payload (its history count, on first sight, and its
        claims in one atomic step); a batch with one payload, the usual case, is one round
        trip, a larger batch one pipeline. The occurrence count runs in the order heard, so
        the same bytes twice in one batch are two messages.
        """
        digests = [content_hash(data) for data in batch]
        repeats = Counter(digests)  # insertion order: first appearance in the batch
        if self._script is None:
            self._script = scripts.register(client, "message_claim")  # lua/message_claim.lua
        script = self._script
        calls = [(keys.BRIDGE_MSG_PREFIX + digest, [self._counts.get(digest, -1), self._subscribed_ms,
                                                    CLAIM_TTL_S, times])
                 for digest, times in repeats.items()]
        if len(calls) == 1:
            replies = [await script(keys=[calls[0][0]], args=calls[0][1], client=client)]
        else:
            pipe = client.pipeline(transaction=False)
            for key, args in calls:
                await script(keys=[key], args=args, client=pipe)
            replies = await pipe.execute()
        issued = {}
        for digest, (before, *wins) in zip(repeats, replies, strict=True):
            issued[digest] = iter([(f"{digest}:{before + i}", bool(w)) for i, w in enumerate(wins, start=1)])
            self._seen(digest, before + len(wins))
        return [next(issued[digest]) for digest in digests]

    def _seen(self, digest: str, occurrences: int) -> None:
        self._counts[digest] = occurrences
        self._counts.move_to_end(digest)  # most recently seen last
        while len(self._counts) > MAX_TRACKED:
            self._counts.popitem(last=False)

    def caught_up(self, data: bytes) -> None:
        """This bridge's catch-up claimed the first occurrence of these bytes: the same
        bytes heard next are the second."""
        digest = content_hash(data)
        self._seen(digest, max(self._counts.get(digest, 0), 1))


def _handed_key(message_id: str) -> tuple[str, str]:
    digest, occurrence = message_id.rsplit(":", 1)
    return keys.BRIDGE_MSG_PREFIX + digest + ":handed", occurrence


async def _add_handed(client: aioredis.Redis, message_ids: list[str]) -> list[bool]:
    """SADD each message to its payload's set of handed-over occurrences: True where it was not yet there."""
    pipe = client.pipeline(transaction=False)
    for message_id in message_ids:
        key, occurrence = _handed_key(message_id)
        pipe.sadd(key, occurrence)
        pipe.expire(key, CLAIM_TTL_S)
    replies = await pipe.execute()
    return [bool(added) for added in replies[::2]]


async def mark_handed(client: aioredis.Redis, message_ids: list[str]) -> None:
    """The winner's side: these messages are decided or on the queue."""
    if message_ids:
        await _add_handed(client, message_ids)


async def take_over(client: aioredis.Redis, message_ids: list[str]) -> list[bool]:
    """A loser's side, once the winner has had time: True for each message nobody handed
    over, which this bridge now owns (the first to ask wins)."""
    return await _add_handed(client, message_ids) if message_ids else []


async def claim_catch_up(client: aioredis.Redis) -> tuple[bytes, str] | None:
    """The ranking stored in key:opportunity_rank, when no bridge heard it: once across
    bridges and restarts. Once handed over, mark it (`mark_handed` with its id), so that a
    bridge that heard it but lost the claim to this catch-up lets it go."""
    # cast: redis-py types every reply bytes | str; the bridge's client answers bytes (decode_responses=False)
    data = cast(bytes | None, await client.get(keys.OPPORTUNITY_RANK_KEY))
    if data is None:
        return None
    digest = content_hash(data)
    catch_up = scripts.register(client, "message_catch_up")  # lua/message_catch_up.lua
    if not await catch_up(keys=[keys.BRIDGE_MSG_PREFIX + digest], args=[CLAIM_TTL_S]):
        return None
    # The id of occurrence 1, the one a live bridge would have decided it under: a bridge
    # that heard it and takes it over anyway gives the same message id, which the decision
    # outbox decides once.
    return data, f"{digest}:1"
