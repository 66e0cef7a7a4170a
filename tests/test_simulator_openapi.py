"""The proof: a whole session driven through alpaca-py (every endpoint the simulator serves, each
status it answers), every answer validated against Alpaca's published OpenAPI documents for its
path, method and status code: 0 violations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from alpaca_paper_sim import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, BrokerState, SimServer
from tests.support.openapi import OpenAPI, specs_dir

SPECS = specs_dir()
AUTH = {"APCA-API-KEY-ID": DEFAULT_KEY_ID, "APCA-API-SECRET-KEY": DEFAULT_SECRET_KEY}
# Where the published spec lags Alpaca itself: its Asset.exchange enum has no "CRYPTO", which
# Alpaca sends for every crypto pair (docs.alpaca.markets crypto assets; alpaca-py's AssetExchange.CRYPTO).
SPEC_GAPS = ("exchange: 'CRYPTO' is not one of",)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(state=BrokerState(fill_delay_s=0, rate_limit=1_000_000), journal=True) as server:
        requests.post(server.url + "/_sim/clock", json={"now": "2026-11-23T15:00:00Z"}, timeout=5)
        yield server


def refused(call: Any, status: int) -> None:
    with pytest.raises(APIError) as info:
        call()
    assert info.value.status_code == status


def drive_a_session(sim: SimServer) -> None:
    """Every endpoint, each status: account, clock, calendar, assets, every order type and class,
    list / get / replace / cancel / cancel all, positions and their closing, market data."""
    trading = TradingClient(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, paper=True, url_override=sim.url)
    market = StockHistoricalDataClient(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, url_override=sim.url)
    trading.get_account()
    trading.get_clock()
    trading.get_calendar(GetCalendarRequest(start=datetime(2026, 11, 20).date(), end=datetime(2026, 12, 31).date()))
    trading.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO))
    trading.get_asset("SPY")
    trading.get_asset("BTCUSD")
    trading.get_asset("AAPL261218C00150000")
    refused(lambda: trading.get_asset("ZZZZNOTREAL"), 404)
    requests.post(sim.url + "/_sim/prices", json={"SPY": 500}, timeout=5)

    day, gtc = TimeInForce.DAY, TimeInForce.GTC
    bought = trading.submit_order(MarketOrderRequest(symbol="SPY", qty=10, side=OrderSide.BUY, time_in_force=day))
    trading.submit_order(MarketOrderRequest(symbol="AAPL", notional=100, side=OrderSide.BUY, time_in_force=day))
    waiting = trading.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=day,
                                                     limit_price=450))
    trading.submit_order(StopOrderRequest(symbol="SPY", qty=2, side=OrderSide.SELL, time_in_force=gtc,
                                          stop_price=480))
    trading.submit_order(StopLimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.SELL, time_in_force=gtc,
                                               stop_price=470, limit_price=469))
    trading.submit_order(TrailingStopOrderRequest(symbol="SPY", qty=1, side=OrderSide.SELL, time_in_force=gtc,
                                                  trail_percent=2))
    trading.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=gtc,
                                           limit_price=495, order_class=OrderClass.BRACKET,
                                           take_profit=TakeProfitRequest(limit_price=520),
                                           stop_loss=StopLossRequest(stop_price=480)))
    trading.submit_order(LimitOrderRequest(symbol="SPY", qty=2, side=OrderSide.SELL, time_in_force=gtc,
                                           limit_price=530, order_class=OrderClass.OCO,
                                           take_profit=TakeProfitRequest(limit_price=530),
                                           stop_loss=StopLossRequest(stop_price=460)))
    trading.submit_order(MarketOrderRequest(symbol="QQQ", qty=1, side=OrderSide.BUY, time_in_force=day,
                                            order_class=OrderClass.OTO,
                                            stop_loss=StopLossRequest(stop_price=100)))
    refused(lambda: trading.submit_order(MarketOrderRequest(symbol="SPY", qty=10_000, side=OrderSide.BUY,
                                                            time_in_force=day)), 403)
    refused(lambda: trading.submit_order(MarketOrderRequest(symbol="ZZZZNOTREAL", qty=1, side=OrderSide.BUY,
                                                            time_in_force=day)), 422)

    trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    trading.get_orders()
    trading.get_order_by_id(bought.id)
    trading.get_order_by_client_id(bought.client_order_id)
    replaced = trading.replace_order_by_id(waiting.id, ReplaceOrderRequest(limit_price=451))
    trading.cancel_order_by_id(replaced.id)
    refused(lambda: trading.cancel_order_by_id(bought.id), 422)
    requests.post(sim.url + "/_sim/prices", json={"SPY": 521}, timeout=5)  # targets and the trail
    trading.get_all_positions()
    trading.get_open_position("SPY")
    trading.close_position("SPY", ClosePositionRequest(qty="1"))
    trading.cancel_orders()
    requests.post(sim.url + "/_sim/clock/advance", json={"seconds": 8 * 3600}, timeout=5)  # the close: expiries
    trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
    trading.close_all_positions(cancel_orders=True)

    requests.post(sim.url + "/_sim/prices", json={"SPY": None}, timeout=5)
    five = TimeFrame(5, TimeFrameUnit.Minute)
    start = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    for timeframe in (TimeFrame.Minute, five, TimeFrame.Day):
        market.get_stock_bars(StockBarsRequest(symbol_or_symbols=["SPY", "QQQ"], timeframe=timeframe, start=start))
    market.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))
    market.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=["SPY", "AAPL"]))
    market.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="SPY"))
    for path in ("/v2/stocks/SPY/bars", "/v2/stocks/SPY/trades/latest", "/v2/stocks/SPY/quotes/latest",
                 "/v2/stocks/SPY/bars/latest"):
        params = {"timeframe": "5Min", "start": "2026-11-23T14:30:00Z"} if path.endswith("/bars") else {}
        assert requests.get(sim.url + path, params=params, headers=AUTH, timeout=5).status_code == 200


def test_a_whole_session_through_alpaca_py_has_zero_violations_of_alpacas_openapi(sim: SimServer) -> None:
    assert SPECS is not None, "Alpaca's OpenAPI documents belong in ../shared/alpaca beside the clone"
    spec = OpenAPI(SPECS)
    drive_a_session(sim)
    assert sim.journal is not None
    violations = [v for method, path, status, body in sim.journal for v in spec.violations(method, path, status, body)
                  if not any(gap in v for gap in SPEC_GAPS)]
    assert violations == []
    covered = {(m, spec.operation(m, p).template, s) for m, p, s, _ in sim.journal}  # type: ignore[union-attr]
    assert covered >= {
        ("GET", "/v2/account", 200), ("GET", "/v2/clock", 200), ("GET", "/v2/calendar", 200),
        ("GET", "/v2/assets", 200), ("GET", "/v2/assets/{symbol_or_asset_id}", 200),
        ("GET", "/v2/assets/{symbol_or_asset_id}", 404),
        ("POST", "/v2/orders", 200), ("POST", "/v2/orders", 403), ("POST", "/v2/orders", 422),
        ("GET", "/v2/orders", 200), ("GET", "/v2/orders/{order_id}", 200),
        ("GET", "/v2/orders:by_client_order_id", 200), ("PATCH", "/v2/orders/{order_id}", 200),
        ("DELETE", "/v2/orders/{order_id}", 204), ("DELETE", "/v2/orders/{order_id}", 422),
        ("DELETE", "/v2/orders", 207), ("GET", "/v2/positions", 200),
        ("GET", "/v2/positions/{symbol_or_asset_id}", 200), ("DELETE", "/v2/positions/{symbol_or_asset_id}", 200),
        ("DELETE", "/v2/positions", 207), ("GET", "/v2/stocks/bars", 200), ("GET", "/v2/stocks/{symbol}/bars", 200),
        ("GET", "/v2/stocks/trades/latest", 200), ("GET", "/v2/stocks/quotes/latest", 200),
        ("GET", "/v2/stocks/bars/latest", 200), ("GET", "/v2/stocks/{symbol}/trades/latest", 200),
        ("GET", "/v2/stocks/{symbol}/quotes/latest", 200), ("GET", "/v2/stocks/{symbol}/bars/latest", 200),
    }
    events = requests.get(sim.url + "/_sim/events", timeout=5).json()  # the stream's orders: the same Order schema
    assert {e["data"]["event"] for e in events} >= {"new", "fill", "canceled", "expired", "replaced"}
    assert [v for e in events for v in spec.schema_violations("Order", e["data"]["order"])] == []
    statuses = {body["status"] for m, p, s, body in sim.journal
                if m == "GET" and p == "/v2/orders" and isinstance(body, list) for body in body}
    assert statuses >= {"filled", "new", "held", "canceled", "replaced", "expired"}
