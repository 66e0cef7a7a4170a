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
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import redis.asyncio as aioredis

from zero_tasks import keys

CLAIM_TTL_S = keys.CLAIM_TTL_SECONDS
MAX_TRACKED = 200_000

_CLAIM = """
local t = redis.call('TIME')
local ms = t[1] * 1000 + math.floor(t[2] / 1000)
local won = redis.call('HSETNX', KEYS[1], ARGV[1], ms)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return won
"""


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

    async def subscribing(self, client: aioredis.Redis) -> None:
        """Called right before SUBSCRIBE is sent: claims older than now are history."""
        self._counts.clear()
        self._subscribed_ms = await redis_time_ms(client)

    async def claim(self, client: aioredis.Redis, batch: list[bytes]) -> list[tuple[str, bool]]:
        """(message_id, True when this bridge won it) for each message, in order.

        One pipelined round trip for the claims of the whole batch (two when a payload is
        seen for the first time); the occurrence count runs in the order heard, so the
        same bytes twice in one batch are two messages.
        """
        digests = [content_hash(data) for data in batch]
        unseen = [d for d in dict.fromkeys(digests) if d not in self._counts]
        if unseen:
            pipe = client.pipeline(transaction=False)
            for digest in unseen:
                pipe.hvals(keys.BRIDGE_MSG_PREFIX + digest)
            for digest, claimed in zip(unseen, await pipe.execute()):
                self._counts[digest] = sum(1 for ms in claimed if int(ms) < self._subscribed_ms)
        claim = client.register_script(_CLAIM)
        pipe = client.pipeline(transaction=False)
        ids = []
        for digest in digests:
            occurrence = self._counts.pop(digest) + 1
            self._counts[digest] = occurrence  # most recently seen last
            ids.append(f"{digest}:{occurrence}")
            await claim(keys=[keys.BRIDGE_MSG_PREFIX + digest], args=[occurrence, CLAIM_TTL_S], client=pipe)
        won = await pipe.execute()
        while len(self._counts) > MAX_TRACKED:
            self._counts.popitem(last=False)
        return [(message_id, bool(w)) for message_id, w in zip(ids, won)]


async def claim_catch_up(client: aioredis.Redis) -> tuple[bytes, str] | None:
    """The ranking stored in key:opportunity_rank, once across bridges and restarts."""
    data = await client.get(keys.OPPORTUNITY_RANK_KEY)
    if data is None:
        return None
    digest = content_hash(data)
    if not await client.set(keys.CATCHUP_PREFIX + digest, "1", nx=True, ex=CLAIM_TTL_S):
        return None
    return data, f"catchup:{digest}"
