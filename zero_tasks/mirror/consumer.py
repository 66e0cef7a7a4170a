"""One consumer of Alpaca's trade_updates stream, keeping the account mirror in Redis.

Several may run (one per host, say); the one holding the lease leads (mirror_store.py),
the others wait to take over. The leader:

1. takes the lease (a fencing token) and says "out of sync";
2. opens the stream (alpaca-py's TradingStream, paper host only) and subscribes;
3. once the server says it listens, takes a REST snapshot (positions, open orders, the
   orders of the recent past), writes every ticker's book from it, and only then says
   "in sync" (a new epoch); updates that arrived meanwhile are applied after it, an update
   older than the order's known state changing nothing (core/mirror.apply);
4. applies every trade update: the ticker's book, the order's state, the day's entry set,
   the SUBMITTED row's order_status (within a second), and nudges the lifecycle of a
   gateway order (zx-, zp-, zs-);
5. every second renews the lease and, while the stream answers a ping, confirms the sync
   record (it expires after MIRROR_MAX_AGE_S unconfirmed: row 9 then asks the broker);
6. once per trading day (unless a leader before it did: a mark in Redis; and again a
   minute after a failure) keeps the broker's word on every active US equity it lists (one
   GET /v2/assets, on a connection of its own) as the day's asset verdicts, the ones a
   worker keeps after asking about one symbol: a ticker's first order of the day then needs
   no broker call before its submit. A symbol the list leaves out is asked about by the
   worker, as before.

The sync record states what row 9 needs (the tickers with a position or open orders, the
day's count of the gateway's entry orders) and is sealed with TASK_SIGNING_KEY: a book
deleted or a record written by hand gives row 9 no answer from the mirror (core/mirror.py).

A drop, a failed write or a lost lease says "out of sync" at once (or lets the record
expire when Redis cannot be reached) and starts again from 1 or 2. Every write is fenced:
a deposed leader's late write is refused whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
import redis.asyncio as aioredis
from alpaca.trading.client import TradingClient
from alpaca.trading.models import TradeUpdate
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from zero_tasks.adapters import lifecycle_store, redis_clock
from zero_tasks.adapters.alpaca_compat import ListeningStream, twin
from zero_tasks.adapters.audit import OrderFate, update_order_status_by_client_id
from zero_tasks.adapters.mirror_broker import (
    PAGE,
    SNAPSHOT_CALLS,
    AccountSnapshot,
    listed_equities,
    stream_url,
    take_snapshot,
    update_of,
)
from zero_tasks.adapters.mirror_store import MirrorStore, Writes
from zero_tasks.adapters.redis_state import assets_listed, keep_assets
from zero_tasks.adapters.risk import BrokerRateLimit, RateLimited, trading_day, trading_day_began
from zero_tasks.core.mirror import (
    IN_SYNC,
    OUT_OF_SYNC,
    Book,
    OrderState,
    SyncRecord,
    Update,
    apply,
    book_of,
    exposure_of,
    is_gateway_order,
)
from zero_tasks.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0  # lease renewal and sync confirmation
OUT_OF_SYNC_TTL_MS = 86_400_000
FIRST_LOOKBACK = timedelta(hours=24)  # the orders a first snapshot looks back on
LOOKBACK_MARGIN = timedelta(minutes=5)  # before the last event seen, at a resync
PENDING_STATUS_S = 30.0  # an order_status whose row is not written yet is tried again this long
ASSETS_RETRY_S = 60.0  # the broker's list of equities, not kept: asked again after this long


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def nudge_lifecycle(r: redis.Redis, client_order_id: str) -> None:
    """Make the lifecycle step of a gateway order due now: sooner than the lifecycle's own
    schedule would look (it never depends on this)."""
    lifecycle_store.nudge(r, client_order_id)


def _now() -> datetime:
    """The gateway's clock (the Redis host's, GATEWAY_CLOCK): the workers judge the sync
    record's freshness by the same one."""
    return redis_clock.utcnow()


@dataclass
class _PendingStatus:
    fate: OrderFate
    at: datetime
    first_tried: float


@dataclass
class MirrorConsumer:
    """The consumer's state: what it leads with, the books it keeps, the statuses it still owes."""

    settings: Settings
    r: aioredis.Redis
    sync_r: redis.Redis  # for the lifecycle nudge (a sync API)
    client: TradingClient
    engine: Engine
    holder: str = field(default_factory=holder_id)
    now: Callable[[], datetime] = _now
    token: int | None = None
    synced: bool = False
    epoch: int = 0
    books: dict[str, Book] = field(default_factory=dict)
    last_event_at: datetime | None = None
    pending: dict[str, _PendingStatus] = field(default_factory=dict)
    stream: ListeningStream | None = None
    assets_client: TradingClient | None = None
    # the gateway's entry orders (zx-) by trading day, and whether the last resync read all
    # of the day's orders (a full page may have left some out: the count is then unknown)
    entries: dict[str, set[str]] = field(default_factory=dict)
    entries_complete: bool = False
    # the trading day whose asset verdicts this leader kept, and its loop time of the last try
    assets_day: str | None = None
    assets_tried: float | None = None
    assets_task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.store = MirrorStore(self.r, self.holder, int(self.settings.mirror_lease_s * 1000))
        # Alpaca's limit is per account: the consumer's REST calls come out of the budget
        # every worker takes its calls from (BROKER_REQUESTS_PER_MIN), as an entry's do.
        self.budget = BrokerRateLimit(self.sync_r, self.settings.broker_requests_per_min,
                                      self.settings.exit_broker_reserve)
        self.max_age_ms = int(self.settings.mirror_max_age_s * 1000)
        self.seal_key = self.settings.task_signing_key.get_secret_value()

    # the sync record ------------------------------------------------------------------
    def _record(self, state: str) -> SyncRecord:
        now = self.now()
        day = trading_day(now)
        positions, orders = exposure_of(self.books)
        return SyncRecord(state, self.epoch, self.holder, self.token or 0, now.isoformat(),
                          self.last_event_at.isoformat() if self.last_event_at else None,
                          positions, orders, day, len(self.entries.get(day, ())) if self.entries_complete else None)

    def _sync(self, writes: Writes, state: str, ttl_ms: int) -> Writes:
        return writes.sync(self._record(state), ttl_ms, self.seal_key)

    def _count_entry(self, order: OrderState) -> None:
        day = self._day_of(order)
        if day and order.client_order_id.startswith("zx-"):
            self.entries.setdefault(day, set()).add(order.client_order_id)
            for old in sorted(self.entries)[:-3]:  # yesterday's and before are never asked for
                self.entries.pop(old, None)

    async def _write(self, writes: Writes) -> bool:
        """A fenced write; refused means this consumer no longer leads: it stops listening."""
        if self.token is None:
            return False
        if await self.store.write(self.token, writes):
            return True
        log.warning("mirror write refused: lease lost (token %s)", self.token)
        await self.store.count_refused()
        await self._lose_lead()
        return False

    async def out_of_sync(self, why: str) -> None:
        """Out of sync now, in this process and (when Redis answers) for every reader."""
        was = self.synced
        self.synced = False
        if was:
            log.warning("mirror out of sync: %s", why)
        try:
            await self._write(self._sync(Writes(), OUT_OF_SYNC, OUT_OF_SYNC_TTL_MS))
        except redis.RedisError as exc:
            log.warning("out of sync not written (%s); the sync record expires by itself", type(exc).__name__)

    # the stream's callbacks -------------------------------------------------------------
    async def on_listening(self) -> None:
        """The stream listens: snapshot, books, then in sync. A failure drops the stream
        (it reconnects and this runs again)."""
        try:
            await self.resync()
        except Exception as exc:  # noqa: BLE001 - any failure: out of sync, and a new connection
            log.warning("mirror resync failed (%s: %s); reconnecting", type(exc).__name__, str(exc)[:200])
            await self.out_of_sync("resync failed")
            if self.stream is not None:
                await self.stream.drop()

    async def on_drop(self) -> None:
        if self.synced or self.token is not None:
            await self.out_of_sync("stream dropped")

    async def on_update(self, trade: TradeUpdate) -> None:
        """One trade update: the mirror first, then the audit row and the lifecycle."""
        try:
            await self.apply_update(update_of(trade))
        except Exception as exc:  # noqa: BLE001 - an update not kept: the mirror is wrong until a resync
            log.warning("trade update not applied (%s); resyncing", type(exc).__name__)
            await self.out_of_sync("update not applied")
            if self.stream is not None:
                await self.stream.drop()

    # the work -----------------------------------------------------------------------------
    async def resync(self) -> None:
        await self.out_of_sync("resync")
        since = (self.last_event_at - LOOKBACK_MARGIN) if self.last_event_at else self.now() - FIRST_LOOKBACK
        since = min(since, trading_day_began(self.now()))  # the whole trading day: its entries are counted
        await self._spend("mirror-resync", SNAPSHOT_CALLS)
        snap: AccountSnapshot = await asyncio.to_thread(take_snapshot, self.client, since)
        for order in snap.recent_orders + snap.open_orders:
            self._count_entry(order)
        self.entries_complete = len(snap.recent_orders) < PAGE
        books = {t: book_of(t, p, snap.open_orders) for t, p in snap.positions.items()}
        for order in snap.open_orders:
            books.setdefault(order.symbol, book_of(order.symbol, None, snap.open_orders))
        writes = Writes()
        for gone in await self.store.tickers() - set(books):
            writes.forget_book(gone)
        for book in books.values():
            writes.book(book)
        for order in snap.recent_orders + snap.open_orders:
            writes.order(order, self._day_of(order))
        self.epoch = await self.store.next_epoch()
        self.books = books
        self._sync(writes.count("resyncs"), IN_SYNC, self.max_age_ms)
        if not await self._write(writes):
            raise RuntimeError("lease lost during the resync")
        self.synced = True
        log.info("mirror in sync (epoch %d): %d tickers, %d open orders", self.epoch, len(books),
                 len(snap.open_orders))
        self.keep_assets_if_due()
        for order in snap.recent_orders:  # what became of the gateway's orders while nobody listened
            if order.client_order_id.startswith("zx-"):
                await self._order_status(order)

    async def _spend(self, label: str, calls: int) -> None:
        """Take the broker calls about to be made from this minute's shared budget, waiting
        while it is spent (the mirror is out of sync meanwhile: row 9 asks the broker, from
        the same budget). Redis errors are raised: the caller's failure path handles them."""
        while True:
            try:
                await asyncio.to_thread(self.budget.acquire, label, calls)
                return
            except RateLimited as exc:
                log.info("mirror: %s waits %.1f s for this minute's broker budget", label, exc.wait_s)
                await asyncio.sleep(exc.wait_s)

    # the asset verdicts ------------------------------------------------------------------
    def keep_assets_if_due(self) -> None:
        """Start keeping today's asset verdicts, unless kept, under way, or tried within
        ASSETS_RETRY_S. Never on the stream's path: a task of its own, off the event loop."""
        if self.assets_day == trading_day(self.now()) or (self.assets_task and not self.assets_task.done()):
            return
        loop_now = asyncio.get_running_loop().time()
        if self.assets_tried is not None and loop_now - self.assets_tried < ASSETS_RETRY_S:
            return
        self.assets_tried = loop_now
        self.assets_task = asyncio.create_task(self.keep_assets())

    async def keep_assets(self) -> None:
        """The broker's word on every US equity it lists, kept as the trading day's verdicts.
        A failure keeps none (the workers ask about each symbol, as before)."""
        now = self.now()
        day = trading_day(now)
        try:
            if await asyncio.to_thread(assets_listed, self.sync_r, day):
                self.assets_day = day  # a leader before this one kept them
                return
            if self.assets_client is None:
                self.assets_client = twin(self.client)  # its own connection: the snapshot may run meanwhile
            await self._spend("mirror-assets", 1)
            verdicts = await asyncio.to_thread(listed_equities, self.assets_client)
            await asyncio.to_thread(keep_assets, self.sync_r, day, verdicts, now)
        except Exception as exc:  # noqa: BLE001 - broker or Redis: try again later, never stop leading
            log.warning("asset verdicts of %s not kept (%s: %s)", day, type(exc).__name__, str(exc)[:200])
            return
        self.assets_day = day
        log.info("asset verdicts of %s kept: %d listed US equities", day, len(verdicts))

    def _day_of(self, order: OrderState) -> str | None:
        when = order.updated_at
        try:
            return trading_day(datetime.fromisoformat(when)) if when else trading_day(self.now())
        except ValueError:
            return trading_day(self.now())

    async def apply_update(self, update: Update) -> None:
        ticker = update.order.symbol
        book = apply(self.books.get(ticker, Book(ticker)), update)
        self.books[ticker] = book
        self.last_event_at = self.now()
        self._count_entry(update.order)
        writes = Writes().book(book).order(update.order, self._day_of(update.order)).count("events")
        if self.synced:
            self._sync(writes, IN_SYNC, self.max_age_ms)
        if not await self._write(writes):
            raise RuntimeError("lease lost")
        cid = update.order.client_order_id
        if cid.startswith("zx-"):
            await self._order_status(update.order)
        if is_gateway_order(cid):
            await asyncio.to_thread(nudge_lifecycle, self.sync_r, cid)

    async def _order_status(self, order: OrderState) -> None:
        """The SUBMITTED row's order_status; a row not written yet is tried again (heartbeat)."""
        at = self.now()
        fate = OrderFate(order.status, order.filled_avg_price, order.filled_at)
        try:
            written = await asyncio.to_thread(update_order_status_by_client_id, self.engine, order.client_order_id,
                                              fate, at)
        except SQLAlchemyError as exc:
            log.info("order_status of %s not written yet (%s)", order.client_order_id, type(exc).__name__)
            written = False
        if written:
            self.pending.pop(order.client_order_id, None)
        else:
            first = self.pending.get(order.client_order_id)
            self.pending[order.client_order_id] = _PendingStatus(fate, at, first.first_tried if first
                                                                 else asyncio.get_running_loop().time())

    async def _retry_pending(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        for cid, pending in list(self.pending.items()):
            if loop_now - pending.first_tried > PENDING_STATUS_S:
                log.info("order_status of %s left to the reconcile (no SUBMITTED row)", cid)
                self.pending.pop(cid, None)
                continue
            try:
                if await asyncio.to_thread(update_order_status_by_client_id, self.engine, cid, pending.fate,
                                           pending.at):
                    self.pending.pop(cid, None)
            except SQLAlchemyError:
                continue

    async def _lose_lead(self) -> None:
        self.token = None
        self.synced = False
        if self.stream is not None:
            await self.stream.stop_ws()

    # the loops ----------------------------------------------------------------------------
    async def heartbeat(self) -> None:
        """Renew the lease; confirm the sync record while the stream answers a ping."""
        token = await self.store.lead()
        if token != self.token:
            log.warning("mirror lease lost (token %s, now %s)", self.token, token)
            await self._lose_lead()
            return
        if self.synced and self.stream is not None:
            if await self.stream.alive(min(1.0, self.settings.mirror_max_age_s / 2)):
                await self._write(self._sync(Writes(), IN_SYNC, self.max_age_ms))
            else:
                await self.out_of_sync("stream did not answer a ping")
                await self.stream.drop()
        await self._retry_pending()
        if self.synced:
            self.keep_assets_if_due()

    def _new_stream(self) -> ListeningStream:
        s = self.settings
        stream = ListeningStream(s.alpaca_api_key.get_secret_value(), s.alpaca_secret_key.get_secret_value(),
                                 stream_url(s.alpaca_base_url, s.alpaca_stream_url), self.on_listening, self.on_drop)
        stream.subscribe_trade_updates(self.on_update)
        return stream

    async def lead_once(self) -> None:
        """Lead while the lease holds: the stream runs, the heartbeat keeps it honest."""
        self.stream = self._new_stream()
        self.synced = False
        await self.out_of_sync("leading")
        listening = asyncio.create_task(self.stream.listen())
        try:
            while self.token is not None and not listening.done():
                await asyncio.sleep(HEARTBEAT_S)
                try:
                    await self.heartbeat()
                except redis.RedisError as exc:
                    log.warning("mirror heartbeat failed (%s)", type(exc).__name__)
                    self.synced = False
                    await self.stream.drop()  # resync once Redis answers
        finally:
            if self.assets_task is not None:
                self.assets_task.cancel()
            await self.stream.stop_ws()
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            self.synced = False

    async def run(self, stop: asyncio.Event) -> None:
        """Wait for the lease, lead, and again, until `stop`."""
        while not stop.is_set():
            try:
                self.token = await self.store.lead()
            except redis.RedisError as exc:
                log.warning("mirror lease not reachable (%s)", type(exc).__name__)
                self.token = None
            if self.token is None:
                await _wait(stop, HEARTBEAT_S)
                continue
            log.info("mirror consumer %s leads (token %d)", self.holder, self.token)
            leading = asyncio.create_task(self.lead_once())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({leading, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                await self.out_of_sync("stopping")
                leading.cancel()
            stopped.cancel()
            await asyncio.gather(leading, stopped, return_exceptions=True)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def build(settings: Settings, **over: Any) -> MirrorConsumer:
    from zero_tasks.adapters.alpaca_adapter import make_trading_client
    from zero_tasks.adapters.audit import make_engine
    from zero_tasks.adapters.redis_state import connect, connect_async

    return MirrorConsumer(settings, connect_async(settings.redis_url), connect(settings.redis_url),
                          make_trading_client(settings), make_engine(settings.sqlalchemy_url), **over)
