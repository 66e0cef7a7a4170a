"""The floor: what no gateway can beat on this machine, measured in the same run.

1. a bare Redis PUBLISH seen by a subscriber (publish call -> message read by the
   subscriber's client), one thread, loopback;
2. one alpaca-py `submit_order` to the simulator over a warm keep-alive connection (the
   gateway's transport, see `trading_client`), as a
   round trip (call -> parsed Order) and one way (call -> the simulator creates it);
3. the contract floor: the broker calls the contract puts before an order, made as the
   gateway makes them (zero_tasks.adapters.alpaca_adapter.AlpacaBroker): row 9's two reads at once,
   the open orders on the broker's read thread while the position is read (404), then the
   submit, one way (first call -> the simulator creates the order). Any gateway that keeps
   row 9 at the broker pays at least PUBLISH + this.
"""

from __future__ import annotations

import time
from typing import Any

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from zero_tasks.adapters import alpaca_compat
from zero_tasks.adapters.alpaca_adapter import AlpacaBroker

from .common import Signal, Tickers, ms, summary
from .stack import Stack

FLOOR_CHANNEL = "bench:floor"  # not a gateway channel: nothing acts on it


def pubsub_floor(stack: Stack, n: int, warmup: int = 20) -> list[float]:
    pub = stack.client()
    sub_client = stack.client()
    pubsub = sub_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(FLOOR_CHANNEL)
    deadline = time.monotonic() + 5
    while not pubsub.subscribed and time.monotonic() < deadline:
        pubsub.get_message(timeout=0.1)
    pubsub.get_message(timeout=0.05)
    payload = Signal("FLOOR").data  # the size of a real ranking
    samples: list[float] = []
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            pub.publish(FLOOR_CHANNEL, payload)
            message = None
            limit = t0 + 2.0
            while message is None and time.perf_counter() < limit:
                message = pubsub.get_message(timeout=1.0)
            t1 = time.perf_counter()
            if message is not None and i >= warmup:
                samples.append(ms(t1 - t0))
    finally:
        pubsub.close()
        sub_client.close()
        pub.close()
    return samples


def trading_client(stack: Stack, url: str | None = None, ca_file: str | None = None) -> TradingClient:
    """alpaca-py as the gateway runs it (zero_tasks/adapters/alpaca_compat.py): no retry, and its session,
    which reads the environment once instead of on every call; a floor the gateway's own
    client could beat would be no floor (stock alpaca-py: `python -m bench.http_transport`)."""
    url = url or stack.sim_url
    client = TradingClient("test-key-id", "test-secret-value", paper=True, url_override=url)
    return alpaca_compat.configure(client, timeout=5.0, base_url=url, ca_file=ca_file)


def submit_floor(stack: Stack, n: int, warmup: int = 10) -> tuple[list[float], list[float]]:
    client = trading_client(stack)
    tickers = Tickers("FL")
    round_trip: list[float] = []
    one_way: list[float] = []
    for i in range(warmup + n):
        ticker = tickers.next()
        cid = f"floor-{ticker}"
        t0 = time.perf_counter()
        client.submit_order(MarketOrderRequest(symbol=ticker, qty=1, side=OrderSide.BUY,
                                               time_in_force=TimeInForce.DAY, client_order_id=cid))
        t1 = time.perf_counter()
        stamp = stack.state.stamps.get(cid)
        if i >= warmup:
            round_trip.append(ms(t1 - t0))
            if stamp is not None:
                one_way.append(ms(stamp[0] - t0))
    return round_trip, one_way


class ContractFloor:
    """Position read, open-orders read, submit, on one client kept between samples: first
    call -> the simulator creates the order (at `url`, trusting `ca_file`, when given: the
    HTTPS endpoint)."""

    def __init__(self, stack: Stack, url: str | None = None, ca_file: str | None = None,
                 prefix: str = "FC", reads: bool = True) -> None:
        self._stack = stack
        self._reads = reads  # False: the bare floor, the submit alone (row 9 answered without the broker)
        self._client = trading_client(stack, url, ca_file)
        self._broker = AlpacaBroker(self._client)
        self._tickers = Tickers(prefix)  # its orders' client_order_ids: unique in the simulator

    def sample(self, n: int, warmup: int = 0, round_trips: list[float] | None = None) -> list[float]:
        """First call -> the order created at the simulator, ms; with `round_trips`, each
        sample's first call -> the submit's answer back at the client is added to it too."""
        samples: list[float] = []
        for i in range(warmup + n):
            ticker = self._tickers.next()
            cid = f"floor-{ticker}"
            t0 = time.perf_counter()
            if self._reads:
                self._broker.exposure(ticker)  # as the gateway asks them: both at once, no position (404)
            self._client.submit_order(MarketOrderRequest(symbol=ticker, qty=1, side=OrderSide.BUY,
                                                         time_in_force=TimeInForce.DAY, client_order_id=cid))
            answered = time.perf_counter()
            stamp = self._stack.state.stamps.get(cid)
            if i >= warmup and stamp is not None:
                samples.append(ms(stamp[0] - t0))
                if round_trips is not None:
                    round_trips.append(ms(answered - t0))
        return samples


def contract_floor(stack: Stack, n: int, warmup: int = 10) -> list[float]:
    """The contract floor, `n` samples back to back on a new client."""
    return ContractFloor(stack).sample(n, warmup)


def measure(stack: Stack, n: int) -> dict[str, Any]:
    pubsub = pubsub_floor(stack, n)
    round_trip, one_way = submit_floor(stack, n)
    contract = contract_floor(stack, n)
    stack.state.reset()
    p, s, w, c = summary(pubsub), summary(round_trip), summary(one_way), summary(contract)
    return {
        "contract_calls_to_order_ms": c,
        # PUBLISH + row 9's two reads + the submit reaching the broker
        "contract_sum_p50_ms": round(p["p50"] + c["p50"], 3),
        "pubsub_ms": p,
        "submit_rt_ms": s,
        "submit_to_sim_ms": w,
        "sum_p50_ms": round(p["p50"] + s["p50"], 3),
        "sum_p99_ms": round(p["p99"] + s["p99"], 3),
        # the strict floor of publish -> broker receives: the submit's request half only
        "strict_sum_p50_ms": round(p["p50"] + w["p50"], 3),
    }
