"""Keep-warm calls on the broker's connections (AlpacaBroker.keep_warm, RateLimitedBroker.keep_warm,
keep_warm.once): only on an idle connection, never on one a call is on, each paid from the
broker budget, none when the budget is spent. A real simulator and a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from alpaca.trading.client import TradingClient

from alpaca_paper_sim import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, SimServer, open_market
from tests.support.procs import PrivateRedis, wait_for
from tests.support.redis_dbs import flushed, redis_db
from zero_tasks.adapters import alpaca_compat
from zero_tasks.adapters.alpaca_adapter import ASSET, DAY, MAIN, READS, AlpacaBroker, RateLimitedBroker
from zero_tasks.adapters.risk import BrokerRateLimit
from zero_tasks.core import keys
from zero_tasks.worker import keep_warm

DB = redis_db(__name__)
CLOCK = "GET /v2/clock"


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    yield from flushed(private_redis, DB)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(state=open_market()) as server:
        yield server


def broker_for(sim: SimServer) -> AlpacaBroker:
    client = TradingClient(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, paper=True, url_override=sim.url)
    return AlpacaBroker(alpaca_compat.configure(client, timeout=5.0, base_url=sim.url))


def clock_calls(sim: SimServer) -> int:
    return sim.state.stats()["requests"].get(CLOCK, 0)


def keep_warm_slots(r: redis.Redis) -> int:
    return sum(1 for m in r.zrange(keys.BROKER_RATE_KEY, 0, -1) if str(m).startswith("keep-warm:"))


def test_a_keep_warm_call_is_made_on_each_idle_connection_and_paid_from_the_broker_budget(
        sim: SimServer, r: redis.Redis) -> None:
    broker = RateLimitedBroker(broker_for(sim), BrokerRateLimit(r, 120))
    assert sorted(keep_warm.once(broker, 0)) == sorted([MAIN, READS, DAY, ASSET])
    assert clock_calls(sim) == 4
    assert keep_warm_slots(r) == 4


def test_a_keep_warm_round_reads_the_clock_and_nothing_else(sim: SimServer, r: redis.Redis) -> None:
    """The keep-warm thread is a path to the broker outside the decision table: it may only
    read the clock, never ask for an account change, a position or an order."""
    broker = RateLimitedBroker(broker_for(sim), BrokerRateLimit(r, 120))
    keep_warm.once(broker, 0)
    keep_warm.once(broker, 0)
    assert sim.state.stats()["requests"] == {CLOCK: 8}  # four connections, twice
    assert sim.state.stats()["order_posts"] == 0


def test_a_connection_used_within_the_keep_warm_period_gets_no_call(sim: SimServer, r: redis.Redis) -> None:
    alpaca = broker_for(sim)
    alpaca.probe()  # both connections used just now
    assert keep_warm.once(RateLimitedBroker(alpaca, BrokerRateLimit(r, 120)), 60) == []
    assert clock_calls(sim) == 0 and keep_warm_slots(r) == 0


def test_a_keep_warm_call_skips_the_connection_an_order_call_is_on(sim: SimServer, r: redis.Redis) -> None:
    alpaca = broker_for(sim)
    sim.state.add_fault({"mode": "slow", "count": 1, "delay": 1.0, "method": "GET", "path": "/v2/positions"})
    reading = threading.Thread(target=alpaca.exposure, args=("SPY",))  # row 9: the position read is held
    reading.start()
    try:
        wait_for(lambda: alpaca.in_use(MAIN), 5, "the position read on the main connection")
        wait_for(lambda: not alpaca.in_use(READS), 5, "the open-orders read done")
        warmed = keep_warm.once(RateLimitedBroker(alpaca, BrokerRateLimit(r, 120)), 0)
        assert alpaca.in_use(MAIN)  # still held: the keep-warm round did not wait for it
    finally:
        reading.join(timeout=10)
    assert warmed == [READS, DAY, ASSET]
    assert keep_warm_slots(r) == 3  # the busy connection was not paid for either


def test_no_keep_warm_call_when_the_broker_budget_is_spent(sim: SimServer, r: redis.Redis) -> None:
    limit = BrokerRateLimit(r, 2)
    limit.acquire("placement", 2)  # this minute's budget, taken by an order
    assert keep_warm.once(RateLimitedBroker(broker_for(sim), limit), 0) == []
    assert clock_calls(sim) == 0 and keep_warm_slots(r) == 0
