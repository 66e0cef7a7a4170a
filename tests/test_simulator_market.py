"""The simulator as Alpaca's market: a clock tests advance, prices that move, market data, order
types and classes, the account's limits, assets, the calendar. Each test on its own frozen clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from alpaca_paper_sim import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, BrokerState, SimServer

MONDAY_1000 = "2026-11-23T15:00:00Z"  # Monday 10:00 New York
AUTH = {"APCA-API-KEY-ID": DEFAULT_KEY_ID, "APCA-API-SECRET-KEY": DEFAULT_SECRET_KEY}


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(state=BrokerState(fill_delay_s=0, rate_limit=1_000_000)) as sim:
        yield sim


@pytest.fixture
def sim(server: SimServer) -> SimServer:
    admin(server, "POST", "/_sim/reset")
    admin(server, "POST", "/_sim/clock", {"now": MONDAY_1000})
    return server


def admin(sim: SimServer, method: str, path: str, json: Any = None) -> Any:
    response = requests.request(method, sim.url + path, json=json, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def advance(sim: SimServer, seconds: float) -> None:
    admin(sim, "POST", "/_sim/clock/advance", {"seconds": seconds})


def pin(sim: SimServer, **prices: float | None) -> None:
    admin(sim, "POST", "/_sim/prices", prices)


def client(sim: SimServer) -> TradingClient:
    return TradingClient(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, paper=True, url_override=sim.url)


def data(sim: SimServer) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, url_override=sim.url)


def buy(symbol: str = "SPY", qty: float = 1) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)


# --------------------------------------------------------------- clock and prices
def test_the_price_walks_with_the_clock_and_is_the_same_for_the_same_instant(sim: SimServer) -> None:
    first = admin(sim, "GET", "/_sim/prices?symbols=SPY")["SPY"]
    assert admin(sim, "GET", "/_sim/prices?symbols=SPY")["SPY"] == first  # frozen clock, frozen walk
    advance(sim, 3600)
    later = admin(sim, "GET", "/_sim/prices?symbols=SPY")["SPY"]
    assert later != first and 0.8 < float(later) / float(first) < 1.2  # an hour of a liquid ETF
    admin(sim, "POST", "/_sim/reset")
    admin(sim, "POST", "/_sim/clock", {"now": MONDAY_1000})
    assert admin(sim, "GET", "/_sim/prices?symbols=SPY")["SPY"] == first  # deterministic for seed + time


def test_a_market_order_fills_at_the_walks_price_and_the_latest_trade_agrees(sim: SimServer) -> None:
    order = client(sim).submit_order(buy())
    latest = data(sim).get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))["SPY"]
    assert order.status == OrderStatus.FILLED and float(order.filled_avg_price or 0) == latest.price


def test_a_pinned_price_holds_until_released(sim: SimServer) -> None:
    pin(sim, SPY=512.31)
    advance(sim, 1800)
    assert admin(sim, "GET", "/_sim/prices?symbols=SPY") == {"SPY": "512.31"}
    pin(sim, SPY=None)
    assert admin(sim, "GET", "/_sim/prices?symbols=SPY") != {"SPY": "512.31"}


def test_stock_historical_data_client_gets_at_least_14_five_minute_bars_during_a_session(sim: SimServer) -> None:
    advance(sim, 3 * 3600)  # 13:00: three and a half hours of session
    bars = data(sim).get_stock_bars(StockBarsRequest(
        symbol_or_symbols="SPY", timeframe=TimeFrame(5, TimeFrameUnit.Minute),
        start=datetime(2026, 11, 23, 14, 30, tzinfo=UTC))).data["SPY"]
    assert len(bars) >= 14
    assert bars[-1].timestamp < datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # nothing after now
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)


def test_bars_page_with_limit_and_page_token(sim: SimServer) -> None:
    advance(sim, 3600)
    first = requests.get(sim.url + "/v2/stocks/SPY/bars", params={"timeframe": "1Min", "limit": 10,
                         "start": "2026-11-23T14:30:00Z"}, headers=AUTH, timeout=5).json()
    assert len(first["bars"]) == 10 and first["next_page_token"]
    second = requests.get(sim.url + "/v2/stocks/SPY/bars", params={"timeframe": "1Min", "limit": 10,
                          "start": "2026-11-23T14:30:00Z", "page_token": first["next_page_token"]},
                          headers=AUTH, timeout=5).json()
    assert second["bars"][0]["t"] > first["bars"][-1]["t"]


# --------------------------------------------------------------- orders
def test_a_buy_limit_fills_at_its_limit_when_the_walk_crosses_it(sim: SimServer) -> None:
    trading = client(sim)
    pin(sim, SPY=500)
    order = trading.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                   time_in_force=TimeInForce.GTC, limit_price=499))
    assert order.status == OrderStatus.NEW
    pin(sim, SPY=498.5)  # crosses at once
    filled = trading.get_order_by_id(order.id)
    assert filled.status == OrderStatus.FILLED and filled.filled_avg_price == "498.50"


def test_advancing_across_a_stop_fires_it_at_the_crossing(sim: SimServer) -> None:
    trading = client(sim)
    trading.submit_order(buy(qty=2))
    price = float(admin(sim, "GET", "/_sim/prices?symbols=SPY")["SPY"])
    stop = trading.submit_order(StopOrderRequest(symbol="SPY", qty=2, side=OrderSide.SELL,
                                                 time_in_force=TimeInForce.GTC, stop_price=round(price * 0.999, 2)))
    advance(sim, 6 * 3600)  # 16:00: the walk is most unlikely to stay within 0.1 % for six hours
    done = trading.get_order_by_id(stop.id)
    assert done.status == OrderStatus.FILLED and done.filled_at is not None
    assert done.filled_at < datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


def test_a_bracket_holds_its_exits_until_the_entry_fills_then_target_first_cancels_the_stop(sim: SimServer) -> None:
    trading = client(sim)
    pin(sim, SPY=500)
    order = trading.submit_order(LimitOrderRequest(
        symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=495,
        order_class=OrderClass.BRACKET, take_profit=TakeProfitRequest(limit_price=510),
        stop_loss=StopLossRequest(stop_price=490)))
    assert order.status == OrderStatus.NEW and {leg.status for leg in order.legs or []} == {OrderStatus.HELD}
    pin(sim, SPY=494)
    legs = trading.get_order_by_id(order.id).legs or []
    assert {leg.status for leg in legs} == {OrderStatus.NEW}
    assert client(sim).get_open_position("SPY").qty_available == "0"  # both exits reserve the share
    pin(sim, SPY=511)
    legs = trading.get_order_by_id(order.id).legs or []
    assert sorted((leg.type.value, leg.status.value) for leg in legs) == [("limit", "filled"), ("stop", "canceled")]
    assert trading.get_all_positions() == []


def test_an_oco_exit_stop_first_cancels_the_target(sim: SimServer) -> None:
    trading = client(sim)
    pin(sim, SPY=500)
    trading.submit_order(buy())
    oco = trading.submit_order(LimitOrderRequest(
        symbol="SPY", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, limit_price=510,
        order_class=OrderClass.OCO, take_profit=TakeProfitRequest(limit_price=510),
        stop_loss=StopLossRequest(stop_price=490)))
    pin(sim, SPY=489)
    parent = trading.get_order_by_id(oco.id)
    assert parent.status == OrderStatus.CANCELED and (parent.legs or [])[0].status == OrderStatus.FILLED


def test_a_trailing_stop_follows_the_high_water_mark(sim: SimServer) -> None:
    trading = client(sim)
    pin(sim, SPY=500)
    trading.submit_order(buy())
    trail = trading.submit_order(TrailingStopOrderRequest(symbol="SPY", qty=1, side=OrderSide.SELL,
                                                          time_in_force=TimeInForce.GTC, trail_price=5))
    pin(sim, SPY=520)
    pin(sim, SPY=516)
    assert trading.get_order_by_id(trail.id).status == OrderStatus.NEW
    pin(sim, SPY=514)
    assert trading.get_order_by_id(trail.id).status == OrderStatus.FILLED


def test_a_day_order_expires_at_the_close_and_gtc_stays(sim: SimServer) -> None:
    trading = client(sim)
    pin(sim, SPY=500)
    day = trading.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                 time_in_force=TimeInForce.DAY, limit_price=400))
    gtc = trading.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                 time_in_force=TimeInForce.GTC, limit_price=400))
    assert day.expires_at == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    advance(sim, 7 * 3600)
    assert trading.get_order_by_id(day.id).status == OrderStatus.EXPIRED
    assert trading.get_order_by_id(gtc.id).status == OrderStatus.NEW


def test_replace_cancel_all_and_close_position(sim: SimServer) -> None:
    trading = client(sim)
    pin(sim, SPY=500)
    trading.submit_order(buy(qty=4))
    order = trading.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                   time_in_force=TimeInForce.GTC, limit_price=400))
    new = trading.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=401))
    old = trading.get_order_by_id(order.id)
    assert old.status == OrderStatus.REPLACED and str(old.replaced_by) == str(new.id) and new.limit_price == "401.00"
    assert [c.status for c in trading.cancel_orders()] == [200]
    assert trading.get_order_by_id(new.id).status == OrderStatus.CANCELED
    closed = trading.close_position("SPY", ClosePositionRequest(percentage="50"))
    assert closed.qty == "2" and trading.get_open_position("SPY").qty == "2"
    assert [r.status for r in trading.close_all_positions(cancel_orders=True)] == [200]
    assert trading.get_all_positions() == []


# --------------------------------------------------------------- the account
def test_buying_more_than_the_cash_allows_is_403_insufficient_buying_power(sim: SimServer) -> None:
    with pytest.raises(APIError) as refused:
        client(sim).submit_order(buy(qty=10_000))
    assert refused.value.status_code == 403 and "insufficient buying power" in refused.value.message


def test_selling_more_than_held_or_reserved_is_403_insufficient_qty_available(sim: SimServer) -> None:
    trading = client(sim)
    trading.submit_order(buy())
    with pytest.raises(APIError) as refused:
        trading.submit_order(MarketOrderRequest(symbol="SPY", qty=5, side=OrderSide.SELL,
                                                time_in_force=TimeInForce.DAY))
    assert refused.value.status_code == 403 and "insufficient qty available" in refused.value.message


def test_short_sales_only_for_easy_to_borrow_names(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/assets", {"symbol": "HTBX", "easy_to_borrow": False, "price": 12})
    with pytest.raises(APIError) as refused:
        client(sim).submit_order(MarketOrderRequest(symbol="HTBX", qty=1, side=OrderSide.SELL,
                                                    time_in_force=TimeInForce.DAY))
    assert refused.value.status_code == 403
    short = client(sim).submit_order(MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.SELL,
                                                        time_in_force=TimeInForce.DAY))
    assert short.status == OrderStatus.FILLED and short.position_intent.value == "sell_to_open"


@pytest.mark.parametrize(("body", "message"), [
    ({"symbol": "ZZZZNOTREAL", "qty": 1}, "could not find asset"),
    ({"symbol": "BTCUSD", "qty": 1}, "crypto time_in_force"),
    ({"symbol": "SPY", "qty": 1.5, "type": "limit", "limit_price": 1}, "fractional orders must be DAY market"),
    ({"symbol": "SPY", "qty": 1, "extended_hours": True}, "extended hours order must be DAY limit"),
    ({"symbol": "SPY", "qty": 1, "position_intent": "sell_to_close"}, "does not match side"),
])
def test_what_alpaca_refuses_is_422_with_its_reason(sim: SimServer, body: dict[str, Any], message: str) -> None:
    order = {"side": "buy", "type": "market", "time_in_force": "day", **body}
    response = requests.post(sim.url + "/v2/orders", json=order, headers=AUTH, timeout=5)
    assert response.status_code == 422 and message in response.json()["message"]


def test_assets_list_equities_crypto_in_both_spellings_and_options(sim: SimServer) -> None:
    trading = client(sim)
    assert trading.get_asset("SPY").exchange.value == "ARCA"
    assert trading.get_asset("BTCUSD").symbol == "BTC/USD" == trading.get_asset("BTC/USD").symbol
    assert trading.get_asset("AAPL261218C00150000").asset_class.value == "us_option"
    response = requests.get(sim.url + "/v2/assets", params={"asset_class": "crypto"}, headers=AUTH, timeout=5)
    assert response.status_code == 200 and {a["class"] for a in response.json()} == {"crypto"}
    assert len(requests.get(sim.url + "/v2/assets", headers=AUTH, timeout=5).json()) > 500


def test_every_answer_has_an_x_request_id(sim: SimServer) -> None:
    for path in ("/v2/account", "/v2/nothing", "/_sim/stats"):
        assert requests.get(sim.url + path, headers=AUTH, timeout=5).headers["X-Request-ID"]


def test_advance_and_close_time_expire_day_orders_across_days(sim: SimServer) -> None:
    trading = client(sim)
    pin(sim, SPY=500)
    order = trading.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                   time_in_force=TimeInForce.DAY, limit_price=400))
    advance(sim, timedelta(days=3).total_seconds())
    assert trading.get_order_by_id(order.id).status == OrderStatus.EXPIRED


# --------------------------------------------------------------- the NYSE calendar
def test_the_calendar_is_the_nyse_s_christmas_closed_and_the_day_after_thanksgiving_early(sim: SimServer) -> None:
    days = requests.get(sim.url + "/v2/calendar", params={"start": "2026-11-27", "end": "2026-12-28"},
                        headers=AUTH, timeout=5).json()
    by_date = {d["date"]: (d["open"], d["close"]) for d in days}
    assert by_date["2026-11-27"] == ("09:30", "13:00") and by_date["2026-12-24"] == ("09:30", "13:00")
    assert "2026-12-25" not in by_date and by_date["2026-12-28"] == ("09:30", "16:00")


def test_the_clock_on_christmas_says_closed_until_the_next_session(sim: SimServer) -> None:
    admin(sim, "POST", "/_sim/clock", {"now": "2026-12-25T15:00:00Z"})
    clock = client(sim).get_clock()
    assert clock.is_open is False and clock.next_open == datetime(2026, 12, 28, 14, 30, tzinfo=UTC)
