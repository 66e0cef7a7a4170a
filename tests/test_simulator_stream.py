"""The simulator's trade_updates websocket, through alpaca-py's TradingStream unchanged."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.sync.client import connect

from alpaca_paper_sim import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, SimServer, open_market

WAIT_S = 10.0


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(state=open_market()) as server:
        yield server


def trading(sim: SimServer) -> TradingClient:
    return TradingClient(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, paper=True, url_override=sim.url)


def connections(sim: SimServer) -> dict[str, Any]:
    return requests.get(sim.url + "/_sim/connections", timeout=5).json()


@contextlib.contextmanager
def listen(sim: SimServer, key: str = DEFAULT_KEY_ID) -> Iterator[Any]:
    """A raw client as Alpaca's docs show it: auth, then listen."""
    assert sim.stream_url is not None
    with connect(sim.stream_url) as ws:
        ws.send(json.dumps({"action": "auth", "key": key, "secret": DEFAULT_SECRET_KEY}))
        yield ws


def test_auth_and_listen_answer_as_alpaca_then_updates_follow(sim: SimServer) -> None:
    with listen(sim) as ws:
        assert json.loads(ws.recv(timeout=WAIT_S)) == {
            "stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=WAIT_S)) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
        trading(sim).submit_order(MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                     time_in_force=TimeInForce.DAY))
        events = [json.loads(ws.recv(timeout=WAIT_S)) for _ in range(2)]
    assert [e["data"]["event"] for e in events] == ["new", "fill"]
    fill = events[1]["data"]
    assert fill["qty"] == "1" and fill["position_qty"] == "1" and fill["price"] == fill["order"]["filled_avg_price"]


def test_a_wrong_key_pair_is_unauthorized_and_closed(sim: SimServer) -> None:
    with listen(sim, key="wrong") as ws:
        assert json.loads(ws.recv(timeout=WAIT_S))["data"]["status"] == "unauthorized"


def test_alpaca_py_trading_stream_receives_new_fill_canceled_and_the_drop_is_counted(sim: SimServer) -> None:
    received: queue.Queue[TradeUpdate] = queue.Queue()

    async def on_update(update: TradeUpdate) -> None:
        received.put(update)

    stream = TradingStream(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, paper=True, url_override=sim.stream_url)
    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        client = trading(sim)
        deadline = time.monotonic() + WAIT_S
        while connections(sim)["stream_listeners"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # alpaca-py connects, authenticates and listens in its own thread
        order = client.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                      time_in_force=TimeInForce.GTC, limit_price=1))
        first = received.get(timeout=WAIT_S)
        assert first.event == "new" and str(first.order.id) == str(order.id)
        assert connections(sim)["stream_clients"] == 1
        client.cancel_order_by_id(order.id)
        canceled = received.get(timeout=WAIT_S)
        assert canceled.event == "canceled" and str(canceled.order.id) == str(order.id)
        client.submit_order(MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                               time_in_force=TimeInForce.DAY))
        assert [received.get(timeout=WAIT_S).event for _ in range(2)] == ["new", "fill"]
        assert requests.post(sim.url + "/_sim/stream/drop", timeout=5).json() == {"dropped": 1}
    finally:
        stream.stop()
        thread.join(timeout=WAIT_S)
