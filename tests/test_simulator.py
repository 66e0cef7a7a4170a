"""Tests for alpaca_paper_sim, driven through the real alpaca-py TradingClient.

Using the genuine client proves every simulator answer parses into alpaca-py's
models, which is the whole point of the simulator. Admin calls use requests.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AccountStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionIntent,
    PositionSide,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Calendar, Clock, Order, Position, TradeAccount
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from pydantic import TypeAdapter

from alpaca_paper_sim import (
    DEFAULT_KEY_ID,
    DEFAULT_SECRET_KEY,
    BrokerState,
    SimServer,
    TradingSession,
    open_market,
    schemas,
)
from alpaca_paper_sim.session import NEW_YORK
from zero_tasks.adapters import alpaca_compat
from zero_tasks.adapters.alpaca_adapter import _retry_after

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY_ID, SECRET = DEFAULT_KEY_ID, DEFAULT_SECRET_KEY
AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET}


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    """Open around the clock, fills at once: the order, fault and transport rules below.
    The hours, the fill delay and the quota have their own simulators (tests further down)."""
    with SimServer(state=open_market()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_state(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/reset")


@pytest.fixture(params=["requests", "broker_session"])
def client(sim: SimServer, request: pytest.FixtureRequest) -> TradingClient:
    """alpaca-py as shipped, and alpaca-py as the gateway configures it (zero_tasks/adapters/alpaca_compat.py):
    every answer, error and fault must look the same through both."""
    trading = TradingClient(KEY_ID, SECRET, paper=True, url_override=sim.url)
    if request.param == "broker_session":
        return alpaca_compat.configure(trading, timeout=5.0, base_url=sim.url)
    return alpaca_compat.without_retry(trading)  # alpaca-py would otherwise sleep 3 s and retry on 429


def admin(sim: SimServer, method: str, path: str, json: Any = None) -> Any:
    response = requests.request(method, sim.url + path, json=json, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def market(
    symbol: str = "SPY", qty: float = 1, side: OrderSide = OrderSide.BUY, cid: str | None = None
) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid
    )


def limit(symbol: str = "SPY", qty: float = 1, price: float = 90.0) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=price
    )


def stats(sim: SimServer) -> dict[str, Any]:
    return admin(sim, "GET", "/_sim/stats")


# --------------------------------------------------------- account and clock
def test_account_parses_as_active_usd_trade_account(client: TradingClient) -> None:
    account = client.get_account()
    assert isinstance(account, TradeAccount)
    assert account.status == AccountStatus.ACTIVE
    assert account.currency == "USD"
    assert account.cash == "100000"
    assert account.buying_power == "100000"
    assert account.equity == "100000"


def test_clock_reports_market_open(client: TradingClient) -> None:
    clock = client.get_clock()
    assert isinstance(clock, Clock)
    assert clock.is_open is True
    assert clock.timestamp.tzinfo is not None
    assert clock.next_close > clock.timestamp and clock.next_open > clock.timestamp


# ------------------------------------------------------------------- orders
def test_submit_market_order_fills_into_position(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/prices", {"SPY": 100})
    order = client.submit_order(market("SPY", 2, cid="buy-1"))
    assert isinstance(order, Order)
    assert order.status == OrderStatus.FILLED
    assert order.client_order_id == "buy-1"
    assert order.qty == "2" and order.filled_qty == "2"
    assert order.filled_avg_price == "100.00"
    assert order.filled_at is not None
    assert order.type == OrderType.MARKET and order.side == OrderSide.BUY

    position = client.get_open_position("SPY")
    assert isinstance(position, Position)
    assert position.qty == "2" and position.side == PositionSide.LONG
    assert position.avg_entry_price == "100.00"
    assert position.asset_id == order.asset_id
    assert client.get_account().cash == "99800"


def test_sell_reduces_position_and_removes_it_at_zero(client: TradingClient) -> None:
    client.submit_order(market("AAPL", 3))
    client.submit_order(market("AAPL", 1, side=OrderSide.SELL))
    assert client.get_open_position("AAPL").qty == "2"
    client.submit_order(market("AAPL", 2, side=OrderSide.SELL))
    assert client.get_all_positions() == []
    assert client.get_account().cash == "100000"


def test_missing_client_order_id_gets_generated_uuid(client: TradingClient) -> None:
    order = client.submit_order(market())
    uuid.UUID(order.client_order_id)
    assert client.get_order_by_client_id(order.client_order_id).id == order.id


def test_reused_client_order_id_answers_422(client: TradingClient, sim: SimServer) -> None:
    client.submit_order(market(cid="dup"))
    with pytest.raises(APIError) as info:
        client.submit_order(market(cid="dup"))
    assert info.value.status_code == 422
    assert info.value.code == 40010001
    assert info.value.message == "client_order_id must be unique"
    assert stats(sim)["orders_created"] == 1
    assert stats(sim)["order_posts"] == 2


@pytest.mark.parametrize(
    "change",
    [
        {"symbol": ""},
        {"qty": 0},
        {"qty": "-1"},
        {"side": "hold"},
        {"type": "stop"},
        {"time_in_force": "forever"},
        {"type": "limit"},  # limit order without limit_price
        {"qty": None},  # neither qty nor notional
    ],
)
def test_invalid_order_answers_422(sim: SimServer, change: dict[str, Any]) -> None:
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    body.update(change)
    response = requests.post(sim.url + "/v2/orders", json=body, headers=AUTH, timeout=5)
    assert response.status_code == 422
    assert response.json()["code"] == 40010001 and response.json()["message"]
    assert stats(sim)["orders_created"] == 0


def test_malformed_json_answers_400(sim: SimServer) -> None:
    response = requests.post(sim.url + "/v2/orders", data=b"{nope", headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == 40010000


def test_notional_order_fills_fractional_qty(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/prices", {"SPY": 100})
    order = client.submit_order(
        MarketOrderRequest(symbol="SPY", notional=50, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert order.notional == "50" and order.qty is None
    assert order.filled_qty == "0.5"
    assert client.get_open_position("SPY").qty == "0.5"


def test_limit_order_stays_open_and_can_be_cancelled(client: TradingClient) -> None:
    order = client.submit_order(limit(price=90.5))
    assert order.status == OrderStatus.NEW and order.limit_price == "90.50"
    assert client.cancel_order_by_id(order.id) is None
    assert client.get_order_by_id(order.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as info:
        client.cancel_order_by_id(order.id)
    assert info.value.status_code == 422
    assert client.get_all_positions() == []


def test_cancel_of_filled_order_answers_422(client: TradingClient) -> None:
    order = client.submit_order(market())
    with pytest.raises(APIError) as info:
        client.cancel_order_by_id(order.id)
    assert info.value.status_code == 422


def test_manual_fill_policy_keeps_order_open_until_admin_fill(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/config", {"fill": "manual"})
    order = client.submit_order(market("MSFT", 4, cid="manual-1"))
    assert order.status == OrderStatus.NEW and order.filled_qty == "0"
    assert client.get_all_positions() == []

    partial = admin(sim, "POST", f"/_sim/orders/{order.id}/fill", {"qty": "1"})
    assert partial["status"] == "partially_filled" and partial["filled_qty"] == "1"
    filled = admin(sim, "POST", f"/_sim/orders/{order.id}/fill")
    assert filled["status"] == "filled" and filled["filled_qty"] == "4"
    assert client.get_order_by_client_id("manual-1").status == OrderStatus.FILLED
    assert client.get_open_position("MSFT").qty == "4"


def test_admin_fill_of_limit_order_uses_limit_price(client: TradingClient, sim: SimServer) -> None:
    order = client.submit_order(limit("SPY", 2, price=95))
    filled = admin(sim, "POST", f"/_sim/orders/{order.id}/fill")
    assert filled["filled_avg_price"] == "95.00"
    assert client.get_open_position("SPY").avg_entry_price == "95.00"


def test_admin_cancel_and_reject_close_open_orders(client: TradingClient, sim: SimServer) -> None:
    first, second = client.submit_order(limit()), client.submit_order(limit())
    assert admin(sim, "POST", f"/_sim/orders/{first.id}/cancel")["status"] == "canceled"
    rejected = admin(sim, "POST", f"/_sim/orders/{second.id}/reject")
    assert rejected["status"] == "rejected" and rejected["failed_at"]
    assert client.get_order_by_id(second.id).status == OrderStatus.REJECTED
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    response = requests.post(f"{sim.url}/_sim/orders/{first.id}/fill", timeout=5)
    assert response.status_code == 422


def test_get_orders_filters_by_status_and_symbols(client: TradingClient) -> None:
    filled = client.submit_order(market("SPY"))
    open_spy = client.submit_order(limit("SPY"))
    open_qqq = client.submit_order(limit("QQQ"))

    open_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=["SPY"]))
    assert [o.id for o in open_orders] == [open_spy.id]
    assert {o.id for o in client.get_orders()} == {open_spy.id, open_qqq.id}  # default: open
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.id for o in closed] == [filled.id]
    both = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["SPY", "QQQ"]))
    assert len(both) == 3


def test_get_orders_direction_limit_and_time_window(client: TradingClient) -> None:
    ids = [client.submit_order(limit()).id for _ in range(4)]
    desc = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert [o.id for o in desc] == ids[::-1]
    asc = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, direction=Sort.ASC, limit=2))
    assert [o.id for o in asc] == ids[:2]
    future = datetime.now(UTC) + timedelta(minutes=5)
    past = datetime.now(UTC) - timedelta(minutes=5)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=future)) == []
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, until=past)) == []
    window = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=past, until=future, nested=True))
    assert len(window) == 4


def test_unknown_order_and_position_raise_api_error_404(client: TradingClient) -> None:
    missing = uuid.uuid4()
    for call in (
        lambda: client.get_order_by_id(missing),
        lambda: client.get_order_by_client_id("nope"),
        lambda: client.cancel_order_by_id(missing),
    ):
        with pytest.raises(APIError) as info:
            call()
        assert info.value.status_code == 404
        assert info.value.code == 40410000 and info.value.message == "order not found"
    with pytest.raises(APIError) as info:
        client.get_open_position("TSLA")
    assert info.value.status_code == 404
    assert info.value.message == "position does not exist"


def test_unknown_path_answers_404_json(sim: SimServer) -> None:
    for method, path in (("GET", "/v2/watchlists"), ("PUT", "/v2/orders"), ("GET", "/nothing")):
        response = requests.request(method, sim.url + path, headers=AUTH, timeout=5)
        assert response.status_code == 404
        assert response.json()["code"] == 40410000


@pytest.mark.parametrize("headers", [
    {}, {"APCA-API-KEY-ID": KEY_ID}, {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": ""},
    {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": "wrong"},
    {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": SECRET},
    {"APCA-API-KEY-ID": SECRET, "APCA-API-SECRET-KEY": KEY_ID},
])
def test_any_other_key_pair_answers_401(sim: SimServer, headers: dict[str, str]) -> None:
    response = requests.get(sim.url + "/v2/account", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"code": 40110000, "message": "request is not authorized"}
    assert stats(sim)["orders_created"] == 0


def test_concurrent_submits_with_same_client_order_id_create_one_order(sim: SimServer) -> None:
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day",
            "client_order_id": "race"}
    codes: list[int] = []

    def submit() -> None:
        codes.append(requests.post(sim.url + "/v2/orders", json=body, headers=AUTH, timeout=5).status_code)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] + [422] * 7
    assert stats(sim)["orders_created"] == 1


# ------------------------------------------------------------ admin surface
def test_config_price_sets_fill_price_and_position_values(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/config", {"price": {"SPY": "450.10"}})
    order = client.submit_order(market("SPY", 2))
    assert order.filled_avg_price == "450.10"
    admin(sim, "POST", "/_sim/config", {"price": {"SPY": "460"}})
    position = client.get_open_position("SPY")
    assert position.current_price == "460.00" and position.market_value == "920.00"
    assert position.unrealized_pl == "19.80"
    account = client.get_account()
    assert account.cash == "99099.8" and account.equity == "100019.8"


def test_admin_position_set_and_delete(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/positions", {"symbol": "AAPL", "qty": "1"})
    position = client.get_open_position("AAPL")
    assert position.qty == "1" and position.side == PositionSide.LONG
    assert client.get_open_position(str(position.asset_id)).symbol == "AAPL"
    admin(sim, "POST", "/_sim/positions", {"symbol": "TSLA", "qty": "-2", "avg_entry_price": "200"})
    assert client.get_open_position("TSLA").side == PositionSide.SHORT
    admin(sim, "DELETE", "/_sim/positions/AAPL")
    assert [p.symbol for p in client.get_all_positions()] == ["TSLA"]
    assert requests.delete(sim.url + "/_sim/positions/AAPL", timeout=5).status_code == 404


def test_admin_orders_lists_everything_oldest_first(client: TradingClient, sim: SimServer) -> None:
    ids = [str(client.submit_order(market()).id), str(client.submit_order(limit()).id)]
    orders = admin(sim, "GET", "/_sim/orders")
    assert [o["id"] for o in orders] == ids
    assert all(Order(**o) for o in orders)


def test_stats_counts_requests_and_order_posts(client: TradingClient, sim: SimServer) -> None:
    client.get_account()
    client.get_account()
    client.submit_order(market())
    admin(sim, "POST", "/_sim/fault", {"mode": "500"})
    with pytest.raises(APIError):
        client.submit_order(market())
    client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["SPY"]))
    result = stats(sim)
    assert result["order_posts"] == 2 and result["orders_created"] == 1
    assert result["requests"] == {"GET /v2/account": 2, "POST /v2/orders": 2, "GET /v2/orders": 1}


def test_reset_restores_initial_state(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/config", {"fill": "manual", "price": {"SPY": "1"}})
    client.submit_order(market(cid="before-reset"))
    admin(sim, "POST", "/_sim/positions", {"symbol": "AAPL", "qty": "5"})
    admin(sim, "POST", "/_sim/fault", {"mode": "500", "count": -1, "path": "/v2/clock"})
    assert admin(sim, "POST", "/_sim/reset") == {"ok": True}
    assert stats(sim) == {"order_posts": 0, "orders_created": 0, "requests": {}}
    assert client.get_clock().is_open  # fault cleared
    assert client.get_all_positions() == []
    order = client.submit_order(market(cid="before-reset"))  # id history cleared too
    assert order.status == OrderStatus.FILLED and order.filled_avg_price != "1.00"  # the pin is gone
    assert client.get_account().cash == str(100000 - float(order.filled_avg_price or 0)).rstrip("0").rstrip(".")


def test_admin_rejects_bad_config_and_fault_specs(sim: SimServer) -> None:
    for path, body in (
        ("/_sim/config", {"fill": "sometimes"}),
        ("/_sim/fault", {"mode": "418"}),
        ("/_sim/fault", {"mode": "500", "count": 0}),
        ("/_sim/fault", {"mode": "500", "query": ["client_order_id"]}),
        ("/_sim/fault", {"mode": "500", "query": {"client_order_id": 7}}),
    ):
        response = requests.post(sim.url + path, json=body, timeout=5)
        assert response.status_code == 422, path
    assert requests.get(sim.url + "/_sim/nothing", timeout=5).status_code == 404


# ------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [("500", 500, 50010000), ("503", 503, 50310000), ("403", 403, 40310000)],
)
def test_fault_error_status_changes_nothing(
    client: TradingClient, sim: SimServer, mode: str, status: int, code: int
) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": mode, "method": "POST", "path": "/v2/orders"})
    with pytest.raises(APIError) as info:
        client.submit_order(market(cid="faulted"))
    assert info.value.status_code == status and info.value.code == code
    assert stats(sim)["orders_created"] == 0
    assert client.get_all_positions() == []
    retry = client.submit_order(market(cid="faulted"))  # same id is still free
    assert retry.status == OrderStatus.FILLED


def test_fault_500_changes_nothing(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "500"})
    with pytest.raises(APIError) as info:
        client.submit_order(market())
    assert info.value.status_code == 500
    assert stats(sim)["order_posts"] == 1 and stats(sim)["orders_created"] == 0
    assert admin(sim, "GET", "/_sim/orders") == []


def test_429_sends_retry_after(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "429", "retry_after": 7})
    response = requests.get(sim.url + "/v2/account", headers=AUTH, timeout=5)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"code": 42910000, "message": "rate limit exceeded"}

    admin(sim, "POST", "/_sim/fault", {"mode": "429"})
    with pytest.raises(APIError) as info:
        client.submit_order(market())
    assert info.value.status_code == 429
    assert info.value.response.headers["Retry-After"] == "1"
    assert stats(sim)["orders_created"] == 0


def test_drop_closes_connection_and_changes_nothing(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "drop", "path": "/v2/orders"})
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(market(cid="dropped"))
    assert stats(sim)["orders_created"] == 0
    assert client.submit_order(market(cid="dropped")).status == OrderStatus.FILLED  # client recovers


def test_accept_then_drop_creates_order_but_client_sees_connection_error(
    client: TradingClient, sim: SimServer
) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "accept_then_drop", "method": "POST", "path": "/v2/orders"})
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(market(cid="lost-answer"))
    assert stats(sim)["orders_created"] == 1
    recovered = client.get_order_by_client_id("lost-answer")
    assert recovered.status == OrderStatus.FILLED
    assert client.get_open_position("SPY").qty == "1"


def test_accept_then_500_creates_order_but_answers_500(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "accept_then_500", "method": "POST"})
    with pytest.raises(APIError) as info:
        client.submit_order(market(cid="half-done"))
    assert info.value.status_code == 500
    assert client.get_order_by_client_id("half-done").status == OrderStatus.FILLED
    with pytest.raises(APIError) as retry:  # a blind retry now hits the duplicate check
        client.submit_order(market(cid="half-done"))
    assert retry.value.status_code == 422


def test_slow_fault_delays_then_serves(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "slow", "delay": 0.3, "path": "/v2/clock"})
    started = time.monotonic()
    assert client.get_clock().is_open
    assert time.monotonic() - started >= 0.3
    admin(sim, "POST", "/_sim/fault", {"mode": "500", "path": "/v2/clock"})  # met only once the slow rule is gone
    with pytest.raises(APIError) as after:  # count defaults to 1
        client.get_clock()
    assert after.value.status_code == 500


def test_slow_fault_lets_client_time_out_before_anything_happens(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "slow", "delay": 0.5})
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    with pytest.raises(requests.exceptions.Timeout):
        requests.post(sim.url + "/v2/orders", json=body, headers=AUTH, timeout=0.1)
    assert stats(sim)["orders_created"] == 0  # the order is only created after the delay
    deadline = time.monotonic() + 3
    while stats(sim)["orders_created"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(sim)["orders_created"] == 1


def test_accept_then_slow_creates_order_before_delayed_answer(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "accept_then_slow", "delay": 0.5, "path": "/v2/orders"})
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day",
            "client_order_id": "slow-ack"}
    with pytest.raises(requests.exceptions.Timeout):
        requests.post(sim.url + "/v2/orders", json=body, headers=AUTH, timeout=0.2)
    assert stats(sim)["orders_created"] == 1
    assert admin(sim, "GET", "/_sim/orders")[0]["client_order_id"] == "slow-ack"


def test_fault_filters_by_method_path_and_count(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "503", "count": 2, "method": "GET", "path": "/v2/orders"})
    client.get_account()  # different path: unaffected
    client.submit_order(market())  # POST: unaffected
    for _ in range(2):
        with pytest.raises(APIError) as info:
            client.get_orders()
        assert info.value.status_code == 503
    assert client.get_orders() == []  # rule used up


def test_fault_filters_by_query_so_only_one_orders_lookup_is_hit(client: TradingClient, sim: SimServer) -> None:
    client.submit_order(market(cid="mine"))
    client.submit_order(market(cid="theirs"))
    admin(sim, "POST", "/_sim/fault", {"mode": "503", "method": "GET", "path": "/v2/orders:by_client_order_id",
                                       "query": {"client_order_id": "mine"}})
    assert client.get_order_by_client_id("theirs").client_order_id == "theirs"  # not this rule's order
    with pytest.raises(APIError) as info:
        client.get_order_by_client_id("mine")
    assert info.value.status_code == 503
    assert client.get_order_by_client_id("mine").client_order_id == "mine"  # rule used up


def test_faults_apply_in_order_added_and_until_cleared(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "403"})
    admin(sim, "POST", "/_sim/fault", {"mode": "500", "count": -1})
    with pytest.raises(APIError) as first:
        client.get_account()
    assert first.value.status_code == 403
    for _ in range(3):
        with pytest.raises(APIError) as later:
            client.get_account()
        assert later.value.status_code == 500
    assert admin(sim, "DELETE", "/_sim/fault") == {"ok": True}
    assert client.get_account().status == AccountStatus.ACTIVE


def test_admin_requests_are_never_faulted(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "drop", "count": -1})
    assert admin(sim, "GET", "/_sim/stats")["orders_created"] == 0
    assert admin(sim, "GET", "/_sim/orders") == []


def test_unauthorized_request_does_not_consume_fault(client: TradingClient, sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "500"})
    assert requests.get(sim.url + "/v2/account", timeout=5).status_code == 401
    with pytest.raises(APIError) as info:
        client.get_account()
    assert info.value.status_code == 500


# ---------------------------------------------------------------- transport
def test_keep_alive_with_content_length_on_one_connection(sim: SimServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        conn.request("GET", "/v2/clock", headers=AUTH)
        first = conn.getresponse()
        first.read()
        assert first.getheader("Content-Length") and first.getheader("Connection") == "keep-alive"
        sock = conn.sock
        for _ in range(5):
            conn.request("POST", "/v2/orders",
                         body=b'{"symbol":"SPY","qty":1,"side":"buy","type":"limit","time_in_force":"day",'
                              b'"limit_price":1}',
                         headers={**AUTH, "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        assert conn.sock is sock  # same TCP connection throughout
        conn.request("DELETE", f"/v2/orders/{uuid.uuid4()}", headers=AUTH)
        assert conn.getresponse().read() and conn.sock is sock
    finally:
        conn.close()


def test_each_response_is_one_write_on_a_nodelay_socket(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writes per response stall ~40 ms (Nagle + delayed ACK): count them instead of timing."""
    from alpaca_paper_sim import server as server_module

    writes: list[int] = []
    nodelay: list[int] = []
    original_setup = server_module._Handler.setup

    def counting_setup(handler: server_module._Handler) -> None:
        original_setup(handler)
        nodelay.append(handler.request.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        raw_write = handler.wfile.write

        def write(data: bytes) -> int:
            writes.append(len(data))
            return raw_write(data)

        handler.wfile.write = write  # type: ignore[method-assign]

    monkeypatch.setattr(server_module._Handler, "setup", counting_setup)
    session = requests.Session()
    for _ in range(3):
        assert session.get(sim.url + "/v2/clock", headers=AUTH, timeout=5).status_code == 200
    assert len(writes) == 3 and all(n > 0 for n in writes)
    assert nodelay and all(nodelay)


def test_sim_server_context_manager_url_and_stop() -> None:
    with SimServer() as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        session = requests.Session()
        assert session.get(server.url + "/v2/clock", headers=AUTH, timeout=5).status_code == 200
        assert server.state.stats()["requests"] == {"GET /v2/clock": 1}
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(server.url + "/v2/clock", headers=AUTH, timeout=2)


@contextlib.contextmanager
def cli(*flags: str, **env_extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python -m alpaca_paper_sim` on a free port: its URL (read from its one line) and the process."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_extra}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alpaca_paper_sim", "--host", "127.0.0.1", "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env,
    )
    try:
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        prefix = "alpaca_paper_sim listening on "
        assert line.startswith(prefix), line + proc.stderr.read()  # type: ignore[union-attr]
        url = line[len(prefix):]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serves_new_york_hours_by_default_and_exits_zero_on_sigterm() -> None:
    with cli() as (url, proc):
        clock = TradingClient(KEY_ID, SECRET, paper=True, url_override=url).get_clock()
        assert clock.is_open == TradingSession.new_york().is_open(clock.timestamp)
        assert clock.next_open.time() == dt_time(9, 30) and clock.next_close.time() == dt_time(16, 0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0


def test_cli_as_the_demo_runs_it_is_always_open_and_lets_in_only_its_key_pair() -> None:
    """scripts/devstack.py starts `--always-open --key-id simulator --secret-key simulator`."""
    with cli("--always-open", "--key-id", "simulator", "--secret-key", "simulator") as (url, _):
        assert TradingClient("simulator", "simulator", paper=True, url_override=url).get_clock().is_open
        with pytest.raises(APIError) as refused:
            TradingClient(KEY_ID, SECRET, paper=True, url_override=url).get_clock()
        assert refused.value.status_code == 401


def test_cli_reads_its_key_pair_from_the_environment() -> None:
    with cli("--always-open", ALPACA_SIM_KEY_ID="env-key-id", ALPACA_SIM_SECRET_KEY="env-secret") as (url, _):
        assert TradingClient("env-key-id", "env-secret", paper=True, url_override=url).get_account().cash == "100000"
        with pytest.raises(APIError) as refused:
            TradingClient(KEY_ID, SECRET, paper=True, url_override=url).get_account()
        assert refused.value.status_code == 401


# ------------------------------------- Alpaca's hours, fills, keys and quota
# 2026-11-26 (Thanksgiving) is a configured holiday; New York is on EST (-05:00) all month.
THANKSGIVING = date(2026, 11, 26)
SUNDAY_3AM = "2026-11-22T08:00:00+00:00"
MONDAY_OPEN = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
FILL_DELAY_S = 2


@pytest.fixture(scope="module")
def ny_sim() -> Iterator[SimServer]:
    """New York regular hours (a holiday on the 26th) and a 2 s fill delay, on a frozen clock."""
    state = BrokerState(fill_delay_s=FILL_DELAY_S, session=TradingSession.new_york([THANKSGIVING]))
    with SimServer(state=state) as server:
        yield server


@pytest.fixture
def ny(ny_sim: SimServer) -> SimServer:
    admin(ny_sim, "POST", "/_sim/reset")
    return ny_sim


def at(sim: SimServer, moment: str | datetime) -> None:
    """Stand the simulated market at this instant: no waiting, no timing assertion."""
    admin(sim, "POST", "/_sim/clock", {"now": moment if isinstance(moment, str) else moment.isoformat()})


def trading(sim: SimServer) -> TradingClient:
    return alpaca_compat.without_retry(TradingClient(KEY_ID, SECRET, paper=True, url_override=sim.url))


def raw(sim: SimServer, path: str, **params: str) -> requests.Response:
    return requests.get(sim.url + path, params=params, headers=AUTH, timeout=5)


def new_york(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK)


@pytest.mark.parametrize(("moment", "is_open", "next_open", "next_close"), [
    (SUNDAY_3AM, False, "2026-11-23T09:30", "2026-11-23T16:00"),  # weekend: Monday's session
    ("2026-11-23T14:29:59+00:00", False, "2026-11-23T09:30", "2026-11-23T16:00"),  # 09:29:59, before the open
    ("2026-11-23T14:30:00+00:00", True, "2026-11-24T09:30", "2026-11-23T16:00"),  # the open: tomorrow's open next
    ("2026-11-23T21:00:00+00:00", False, "2026-11-24T09:30", "2026-11-24T16:00"),  # 16:00, the close
    ("2026-11-25T22:00:00+00:00", False, "2026-11-27T09:30", "2026-11-27T13:00"),  # Thu a holiday, Fri closes early
])
def test_clock_tells_the_new_york_session_as_alpaca_does(
        ny: SimServer, moment: str, is_open: bool, next_open: str, next_close: str) -> None:
    at(ny, moment)
    clock = trading(ny).get_clock()
    assert clock.timestamp == datetime.fromisoformat(moment)
    assert clock.is_open is is_open
    assert clock.next_open == new_york(next_open) and clock.next_close == new_york(next_close)
    answer = raw(ny, "/v2/clock").json()
    jsonschema.validate(answer, schemas.CLOCK)  # New York offsets, as Alpaca's clock speaks


def test_calendar_lists_trading_days_from_start_to_end(ny: SimServer) -> None:
    days = trading(ny).get_calendar(GetCalendarRequest(start=date(2026, 11, 20), end=date(2026, 11, 30)))
    assert [d.date for d in days] == [date(2026, 11, d) for d in (20, 23, 24, 25, 27, 30)]  # no weekend, no 26th
    assert all(isinstance(d, Calendar) for d in days)
    assert (days[0].open, days[0].close) == (datetime(2026, 11, 20, 9, 30), datetime(2026, 11, 20, 16, 0))
    answer = raw(ny, "/v2/calendar", start="2026-11-25", end="2026-11-27").json()
    jsonschema.validate(answer, schemas.CALENDAR)
    assert answer == [
        {"date": "2026-11-25", "open": "09:30", "close": "16:00", "session_open": "0400", "session_close": "2000",
         "settlement_date": "2026-11-27"},
        {"date": "2026-11-27", "open": "09:30", "close": "13:00", "session_open": "0400", "session_close": "2000",
         "settlement_date": "2026-11-30"},  # the NYSE's early close the day after Thanksgiving
    ]


def test_calendar_without_bounds_is_alpacas_whole_range(ny: SimServer) -> None:
    days = trading(ny).get_calendar()
    assert days[0].date == date(1970, 1, 2) and days[-1].date == date(2029, 12, 31)  # New Year's Days: closed


@pytest.mark.parametrize("params", [{"start": "yesterday"}, {"end": "2026-13-01"}, {"from": "2026-11-20"},
                                    {"date_type": "SETTLEMENT"}])
def test_calendar_refuses_what_it_cannot_honour_with_422(ny: SimServer, params: dict[str, str]) -> None:
    response = raw(ny, "/v2/calendar", **params)
    assert response.status_code == 422 and response.json()["code"] == 40010001


def test_market_order_out_of_session_stays_accepted_and_fills_at_the_next_open(ny: SimServer) -> None:
    client = trading(ny)
    at(ny, SUNDAY_3AM)
    order = client.submit_order(market("SPY", cid="sunday"))
    assert order.status == OrderStatus.ACCEPTED and order.filled_qty == "0" and order.filled_at is None
    at(ny, "2026-11-23T14:29:59+00:00")  # Monday 09:29:59
    assert client.get_order_by_id(order.id).status == OrderStatus.ACCEPTED
    assert client.get_all_positions() == []
    at(ny, MONDAY_OPEN)
    filled = client.get_order_by_client_id("sunday")
    assert filled.status == OrderStatus.FILLED and filled.filled_qty == "1"
    assert filled.filled_at == MONDAY_OPEN  # at the open, not when someone looked
    assert client.get_open_position("SPY").qty == "1"


def test_market_order_in_session_answers_new_and_fills_after_the_fill_delay(ny: SimServer) -> None:
    client = trading(ny)
    at(ny, MONDAY_OPEN + timedelta(minutes=30))
    order = client.submit_order(market("SPY"))
    assert order.status == OrderStatus.NEW and order.filled_qty == "0"
    at(ny, MONDAY_OPEN + timedelta(minutes=30, seconds=FILL_DELAY_S - 1))
    assert client.get_order_by_id(order.id).status == OrderStatus.NEW
    at(ny, MONDAY_OPEN + timedelta(minutes=30, seconds=FILL_DELAY_S))
    filled = client.get_order_by_id(order.id)
    assert filled.status == OrderStatus.FILLED and filled.filled_at == MONDAY_OPEN + timedelta(minutes=30, seconds=2)


def test_a_fill_delay_of_zero_fills_at_once_in_session(ny: SimServer) -> None:
    admin(ny, "POST", "/_sim/config", {"fill_delay_s": 0})
    at(ny, MONDAY_OPEN)
    assert trading(ny).submit_order(market()).status == OrderStatus.FILLED


def test_a_fill_delay_of_zero_still_waits_for_the_open(ny: SimServer) -> None:
    admin(ny, "POST", "/_sim/config", {"fill_delay_s": 0})
    at(ny, SUNDAY_3AM)
    assert trading(ny).submit_order(market()).status == OrderStatus.ACCEPTED


def test_a_limit_order_out_of_session_is_accepted_then_new_at_the_open(ny: SimServer) -> None:
    client = trading(ny)
    at(ny, SUNDAY_3AM)
    order = client.submit_order(limit())
    assert order.status == OrderStatus.ACCEPTED
    at(ny, MONDAY_OPEN)
    assert client.get_order_by_id(order.id).status == OrderStatus.NEW  # a limit order waits for its price


def test_always_open_trades_at_3am_on_a_sunday(ny: SimServer) -> None:
    """The demo's market: open around the clock, and the clock and calendar say so."""
    admin(ny, "POST", "/_sim/config", {"always_open": True, "fill_delay_s": 0})
    at(ny, SUNDAY_3AM)
    client = trading(ny)
    clock = client.get_clock()
    assert clock.is_open is True and clock.next_close == new_york("2026-11-23T00:00")
    sunday = client.get_calendar(GetCalendarRequest(start=date(2026, 11, 22), end=date(2026, 11, 22)))
    assert [(d.open.time(), d.close.time()) for d in sunday] == [(dt_time(0, 0), dt_time(23, 59))]
    assert client.submit_order(market()).status == OrderStatus.FILLED


def test_the_clock_only_moves_forward_and_reset_brings_back_the_real_one(ny: SimServer) -> None:
    at(ny, MONDAY_OPEN)
    response = requests.post(ny.url + "/_sim/clock", json={"now": SUNDAY_3AM}, timeout=5)
    assert response.status_code == 422
    admin(ny, "POST", "/_sim/reset")
    assert trading(ny).get_clock().timestamp > MONDAY_OPEN


@pytest.mark.parametrize(("held", "side", "intent"), [
    (None, OrderSide.BUY, PositionIntent.BUY_TO_OPEN), ("2", OrderSide.SELL, PositionIntent.SELL_TO_CLOSE),
    (None, OrderSide.SELL, PositionIntent.SELL_TO_OPEN), ("-2", OrderSide.BUY, PositionIntent.BUY_TO_CLOSE),
])
def test_every_order_names_its_position_intent(
        client: TradingClient, sim: SimServer, held: str | None, side: OrderSide, intent: PositionIntent) -> None:
    if held:
        admin(sim, "POST", "/_sim/positions", {"symbol": "SPY", "qty": held})
    assert client.submit_order(market("SPY", side=side)).position_intent == intent


def test_every_order_answer_matches_alpacas_order_schema_in_every_state(ny: SimServer) -> None:
    """No null where the spec has none (position_intent, filled_qty, ...), whatever the status."""
    client = trading(ny)
    at(ny, SUNDAY_3AM)
    client.submit_order(market("SPY"))  # accepted
    client.submit_order(MarketOrderRequest(symbol="QQQ", notional=50, side=OrderSide.BUY,
                                           time_in_force=TimeInForce.DAY))
    canceled = client.submit_order(limit("AAPL"))
    client.cancel_order_by_id(canceled.id)
    at(ny, MONDAY_OPEN)  # the market orders fill, the limit order is new
    client.submit_order(limit("MSFT"))
    rejected = client.submit_order(limit("TSLA"))
    admin(ny, "POST", f"/_sim/orders/{rejected.id}/reject")
    answer = raw(ny, "/v2/orders", status="all").json()
    jsonschema.validate(answer, schemas.ORDERS)
    assert sorted(o["status"] for o in answer) == ["canceled", "filled", "filled", "new", "rejected"]
    body = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    jsonschema.validate(requests.post(ny.url + "/v2/orders", json=body, headers=AUTH, timeout=5).json(), schemas.ORDER)


def test_the_order_schema_refuses_a_null_position_intent() -> None:
    """The schema itself can fail: Alpaca's spec has no null for position_intent."""
    order = one_order_json()
    order["position_intent"] = None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(order, schemas.ORDER)


def one_order_json() -> dict[str, Any]:
    with SimServer(state=open_market()) as server:
        body = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
        return requests.post(server.url + "/v2/orders", json=body, headers=AUTH, timeout=5).json()


# ----------------------------------------------- GET /v2/orders, every parameter
def orders(client: TradingClient, **params: str) -> list[Order]:
    """alpaca-py's GetOrdersRequest has no after_order_id / before_order_id / asset_class: the
    same client's own GET, parsed into its Order model."""
    return TypeAdapter(list[Order]).validate_python(client.get("/orders", params))


def test_get_orders_after_and_before_an_order_id(client: TradingClient) -> None:
    ids = [str(client.submit_order(limit()).id) for _ in range(5)]
    assert [str(o.id) for o in orders(client, after_order_id=ids[1], direction="asc")] == ids[2:]
    assert [str(o.id) for o in orders(client, before_order_id=ids[3])] == ids[2::-1]  # desc by default
    assert orders(client, after_order_id=ids[4]) == []


def test_get_orders_by_asset_class(client: TradingClient) -> None:
    placed = client.submit_order(limit())
    assert [o.id for o in orders(client, asset_class="us_equity")] == [placed.id]
    assert [o.id for o in orders(client, asset_class="crypto,all")] == [placed.id]
    assert orders(client, asset_class="us_option,crypto") == []


def test_get_orders_until_is_exclusive_as_documented(client: TradingClient, sim: SimServer) -> None:
    placed = client.submit_order(limit())
    submitted = placed.submitted_at.isoformat()
    assert orders(client, until=submitted) == []
    assert [o.id for o in orders(client, after=(placed.submitted_at - timedelta(seconds=1)).isoformat(),
                                 until=(placed.submitted_at + timedelta(seconds=1)).isoformat())] == [placed.id]


@pytest.mark.parametrize("params", [
    {"after_order_id": str(uuid.UUID(int=1)), "before_order_id": str(uuid.UUID(int=2))},
    {"after_order_id": str(uuid.UUID(int=1)), "after": "2026-11-23T14:30:00Z"},
    {"before_order_id": str(uuid.UUID(int=1)), "until": "2026-11-23T14:30:00Z"},
    {"after_order_id": str(uuid.UUID(int=7))},  # no such order
    {"asset_class": "bonds"},
    {"side": "hold"},
    {"nested": "maybe"},
    {"page_token": "abc"},  # not a parameter of GET /v2/orders: refused, never ignored
])
def test_get_orders_refuses_what_it_cannot_honour_with_422(client: TradingClient, params: dict[str, str]) -> None:
    client.submit_order(limit())
    with pytest.raises(APIError) as refused:
        orders(client, **params)
    assert refused.value.status_code == 422 and refused.value.code == 40010001


# ------------------------------------------------------------- keys and quota
def test_a_wrong_key_pair_is_api_error_401_through_alpaca_py(sim: SimServer) -> None:
    stranger = TradingClient("someone-else", SECRET, paper=True, url_override=sim.url)
    with pytest.raises(APIError) as refused:
        stranger.submit_order(market())
    assert refused.value.status_code == 401 and refused.value.code == 40110000
    assert refused.value.message == "request is not authorized"
    assert stats(sim)["orders_created"] == 0


def test_a_server_told_another_pair_lets_in_only_that_pair() -> None:
    with SimServer(state=open_market(), key_id="other-id", secret_key="other-secret") as server:
        assert TradingClient("other-id", "other-secret", paper=True, url_override=server.url).get_clock().is_open
        with pytest.raises(APIError) as refused:
            TradingClient(KEY_ID, SECRET, paper=True, url_override=server.url).get_clock()
        assert refused.value.status_code == 401


def quota(response: requests.Response) -> tuple[int, int, int]:
    return tuple(int(response.headers[name]) for name in schemas.RATE_LIMIT_HEADERS)  # type: ignore[return-value]


def test_every_trading_answer_carries_the_rate_limit_headers(sim: SimServer) -> None:
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "limit", "limit_price": 1, "time_in_force": "day"}
    answers = [
        raw(sim, "/v2/account"), raw(sim, "/v2/orders", status="bogus"), raw(sim, "/v2/watchlists"),
        requests.post(sim.url + "/v2/orders", json=body, headers=AUTH, timeout=5),
        requests.get(sim.url + "/v2/account", timeout=5),  # 401
    ]
    order_id = answers[3].json()["id"]
    answers.append(requests.delete(f"{sim.url}/v2/orders/{order_id}", headers=AUTH, timeout=5))  # 204
    admin(sim, "POST", "/_sim/fault", {"mode": "503"})
    answers.append(raw(sim, "/v2/clock"))
    assert [r.status_code for r in answers] == [200, 422, 404, 200, 401, 204, 503]
    for response in answers:
        limit_, remaining, reset = quota(response)
        assert limit_ == 1_000_000 and 0 <= remaining < limit_ and reset > 1_700_000_000


def test_past_the_quota_alpaca_answers_429_with_the_reset_and_no_retry_after() -> None:
    with SimServer(state=open_market(rate_limit=5)) as limited:
        seen = [raw(limited, "/v2/account") for _ in range(5)]
        assert [quota(r)[1] for r in seen] == [4, 3, 2, 1, 0]
        assert requests.get(limited.url + "/v2/account", timeout=5).status_code == 401  # not counted
        admin(limited, "GET", "/_sim/stats")  # nor are admin calls
        refused = raw(limited, "/v2/account")
        assert refused.status_code == 429 and refused.json() == {"code": 42910000, "message": "rate limit exceeded"}
        assert "Retry-After" not in refused.headers
        assert quota(refused) == (5, 0, quota(seen[0])[2])  # the same window, the same reset
        with pytest.raises(APIError) as through_alpaca_py:
            trading(limited).get_account()
        assert through_alpaca_py.value.status_code == 429
        assert limited.state.stats()["orders_created"] == 0


def test_an_injected_429_can_leave_out_retry_after(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "429", "retry_after": None})
    response = raw(sim, "/v2/account")
    assert response.status_code == 429 and "Retry-After" not in response.headers
    assert quota(response)[1] == 0 and quota(response)[2] >= int(time.time())


def test_the_gateway_waits_until_x_ratelimit_reset_when_retry_after_is_absent(client: TradingClient,
                                                                              sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/fault", {"mode": "429", "retry_after": None})
    with pytest.raises(APIError) as limited:
        client.get_account()
    reset = int(limited.value.response.headers["X-RateLimit-Reset"])
    assert _retry_after(limited.value, now=lambda: reset - 7.0) == 7.0
    assert _retry_after(limited.value, now=lambda: reset + 3.0) == 0.0  # already past: no wait
    admin(sim, "POST", "/_sim/fault", {"mode": "429", "retry_after": 4})
    with pytest.raises(APIError) as told:
        client.get_account()
    assert _retry_after(told.value, now=lambda: 0.0) == 4.0  # Retry-After, when sent, wins
