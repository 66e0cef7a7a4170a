"""The account mirror on a real Redis and the simulator: the leader lease and its fencing
token, the consumer's resync and trade updates (fed as alpaca-py's TradeUpdate, built from
the simulator's own order JSON), and row 9 read from the mirror in the snapshot's round trip,
only from a sync record sealed with TASK_SIGNING_KEY: Redis written by hand sends row 9 to
the broker (or, a book deleted by hand, to what the sealed record states)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
import redis
from alpaca.trading.models import TradeUpdate
from sqlalchemy import Engine, select

from alpaca_paper_sim import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, SimServer, open_market
from tests.support.monitor import commands_during
from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import flushed, redis_db
from zero_tasks.adapters import mirror_store, outbox
from zero_tasks.adapters.alpaca_adapter import AlpacaBroker, RateLimitedBroker, make_trading_client
from zero_tasks.adapters.audit import ensure_schema, execution_log, insert_rows, make_engine
from zero_tasks.adapters.mirror_broker import SNAPSHOT_CALLS
from zero_tasks.adapters.mirror_store import MirrorStore, Writes
from zero_tasks.adapters.redis_state import (
    ASSET_VERDICTS_PREFIX,
    ASSET_VERDICTS_TTL_S,
    connect,
    connect_async,
    kept_asset,
    read_snapshot_with_mirror,
)
from zero_tasks.adapters.risk import BrokerRateLimit, trading_day
from zero_tasks.core import keys
from zero_tasks.core.checks.asset import AssetVerdict
from zero_tasks.core.checks.exposure import Exposure, check_exposure
from zero_tasks.core.mirror import (
    IN_SYNC,
    OUT_OF_SYNC,
    Book,
    Position,
    SyncRecord,
    book_from_json,
    exposure_of,
    seal_record,
    sync_from_json,
)
from zero_tasks.mirror.consumer import ASSETS_RETRY_S, MirrorConsumer
from zero_tasks.settings import Settings
from zero_tasks.worker.flow import row9_facts

DB = redis_db(__name__)
T = TypeVar("T")
KEY = "mirror-test-signing-key-0123456789abcdef"  # TASK_SIGNING_KEY
SPY_TRADABLE = AssetVerdict("SPY", True, "us_equity, tradable, active")  # a verdict kept for the day


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    yield from flushed(private_redis, DB)


@pytest.fixture
def broker_sim() -> Iterator[SimServer]:
    """Orders stay open until a test fills them (the simulator's admin calls)."""
    with SimServer(state=open_market(fill_delay_s=3600)) as server:
        yield server


def settings_for(sim: SimServer, private_redis: PrivateRedis, db_path: Path, **over: Any) -> Settings:
    return Settings(alpaca_paper="true", alpaca_api_key=DEFAULT_KEY_ID, alpaca_secret_key=DEFAULT_SECRET_KEY,
                    alpaca_base_url=sim.url, redis_host="127.0.0.1", redis_port=private_redis.port, redis_db=DB,
                    database_url=f"sqlite:///{db_path}", **{"task_signing_key": KEY, **over})


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    ensure_schema(e)
    return e


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()
    return asyncio.run(main())


def consumer(sim: SimServer, private_redis: PrivateRedis, engine: Engine, tmp_path: Path,
             holder: str = "host-a:1") -> MirrorConsumer:
    settings = settings_for(sim, private_redis, tmp_path / "audit.db")
    return MirrorConsumer(settings, connect_async(settings.redis_url), connect(settings.redis_url),
                          make_trading_client(settings), engine, holder=holder)


def place(sim: SimServer, symbol: str = "SPY", cid: str = "zx-SPY:H30:1", side: str = "buy",
          qty: str = "1") -> dict[str, Any]:
    return sim.state.submit_order({"symbol": symbol, "qty": qty, "side": side, "type": "market",
                                   "time_in_force": "day", "client_order_id": cid})


def trade_update(order: dict[str, Any], event: str, **extra: Any) -> TradeUpdate:
    """A trade_updates event as alpaca-py's TradingStream hands it to the handler."""
    return TradeUpdate(event=event, order=order, timestamp=datetime.now(UTC), **extra)


def submitted_row(engine: Engine, cid: str) -> None:
    now = datetime.now(UTC)
    insert_rows(engine, [{"event_key": f"m-{cid}", "time": now, "decided_at": now, "execution_id": cid[3:],
                          "ticker": "SPY", "horizon": "H30", "status": "SUBMITTED", "reason": "submitted",
                          "why": [], "client_order_id": cid}])


def order_status(engine: Engine, cid: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(execution_log.c.order_status)
                            .where(execution_log.c.client_order_id == cid)).scalar_one()


def fill_of(engine: Engine, cid: str) -> tuple[float | None, datetime | None]:
    with engine.connect() as conn:
        price, at = conn.execute(select(execution_log.c.filled_avg_price, execution_log.c.filled_at)
                                 .where(execution_log.c.client_order_id == cid)).one()
    return price, at


def sync_state(r: redis.Redis) -> SyncRecord | str:
    return sync_from_json(r.get(keys.MIRROR_SYNC_KEY), KEY)


# the lease and its fencing token --------------------------------------------------------
def test_one_consumer_leads_and_another_waits_while_its_lease_holds(r: redis.Redis,
                                                                   private_redis: PrivateRedis) -> None:
    async def body() -> tuple[int | None, int | None, int | None]:
        a = MirrorStore(connect_async(f"redis://127.0.0.1:{private_redis.port}/{DB}"), "a", 5000)
        b = MirrorStore(connect_async(f"redis://127.0.0.1:{private_redis.port}/{DB}"), "b", 5000)
        return await a.lead(), await b.lead(), await a.lead()
    first, other, renewed = run(body)
    assert first is not None and other is None and renewed == first


def test_a_lease_that_vanished_gives_its_old_holder_a_new_token(r: redis.Redis, private_redis: PrivateRedis) -> None:
    """Redis restarted empty (or the keys deleted by hand): the token counter is gone with the
    lease, and still the next token differs from every earlier one, so the holder sees it was
    not leading all along."""
    async def body() -> tuple[int | None, int | None]:
        a = MirrorStore(connect_async(f"redis://127.0.0.1:{private_redis.port}/{DB}"), "a", 5000)
        before = await a.lead()
        r.delete(keys.MIRROR_LEASE_KEY, keys.MIRROR_TOKEN_KEY)
        return before, await a.lead()
    before, after = run(body)
    assert before is not None and after is not None and after > before


def test_a_leader_whose_lease_vanished_stops_leading_and_writes_nothing_more(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    """Its books may be stale (whatever happened while the lease was gone): it leads again
    only through a new resync."""
    async def body() -> tuple[int | None, bool]:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        c.token = await c.store.lead()
        await c.on_listening()
        r.delete(*r.keys("key:execution_mirror*"))
        await c.heartbeat()
        return c.token, c.synced
    token, synced = run(body)
    assert token is None and synced is False
    assert r.get(keys.MIRROR_SYNC_KEY) is None


def test_a_deposed_leaders_late_write_is_refused_whole(r: redis.Redis, private_redis: PrivateRedis) -> None:
    async def body() -> tuple[int | None, int | None, bool, bool]:
        url = f"redis://127.0.0.1:{private_redis.port}/{DB}"
        a, b = MirrorStore(connect_async(url), "a", 200), MirrorStore(connect_async(url), "b", 5000)
        old = await a.lead()
        await asyncio.sleep(0.3)  # a is paused past its lease (a GC pause, a SIGSTOP, a partition)
        new = await b.lead()
        assert old is not None and new is not None
        late = await a.write(old, Writes().book(Book("SPY", Position("1", "1", "100"))).count("events"))
        fresh = await b.write(new, Writes().book(Book("QQQ", Position("2", "2", "50"))))
        return old, new, late, fresh
    old, new, late, fresh = run(body)
    assert new is not None and old is not None and new > old
    assert late is False and fresh is True
    assert r.get(keys.mirror_book_key("SPY")) is None and r.hget(keys.MIRROR_STATS_KEY, "events") is None
    assert r.get(keys.mirror_book_key("QQQ")) is not None


# the consumer: resync and updates -----------------------------------------------------------
def test_a_resync_writes_the_brokers_positions_and_open_orders_then_says_in_sync(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    broker_sim.state.set_position("AAPL", "2", "180")
    place(broker_sim, "MSFT", "manual-from-the-dashboard")
    r.set(keys.mirror_book_key("GONE"), Book("GONE", Position("1", "1", "1")).to_json())
    r.sadd(keys.MIRROR_TICKERS_KEY, "GONE")

    async def body() -> None:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        c.token = await c.store.lead()
        await c.on_listening()
    run(body)
    aapl = book_from_json(r.get(keys.mirror_book_key("AAPL")), "AAPL")
    msft = book_from_json(r.get(keys.mirror_book_key("MSFT")), "MSFT")
    assert isinstance(aapl, Book) and aapl.position == Position("2", "2", "180")
    assert isinstance(msft, Book) and [o.client_order_id for o in msft.orders.values()] == \
        ["manual-from-the-dashboard"]
    assert r.get(keys.mirror_book_key("GONE")) is None
    state = sync_state(r)
    assert isinstance(state, SyncRecord) and state.state == IN_SYNC and state.epoch == 1
    assert (state.positions, state.open_orders) == ({"AAPL": "2"}, {"MSFT": 1})  # stated, sealed
    assert r.hget(keys.MIRROR_STATS_KEY, "resyncs") == "1"
    assert 0 < r.pttl(keys.MIRROR_SYNC_KEY) <= 3000  # unconfirmed, it expires: row 9 then asks the broker


def test_a_fill_on_the_stream_makes_the_position_and_writes_the_submitted_rows_order_status(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    cid = "zx-SPY:H30:2026-11-24T15:00:00"
    submitted_row(engine, cid)

    async def body() -> None:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        c.token = await c.store.lead()
        await c.on_listening()
        new = place(broker_sim, cid=cid)
        await c.on_update(trade_update(new, "new"))
        assert order_status(engine, cid) == "new"
        filled = broker_sim.state.fill_order(new["id"], price="101.25")
        await c.on_update(trade_update(filled, "fill", position_qty=1, price=101.25, qty=1))
    run(body)
    book = book_from_json(r.get(keys.mirror_book_key("SPY")), "SPY")
    assert isinstance(book, Book) and book.orders == {} and book.position == Position("1", "1", "101.25")
    assert order_status(engine, cid) == "filled"
    price, filled_at = fill_of(engine, cid)  # the fill on the row, from the stream: no lookup at the broker
    assert price == 101.25 and filled_at is not None
    assert mirror_store.entries_of_day(r, trading_day(datetime.now(UTC))) == {cid}
    assert r.get(keys.mirror_entry_count_key(trading_day(datetime.now(UTC)))) == "1"  # new and fill: one entry
    state = sync_state(r)
    assert isinstance(state, SyncRecord) and state.entries_today == 1 and state.positions == {"SPY": "1"}


def test_a_fill_while_nobody_listened_is_found_by_the_resync(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    cid = "zx-SPY:H30:2026-11-24T15:01:00"
    submitted_row(engine, cid)

    async def body() -> None:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        c.token = await c.store.lead()
        await c.on_listening()
        new = place(broker_sim, cid=cid)
        await c.on_update(trade_update(new, "new"))
        await c.on_drop()  # the stream drops ...
        assert (s := sync_state(r)) and isinstance(s, SyncRecord) and s.state == OUT_OF_SYNC
        broker_sim.state.fill_order(new["id"], price="99")  # ... the order fills meanwhile ...
        await c.on_listening()  # ... and the reconnect's resync finds it
    run(body)
    book = book_from_json(r.get(keys.mirror_book_key("SPY")), "SPY")
    assert isinstance(book, Book) and book.orders == {} and book.position is not None
    assert book.position.qty == "1"
    assert order_status(engine, cid) == "filled"
    state = sync_state(r)
    assert isinstance(state, SyncRecord) and state.state == IN_SYNC and state.epoch == 2
    assert r.get(keys.mirror_entry_count_key(trading_day(datetime.now(UTC)))) == "1"  # seen three times, counted once


def test_a_trade_update_after_the_lease_was_lost_writes_nothing(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    async def body() -> MirrorConsumer:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        c.token = await c.store.lead()
        await c.on_listening()
        r.delete(keys.MIRROR_LEASE_KEY)  # the lease ran out while it was paused ...
        other = MirrorStore(connect_async(c.settings.redis_url), "host-b:2", 5000)
        new = await other.lead()
        assert new is not None and c.token is not None and new > c.token  # ... and another consumer leads now
        await c.on_update(trade_update(place(broker_sim), "new"))
        return c
    c = run(body)
    assert r.get(keys.mirror_book_key("SPY")) is None
    assert r.hget(keys.MIRROR_STATS_KEY, "refused") == "1"
    assert c.token is None and c.synced is False


# row 9 from the mirror, in the snapshot's round trip ------------------------------------------
def test_the_snapshot_and_the_mirror_are_read_in_one_mget(r: redis.Redis, private_redis: PrivateRedis) -> None:
    r.mset({keys.EXECUTION_ENABLED_KEY: "true", keys.MIRROR_SYNC_KEY: "s",
            keys.mirror_book_key("SPY"): "b"})
    found: list[Any] = []
    sent = commands_during(private_redis, DB, lambda: found.extend(read_snapshot_with_mirror(r, "SPY")))
    snap, sync, book = found
    assert snap.execution_enabled == "true" and (sync, book) == ("s", "b")
    assert len(sent) == 1 and sent[0].startswith("MGET"), sent


def row9_runtime(r: redis.Redis, sim: SimServer, private_redis: PrivateRedis,
                 tmp_path: Path) -> tuple[Any, RateLimitedBroker]:
    settings = settings_for(sim, private_redis, tmp_path / "audit.db")
    broker = RateLimitedBroker(AlpacaBroker(make_trading_client(settings)), BrokerRateLimit(r, 200))
    return SimpleNamespace(redis=r, settings=settings), broker


def broker_reads(sim: SimServer) -> int:
    reads = ("GET /v2/positions", "GET /v2/orders")
    return sum(n for k, n in sim.state.stats()["requests"].items() if k.startswith(reads))


def record_now(book: Book | None = None, state: str = IN_SYNC, confirmed: datetime | None = None) -> SyncRecord:
    """A sync record as the consumer writes it, stating `book`'s exposure."""
    positions, orders = exposure_of({book.ticker: book} if book else {})
    now = datetime.now(UTC)
    return SyncRecord(state, 1, "a", 1, (confirmed or now).isoformat(), None, positions, orders, trading_day(now), 0)


def in_sync_now(r: redis.Redis, book: Book | None = None) -> None:
    r.set(keys.MIRROR_SYNC_KEY, seal_record(record_now(book), KEY), px=3000)
    if book is not None:
        r.set(keys.mirror_book_key(book.ticker), book.to_json())


def held(exposure: Exposure) -> tuple[str | None, int]:
    return exposure.position_qty, exposure.open_orders


def test_row_9_takes_an_in_sync_mirrors_answer_without_asking_the_broker(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    in_sync_now(r, Book("SPY", Position("1", "1", "100")))
    before = broker_reads(broker_sim)
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), known=SPY_TRADABLE)
    assert (held(exposure), source) == (("1", 0), "mirror")
    assert exposure.entries_today == 0  # the day's count, from the sealed record
    assert broker_reads(broker_sim) == before


@pytest.mark.parametrize("state", ["absent", "out_of_sync", "stale"])
def test_row_9_asks_the_broker_when_the_mirror_is_not_in_sync_and_fresh(
        state: str, r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    broker_sim.state.set_position("SPY", "1", "100")  # the broker holds it; the mirror says flat
    r.set(keys.mirror_book_key("SPY"), Book("SPY").to_json())
    confirmed = datetime.now(UTC).timestamp() - (10 if state == "stale" else 0)
    if state != "absent":
        r.set(keys.MIRROR_SYNC_KEY, seal_record(record_now(None, IN_SYNC if state == "stale" else OUT_OF_SYNC,
                                                           datetime.fromtimestamp(confirmed, UTC)), KEY))
    before = broker_reads(broker_sim)
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), known=SPY_TRADABLE)
    assert (held(exposure), source) == (("1", 0), "rest")
    assert broker_reads(broker_sim) > before


def test_the_sync_record_expires_unconfirmed_and_row_9_then_asks_the_broker(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    """The leader SIGKILLed, or Redis restarted empty: no record, no mirror answer."""
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    r.set(keys.MIRROR_SYNC_KEY, seal_record(record_now(), KEY), px=100)
    r.set(keys.mirror_book_key("SPY"), Book("SPY").to_json())
    deadline = time.monotonic() + 5
    while r.exists(keys.MIRROR_SYNC_KEY) and time.monotonic() < deadline:
        time.sleep(0.05)
    _, _, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), known=SPY_TRADABLE)
    assert source == "rest"


def test_a_first_read_with_the_mirror_in_sync_answers_row_9_with_no_other_redis_or_broker_call(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    """The message's first round trip read the snapshot with the mirror: the order goes right
    after the veto and the admission."""
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    in_sync_now(r, Book("SPY", Position("1", "1", "100")))
    _, first = outbox.find_with_snapshot(r, "m:1", "SPY")
    assert first.mirror_read
    before = broker_reads(broker_sim)
    found: list[Any] = []
    sent = commands_during(private_redis, DB, lambda: found.extend(
        row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), first, SPY_TRADABLE)))
    assert (held(found[1]), found[2]) == (("1", 0), "mirror")
    assert sent == [] and broker_reads(broker_sim) == before


def test_a_first_read_with_the_mirror_out_of_sync_reads_again_then_asks_the_broker(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    broker_sim.state.set_position("SPY", "1", "100")
    _, first = outbox.find_with_snapshot(r, "m:1", "SPY")  # no sync record: the mirror cannot answer
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), first, SPY_TRADABLE)
    assert (held(exposure), source) == (("1", 0), "rest")


def test_with_mirror_row9_off_row_9_asks_the_broker_even_when_the_mirror_is_in_sync(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    rt.settings = settings_for(broker_sim, private_redis, tmp_path / "audit.db", mirror_row9=False)
    broker_sim.state.set_position("SPY", "1", "100")
    in_sync_now(r, Book("SPY"))  # the mirror says flat (a book deleted by hand, say)
    _, first = outbox.find_with_snapshot(r, "m:1", "SPY")
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), first, SPY_TRADABLE)
    assert (held(exposure), source) == (("1", 0), "rest")


# Redis written by hand has no authority: row 9 then asks the broker ---------------------------
def test_a_book_deleted_by_hand_still_skips_row_9_on_the_sealed_records_word(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    in_sync_now(r, Book("SPY", Position("1", "1", "100")))
    r.delete(keys.mirror_book_key("SPY"))  # absent would be flat, were the book the mirror's word
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), known=SPY_TRADABLE)
    assert (held(exposure), source) == (("1", 0), "mirror")
    assert check_exposure(exposure) is not None


@pytest.mark.parametrize("forgery", ["unsealed", "sealed_with_another_key", "altered", "replayed_stale"])
def test_a_sync_record_written_by_hand_sends_row_9_to_the_broker(
        forgery: str, r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    """The broker holds SPY; a record saying flat that this gateway's consumer did not seal
    just now (written by hand, altered, or an old sealed one copied back) is not believed."""
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    broker_sim.state.set_position("SPY", "1", "100")
    flat = record_now(None)
    raw = {
        "unsealed": json.dumps({"record": flat.to_json(), "seal": "0" * 64}),
        "sealed_with_another_key": seal_record(flat, "another-key-" + "x" * 32),
        "altered": seal_record(record_now(Book("SPY", Position("1", "1", "100"))), KEY).replace(
            '\\"SPY\\":\\"1\\"', ""),
        "replayed_stale": seal_record(record_now(None, confirmed=datetime.fromtimestamp(time.time() - 60, UTC)), KEY),
    }[forgery]
    r.set(keys.MIRROR_SYNC_KEY, raw)
    r.delete(keys.mirror_book_key("SPY"))
    before = broker_reads(broker_sim)
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC), known=SPY_TRADABLE)
    assert (held(exposure), source) == (("1", 0), "rest")
    assert broker_reads(broker_sim) > before
    assert check_exposure(exposure) is not None  # the order is refused: the broker holds the position


def test_row_9_from_the_mirror_still_asks_the_broker_about_an_asset_not_judged_today(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, tmp_path: Path) -> None:
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    in_sync_now(r, Book("SPY"))
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: datetime.now(UTC))
    assert source == "mirror" and exposure.asset is not None and exposure.asset.tradable


# the asset verdicts: the broker's list of its equities, kept by the leader --------------------
def assets_asked(sim: SimServer) -> int:
    return sum(n for k, n in sim.state.stats()["requests"].items() if k.startswith("GET /v2/assets"))


async def lead_in_sync_with_assets(c: MirrorConsumer) -> None:
    """`c` leads, has resynced, and has kept the trading day's asset verdicts."""
    c.token = await c.store.lead()
    await c.on_listening()
    assert c.assets_task is not None
    await c.assets_task


def test_a_leader_in_sync_keeps_the_brokers_word_on_every_listed_equity_for_the_trading_day(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    broker_sim.state.add_asset({"symbol": "HALTD", "tradable": False})
    broker_sim.state.add_asset({"symbol": "GONEX", "status": "inactive"})

    async def body() -> None:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        await lead_in_sync_with_assets(c)
        c.keep_assets_if_due()  # kept for the day: not asked again
        assert c.assets_task is not None and c.assets_task.done()
    run(body)
    day = trading_day(datetime.now(UTC))
    assert kept_asset(r, day, "SPY") == SPY_TRADABLE
    halted = kept_asset(r, day, "HALTD")
    assert halted is not None and not halted.tradable and "not tradable" in halted.detail
    assert kept_asset(r, day, "GONEX") is None  # not in the list of active equities: the worker asks
    assert kept_asset(r, day, "BTCUSD") is None  # not a US equity: the worker asks (and check_asset refuses)
    assert 0 < r.ttl(ASSET_VERDICTS_PREFIX + day) <= ASSET_VERDICTS_TTL_S
    assert assets_asked(broker_sim) == 1  # one call, not one per symbol


def test_a_new_leader_of_the_same_trading_day_does_not_ask_for_the_list_again(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    run(lambda: consumer(broker_sim, private_redis, engine, tmp_path, holder="host-a:1").keep_assets())
    successor = consumer(broker_sim, private_redis, engine, tmp_path, holder="host-b:1")
    run(successor.keep_assets)
    assert successor.assets_day == trading_day(datetime.now(UTC)) and assets_asked(broker_sim) == 1
    r.delete(ASSET_VERDICTS_PREFIX + trading_day(datetime.now(UTC)))  # Redis lost them: asked again
    run(consumer(broker_sim, private_redis, engine, tmp_path, holder="host-c:1").keep_assets)
    assert kept_asset(r, trading_day(datetime.now(UTC)), "SPY") == SPY_TRADABLE and assets_asked(broker_sim) == 2


def test_a_list_the_broker_does_not_give_keeps_no_verdict_and_is_asked_again_later(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    broker_sim.state.add_fault({"mode": "500", "path": "/v2/assets", "count": 1})

    async def body() -> MirrorConsumer:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        c.keep_assets_if_due()
        assert c.assets_task is not None
        await c.assets_task
        c.keep_assets_if_due()  # within ASSETS_RETRY_S of the failure: not yet
        assert c.assets_task.done()
        c.assets_tried = asyncio.get_running_loop().time() - ASSETS_RETRY_S
        c.keep_assets_if_due()
        await c.assets_task
        return c
    c = run(body)
    assert kept_asset(r, trading_day(datetime.now(UTC)), "SPY") == SPY_TRADABLE
    assert c.assets_day == trading_day(datetime.now(UTC)) and assets_asked(broker_sim) == 2


def test_row_9_from_the_mirror_asks_the_broker_nothing_for_a_listed_equity_once_the_list_is_kept(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    """A ticker's first order of the day: the worker finds the leader's verdict (flow.place
    reads it before row 9) and sends the order with no broker call before it."""
    rt, broker = row9_runtime(r, broker_sim, private_redis, tmp_path)
    run(lambda: consumer(broker_sim, private_redis, engine, tmp_path).keep_assets())
    in_sync_now(r, Book("SPY"))
    before = (broker_reads(broker_sim), assets_asked(broker_sim))
    now = datetime.now(UTC)
    known = kept_asset(r, trading_day(now), "SPY")
    assert known == SPY_TRADABLE
    _, exposure, source = row9_facts(rt, broker, "SPY", lambda: now, known=known)
    assert source == "mirror" and check_exposure(exposure) is None
    assert (broker_reads(broker_sim), assets_asked(broker_sim)) == before


def test_the_resync_and_the_asset_list_take_their_calls_from_the_shared_broker_budget(
        r: redis.Redis, private_redis: PrivateRedis, broker_sim: SimServer, engine: Engine, tmp_path: Path) -> None:
    """Alpaca's limit is per account: the consumer's GETs (the snapshot's three, the day's
    asset list) are taken from the window every worker takes its calls from."""
    async def body() -> None:
        c = consumer(broker_sim, private_redis, engine, tmp_path)
        await lead_in_sync_with_assets(c)
    run(body)
    taken = [str(m).split(":")[0] for m in r.zrange(keys.BROKER_RATE_KEY, 0, -1)]
    assert (taken.count("mirror-resync"), taken.count("mirror-assets")) == (SNAPSHOT_CALLS, 1)
