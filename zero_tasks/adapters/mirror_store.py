"""The account mirror's Redis edge: the leader lease, fenced writes, and the reads.

Several consumers may run; the one holding `key:execution_mirror_lease` leads. Taking the
lease gives a fencing token (a counter that only grows), and every write of the mirror
goes through one Lua script (lua/mirror_write.lua) that checks that token against the
lease in the same step: a leader that lost its lease (paused, partitioned, SIGKILLed and
its last write still in flight) has its late writes refused, whole.

The worker reads a ticker's book and the sync record with its veto snapshot, in one MGET
(redis_state.read_snapshot_with_mirror); the counts of row 9's answers are kept here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from zero_tasks.adapters import scripts
from zero_tasks.core import keys
from zero_tasks.core.mirror import ENTRY_PREFIX, Book, OrderState, SyncRecord, seal_record


@dataclass
class Writes:
    """Writes to make in one fenced step: (key, op, value, ttl_ms)."""

    ops: list[tuple[str, str, str, int]] = field(default_factory=list)

    def book(self, book: Book) -> Writes:
        if book.position is None and not book.orders:
            self.ops.append((keys.mirror_book_key(book.ticker), "del", "", 0))
        else:
            self.ops.append((keys.mirror_book_key(book.ticker), "set", book.to_json(), 0))
            self.ops.append((keys.MIRROR_TICKERS_KEY, "sadd", book.ticker, 0))
        return self

    def forget_book(self, ticker: str) -> Writes:
        self.ops.append((keys.mirror_book_key(ticker), "del", "", 0))
        return self

    def order(self, state: OrderState, trading_day: str | None) -> Writes:
        """The order's own state; an entry order (zx-) also joins its trading day's set."""
        self.ops.append((keys.mirror_order_key(state.client_order_id), "set", state.to_json(),
                         keys.MIRROR_ORDER_TTL_S * 1000))
        if trading_day and state.client_order_id.startswith(ENTRY_PREFIX):
            ttl_ms = keys.DAILY_TTL_SECONDS * 1000
            self.ops.append((keys.mirror_entries_key(trading_day), "sadd", state.client_order_id, ttl_ms))
            # the set's size as a string, so a reader can take it in an MGET with its snapshot
            self.ops.append((keys.mirror_entry_count_key(trading_day), "incr_if_added", "", ttl_ms))
        return self

    def sync(self, record: SyncRecord, ttl_ms: int, seal_key: str) -> Writes:
        """The sync record, sealed (core/mirror.seal_record): row 9 trusts no other."""
        self.ops.append((keys.MIRROR_SYNC_KEY, "set", seal_record(record, seal_key), ttl_ms))
        return self

    def count(self, name: str, by: int = 1) -> Writes:
        self.ops.append((keys.MIRROR_STATS_KEY, "hincrby", name, by))
        return self


class MirrorStore:
    """The consumer's side (asyncio): lease, fenced writes, its own reads."""

    def __init__(self, r: aioredis.Redis, holder: str, lease_ms: int) -> None:
        self.r = r
        self.holder = holder
        self.lease_ms = lease_ms
        self._lease = scripts.register(r, "mirror_lease")
        self._write = scripts.register(r, "mirror_write")

    async def lead(self) -> int | None:
        """The fencing token while this consumer leads (the lease taken or kept), else None."""
        ok, value = await self._lease(keys=[keys.MIRROR_LEASE_KEY, keys.MIRROR_TOKEN_KEY],
                                      args=[self.holder, self.lease_ms])
        return int(value) if int(ok) == 1 else None

    async def write(self, token: int, writes: Writes) -> bool:
        """All of `writes`, or none when `token` no longer holds the lease (False)."""
        if not writes.ops:
            return True
        args: list[Any] = [token]
        for _, op, value, ttl in writes.ops:
            args += [op, value, ttl]
        done = await self._write(keys=[keys.MIRROR_LEASE_KEY, *(k for k, _, _, _ in writes.ops)], args=args)
        return int(done) == 1

    async def next_epoch(self) -> int:
        return int(await self.r.incr(keys.MIRROR_EPOCH_KEY))

    async def tickers(self) -> set[str]:
        return {t.decode() if isinstance(t, bytes) else t for t in await self.r.smembers(keys.MIRROR_TICKERS_KEY)}

    async def count_refused(self) -> None:
        """A write refused for a lost lease (unfenced: it counts the refusal itself)."""
        await self.r.hincrby(keys.MIRROR_STATS_KEY, "refused", 1)


def count_row9(r: redis.Redis, source: str) -> None:
    """Where row 9 took its answer: `mirror` or `rest` (after the order is sent)."""
    r.hincrby(keys.MIRROR_STATS_KEY, f"row9_{source}", 1)


def entries_of_day(r: redis.Redis, trading_day: str) -> set[str]:
    """The gateway's entry orders (zx- client_order_ids) the mirror saw on `trading_day`.
    Their number is also kept as a string, `keys.mirror_entry_count_key(trading_day)`, for
    a read that takes it in the same MGET as the snapshot (the daily cap at the broker)."""
    return {m.decode() if isinstance(m, bytes) else m for m in r.smembers(keys.mirror_entries_key(trading_day))}


def read_status(r: redis.Redis) -> dict[str, Any]:
    """The mirror for /health and zero-ops: lease, sync record, counters (one round trip)."""
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.MIRROR_LEASE_KEY)
    pipe.get(keys.MIRROR_SYNC_KEY)
    pipe.hgetall(keys.MIRROR_STATS_KEY)
    lease, sync, stats = pipe.execute()
    return {"lease": _text_dict(lease), "sync": _text(sync), "stats": _text_dict(stats)}


async def read_status_async(r: aioredis.Redis) -> dict[str, Any]:
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.MIRROR_LEASE_KEY)
    pipe.get(keys.MIRROR_SYNC_KEY)
    pipe.hgetall(keys.MIRROR_STATS_KEY)
    lease, sync, stats = await pipe.execute()
    return {"lease": _text_dict(lease), "sync": _text(sync), "stats": _text_dict(stats)}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _text_dict(value: dict[Any, Any] | None) -> dict[str, str]:
    return {str(_text(k)): str(_text(v)) for k, v in (value or {}).items()}
