"""Tests for alpaca_paper_sim, driven through the real alpaca-py TradingClient.

Using the genuine client proves every simulator answer parses into alpaca-py's
models, which is the whole point of the simulator. Admin calls use requests.
"""

from __future__ import annotations

import http.client
import socket
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

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
    PositionSide,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Clock, Order, Position, TradeAccount
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest

from alpaca_paper_sim import SimServer
from zero_tasks.broker_http import BrokerSession

REPO_ROOT = Path(__file__).resolve().parents[1]
AUTH = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_state(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/reset")


@pytest.fixture(params=["requests", "broker_session"])
def client(sim: SimServer, request: pytest.FixtureRequest) -> TradingClient:
    """alpaca-py as shipped, and alpaca-py over the gateway's own transport
    (zero_tasks/broker_http.py): every answer, error and fault must look the same through both."""
    trading = TradingClient("test-key", "test-secret", paper=True, url_override=sim.url)
    trading._retry = 0  # alpaca-py would otherwise sleep 3 s and retry on 429
    if request.param == "broker_session":
        trading._session = BrokerSession(timeout=5.0, base_url=sim.url)
    return trading


def admin(sim: SimServer, method: str, path: str, json: Any = None) -> Any:
    response = requests.request(method, sim.url + path, json=json, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def market(symbol: str = "SPY", qty: float = 1, side: OrderSide = OrderSide.BUY, cid: str | None = None) -> MarketOrderRequest:
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


def test_notional_order_fills_fractional_qty(client: TradingClient) -> None:
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
    future = datetime.now(timezone.utc) + timedelta(minutes=5)
    past = datetime.now(timezone.utc) - timedelta(minutes=5)
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
    for method, path in (("GET", "/v2/assets"), ("PUT", "/v2/orders"), ("GET", "/nothing")):
        response = requests.request(method, sim.url + path, headers=AUTH, timeout=5)
        assert response.status_code == 404
        assert response.json()["code"] == 40410000


@pytest.mark.parametrize("headers", [{}, {"APCA-API-KEY-ID": "k"}, {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": ""}])
def test_missing_keys_answer_401(sim: SimServer, headers: dict[str, str]) -> None:
    response = requests.get(sim.url + "/v2/account", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"message": "unauthorized."}


def test_concurrent_submits_with_same_client_order_id_create_one_order(sim: SimServer) -> None:
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day", "client_order_id": "race"}
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
    assert order.status == OrderStatus.FILLED and order.filled_avg_price == "100.00"
    assert client.get_account().cash == "99900"


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
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day", "client_order_id": "slow-ack"}
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
            conn.request("POST", "/v2/orders", body=b'{"symbol":"SPY","qty":1,"side":"buy","type":"limit","time_in_force":"day","limit_price":1}',
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


def test_cli_serves_clock_and_exits_zero_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alpaca_paper_sim", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        prefix = "alpaca_paper_sim listening on "
        assert line.startswith(prefix), line
        url = line[len(prefix):]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        client = TradingClient("k", "s", paper=True, url_override=url)
        assert client.get_clock().is_open
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
