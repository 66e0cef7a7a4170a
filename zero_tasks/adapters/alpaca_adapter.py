"""The broker edge: alpaca-py's TradingClient, paper only, with a timeout and no blind retry.

alpaca-py sets no request timeout and re-POSTs on 429/504 by itself. Here every call has
a timeout, alpaca-py's own retry is off (our task retries, after looking the order up by
client_order_id; both set in alpaca_compat.py, the one module that touches alpaca-py's
internals), and every failure becomes one of two values the task understands:
BrokerTransient (retry) or BrokerRejected (final 4xx).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
from urllib.parse import quote

import requests
from alpaca.common.exceptions import APIError
from alpaca.common.types import RawData
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, PositionIntent, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, Position
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from zero_tasks.adapters import alpaca_compat
from zero_tasks.adapters.risk import BrokerRateLimit
from zero_tasks.core.checks.asset import AssetVerdict, asset_verdict, unknown_asset
from zero_tasks.core.checks.exposure import Exposure
from zero_tasks.core.contract import TICKER_PATTERN
from zero_tasks.core.lifecycle.horizon import Session
from zero_tasks.core.lifecycle.prices import ProtectPrices
from zero_tasks.core.lifecycle.state import OrderFacts, PositionFacts
from zero_tasks.core.session import NEW_YORK, TradingSession
from zero_tasks.core.session import from_broker as session_from_broker
from zero_tasks.secrets import cut
from zero_tasks.settings import ORDER_QTY, Settings

T = TypeVar("T")
M = TypeVar("M")


class BrokerTransient(Exception):
    """Network error, timeout, 5xx or 429: the answer is unknown; retry after a lookup."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class BrokerRejected(Exception):
    """A 4xx: the broker said no. Final, never retried."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    client_order_id: str
    status: str
    submitted_at: str | None
    filled_avg_price: str | None = None  # once it filled (partly): the broker's average price
    filled_at: str | None = None  # ISO, the broker's


PAPER_URL = "https://paper-api.alpaca.markets"
# AlpacaBroker's connections: the caller's, the read thread's (row 9's open orders), and
# the day thread's (the broker's own count of today's entry orders, for the daily cap).
# And the asset thread's: the broker's word on a symbol not judged yet this trading day.
MAIN, READS, DAY, ASSET = "main", "reads", "day", "asset"
ENTRY_PREFIX = "zx-"  # the client_order_id prefix of the gateway's entries (contract.client_order_id)
DAY_ORDERS_LIMIT = 500  # Alpaca's largest page: a fuller day cannot be counted, and fails closed


def url_symbol(ticker: str) -> str:
    """The symbol as it goes into a URL path (alpaca-py puts it there as given): only a US
    equity symbol, escaped. Intake already refuses anything else; this is the last line."""
    if not re.fullmatch(TICKER_PATTERN, ticker):
        raise ValueError(f"not a US equity symbol: {ticker[:20]!r}")
    return quote(ticker, safe="")


def make_trading_client(settings: Settings) -> TradingClient:
    client = TradingClient(
        settings.alpaca_api_key.get_secret_value(),
        settings.alpaca_secret_key.get_secret_value(),
        paper=True,  # hard-coded: this gateway has no live mode
        url_override=settings.alpaca_base_url,
    )
    return alpaca_compat.configure(client, settings.broker_timeout_s, settings.alpaca_base_url or PAPER_URL,
                                   settings.alpaca_ca_file)


def _message(exc: APIError) -> str:
    try:
        return cut(str(exc.message), 200)  # an error body may quote a key: scrubbed before the cut
    except Exception:  # noqa: BLE001 - the body was not Alpaca's JSON
        return cut(str(exc), 200)


def retry_after(exc: APIError, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the broker asks us to wait: Retry-After, else until X-RateLimit-Reset (unix
    seconds), which is all Alpaca sends on a 429. None when it says neither (or nonsense)."""
    response = exc.response
    headers = response.headers if response is not None else {}
    try:
        if headers.get("Retry-After"):
            return float(headers["Retry-After"])
        if headers.get("X-RateLimit-Reset"):
            return max(0.0, float(headers["X-RateLimit-Reset"]) - now())
    except ValueError:
        return None
    return None


def _classified(call: Callable[[], T]) -> T:
    """Run one broker call; map every failure onto BrokerTransient or BrokerRejected."""
    try:
        return call()
    except APIError as exc:
        status = exc.status_code or 0
        if status == 429 or status >= 500 or status == 0:
            raise BrokerTransient(f"HTTP {status}: {_message(exc)}", retry_after(exc)) from exc
        raise BrokerRejected(status, _message(exc)) from exc
    except requests.Timeout as exc:
        raise BrokerTransient(f"timeout: {type(exc).__name__}") from exc
    except requests.RequestException as exc:
        raise BrokerTransient(f"network: {type(exc).__name__}") from exc
    except ValueError as exc:  # a body that is not JSON or not an Alpaca model
        raise BrokerTransient(f"unreadable answer: {type(exc).__name__}") from exc


def _model(answer: M | RawData) -> M:
    """alpaca-py types every answer as its model or the raw JSON; the raw JSON only comes
    from a client made with raw_data=True, which make_trading_client never makes. A dict
    here is an answer that is not the model: unreadable (a ValueError, as a bad body is)."""
    if isinstance(answer, dict):
        raise ValueError("a raw answer where a model was expected")
    return answer


def _placed(order: Order) -> PlacedOrder:
    return PlacedOrder(
        order_id=str(order.id), client_order_id=order.client_order_id,
        status=str(getattr(order.status, "value", order.status)),
        submitted_at=order.submitted_at.isoformat() if order.submitted_at else None,
        filled_avg_price=str(order.filled_avg_price) if order.filled_avg_price is not None else None,
        filled_at=order.filled_at.isoformat() if order.filled_at else None,
    )


class AlpacaBroker:
    """The handful of Trading API calls the gateway makes."""

    def __init__(self, client: TradingClient) -> None:
        self._client = client
        self._timings: list[tuple[str, float]] = []
        # Row 9's open-orders read runs here while the caller reads the position: one
        # thread with a client of its own (its own session and keep-alive connection),
        # so no requests.Session is ever used by two threads at once.
        self._reads = alpaca_compat.twin(client)
        self._read_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-read")
        self._day = alpaca_compat.twin(client)
        self._day_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-day")
        self._asset = alpaca_compat.twin(client)
        self._asset_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-asset")
        # One lock per connection (client): a keep-warm call (keep_warm.py) is made only on a
        # connection nothing else is using, and never while an order's call is on it.
        self._locks = {name: threading.Lock() for name in (MAIN, READS, DAY, ASSET)}
        self._last_used = {name: time.monotonic() for name in (MAIN, READS, DAY, ASSET)}

    def _on(self, connection: str, call: Callable[[], T]) -> T:
        """A classified call on one connection, which it holds while it runs."""
        with self._locks[connection]:
            try:
                return _classified(call)
            finally:
                self._last_used[connection] = time.monotonic()

    def _timed(self, name: str, call: Callable[[], T]) -> T:
        """A classified call on the main connection whose latency is kept for the metrics
        (failures included)."""
        started = time.perf_counter()
        try:
            return self._on(MAIN, call)
        finally:
            self._timings.append((name, 1000 * (time.perf_counter() - started)))

    def drain_timings(self) -> list[tuple[str, float]]:
        """The calls since the last drain; a worker process runs one task at a time."""
        timings, self._timings = self._timings, []
        return timings

    @property
    def client(self) -> TradingClient:
        """For read-only reports (reconcile); orders go through submit_buy only."""
        return self._client

    def find_order(self, client_order_id: str) -> PlacedOrder | None:
        """The order placed under this client_order_id, or None if the broker has none."""
        try:
            return _placed(self._timed("lookup", lambda: _model(self._client.get_order_by_client_id(client_order_id))))
        except BrokerRejected as exc:
            if exc.status == 404:
                return None
            raise

    def asset(self, ticker: str) -> AssetVerdict:
        """The broker's word on the symbol (GET /v2/assets/{symbol}); a symbol it does not
        know (404, 422) is not tradable. Other failures raise as every call does."""
        symbol = url_symbol(ticker)
        try:
            asset = self._on(ASSET, lambda: _model(self._asset.get_asset(symbol)))
        except BrokerRejected as exc:
            if exc.status in (404, 422):
                return unknown_asset(ticker, f"unknown to the broker: {exc.status} {exc.detail[:80]}")
            raise
        return asset_verdict(ticker, str(getattr(asset.asset_class, "value", asset.asset_class)),
                             asset.tradable, str(getattr(asset.status, "value", asset.status)))

    def exposure(self, ticker: str, day_since: datetime | None = None, look_up_asset: bool = False) -> Exposure:
        """Row 9's facts: the ticker's position, or else its open orders; with `day_since`
        (when the trading day began), also the gateway's entry orders the broker has
        since then, which the daily cap is checked against (the Redis count can be deleted).

        The reads are at the broker at once, so this costs one round trip: the open
        orders are asked on the read thread and the day's orders on the day thread while
        this thread asks the position. Only these GETs run there; an order is sent by the
        caller, after them, never ahead. When a position is found no other answer is waited for.
        """
        symbol = url_symbol(ticker)
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=[ticker], limit=5)
        started = time.perf_counter()
        orders = self._read_thread.submit(self._on, READS, lambda: _model(self._reads.get_orders(request)))
        day: Future[list[Order]] | None = None
        asset: Future[AssetVerdict] | None = None
        if look_up_asset:
            asset = self._asset_thread.submit(self.asset, ticker)
        if day_since is not None:
            today = GetOrdersRequest(status=QueryOrderStatus.ALL, after=day_since, limit=DAY_ORDERS_LIMIT)
            day = self._day_thread.submit(self._on, DAY, lambda: _model(self._day.get_orders(today)))
        try:
            position = self._open_position(symbol)
        except BaseException:
            for pending in (orders, day, asset):
                if pending is not None:
                    pending.cancel()  # not started yet: never sent; in flight: its answer is dropped
            raise
        if position is not None:
            for pending in (orders, day, asset):
                if pending is not None:
                    pending.cancel()
            return Exposure(ticker, position_qty=str(position.qty))
        open_orders = len(self._waited("open_orders", started, orders))
        verdict = self._waited("asset", started, asset) if asset is not None else None
        if day is None:
            return Exposure(ticker, open_orders=open_orders, asset=verdict)
        placed = self._waited("day_orders", started, day)
        entries = sum(1 for o in placed if (o.client_order_id or "").startswith(ENTRY_PREFIX))
        return Exposure(ticker, open_orders=open_orders, entries_today=entries,
                        day_full=len(placed) >= DAY_ORDERS_LIMIT, asset=verdict)

    def _waited(self, name: str, started: float, pending: Future[T]) -> T:
        """The answer of a call run on the read thread, timed from when it was handed over."""
        try:
            return pending.result()
        finally:
            self._timings.append((name, 1000 * (time.perf_counter() - started)))

    def _open_position(self, symbol: str) -> Position | None:
        """The open position, or None when the broker has none (404)."""
        try:
            return self._timed("position", lambda: _model(self._client.get_open_position(symbol)))
        except BrokerRejected as exc:
            if exc.status != 404:
                raise
            return None

    def submit_buy(self, ticker: str, client_order_id: str) -> PlacedOrder:
        """1 share, buy, market, time in force day: the only order this gateway places."""
        request = MarketOrderRequest(
            symbol=ticker, qty=ORDER_QTY, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            client_order_id=client_order_id)
        return _placed(self._timed("submit", lambda: _model(self._client.submit_order(request))))

    def trading_session(self, now: datetime) -> TradingSession | str:
        """Alpaca's clock, and while the market is open its calendar for the clock's date
        (when this session opened): the session row 3 judges the market state by."""
        clock = self._timed("clock", lambda: _model(self._client.get_clock()))
        opens: list[datetime] = []
        if clock.is_open:
            day = clock.timestamp.astimezone(NEW_YORK).date()
            entries = self._timed(
                "calendar", lambda: _model(self._client.get_calendar(GetCalendarRequest(start=day, end=day))))
            opens = [entry.open.replace(tzinfo=NEW_YORK) for entry in entries if entry.date == day]
        return session_from_broker(now, clock.timestamp, clock.is_open, clock.next_open, clock.next_close, opens)

    def probe(self) -> str:
        """A cheap authenticated call, over every client's connection: the account status
        (warm-up opens all three connections; the breaker closes only when all answer)."""
        started = time.perf_counter()
        others = [self._read_thread.submit(self._on, READS, self._reads.get_account),  # its connection too
                  self._day_thread.submit(self._on, DAY, self._day.get_account),
                  self._asset_thread.submit(self._on, ASSET, self._asset.get_account)]
        account = self._on(MAIN, lambda: _model(self._client.get_account()))
        for other in others:
            other.result()
        status = getattr(account.status, "value", account.status)
        return f"account {status} in {1000 * (time.perf_counter() - started):.0f} ms"

    def idle_connections(self, idle_s: float) -> list[str]:
        """The connections (MAIN, READS) no call has used for `idle_s` seconds."""
        now = time.monotonic()
        return [name for name, used in self._last_used.items() if now - used >= idle_s]

    def in_use(self, connection: str) -> bool:
        return self._locks[connection].locked()

    def keep_warm(self, connection: str) -> bool:
        """GET /v2/clock on `connection` (the cheapest authenticated call), so the server
        and whatever is in between do not close it for idleness; a closed one is opened
        again here, ahead of the next order. Skipped (False) when a call is on it: an order
        never waits for a keep-warm call to start. Raises as every broker call does."""
        lock = self._locks[connection]
        if not lock.acquire(blocking=False):
            return False
        try:
            client = {MAIN: self._client, READS: self._reads, DAY: self._day, ASSET: self._asset}[connection]
            try:
                _classified(client.get_clock)
            finally:
                self._last_used[connection] = time.monotonic()
        finally:
            lock.release()
        return True


def _facts(order: Order) -> OrderFacts:
    return OrderFacts(order_id=str(order.id), status=str(getattr(order.status, "value", order.status)),
                      filled_qty=int(float(order.filled_qty or 0)),
                      filled_avg_price=float(order.filled_avg_price) if order.filled_avg_price else None,
                      filled_at=order.filled_at)


def _kind(order: Order) -> str:
    return str(getattr(order.order_type, "value", order.order_type) or getattr(order.type, "value", order.type))


class ExitOrders:
    """The Trading API calls of the position lifecycle, on the broker's main connection:
    lookups of the gateway's own orders, the position, the protect OCO, a cancel, the
    horizon sell and the calendar. Every order is a SELL to close (`position_intent`
    sell_to_close) with a deterministic client_order_id; nothing here decides (the
    decision is core/lifecycle/rules.py), it only asks and sends."""

    def __init__(self, broker: AlpacaBroker) -> None:
        self._broker = broker
        self._client = broker.client

    def order(self, client_order_id: str) -> OrderFacts | None:
        """The order under this client_order_id, or None when the broker has none (404)."""
        try:
            return _facts(self._broker._timed("lookup", lambda: _model(
                self._client.get_order_by_client_id(client_order_id))))
        except BrokerRejected as exc:
            if exc.status == 404:
                return None
            raise

    def protect(self, client_order_id: str, order_id: str | None) -> tuple[OrderFacts, OrderFacts | None] | None:
        """The OCO's two legs (target, stop), by its order id with its legs nested (one
        read); by client_order_id first when the id is not known yet (two reads)."""
        if order_id is None:
            parent = self.order(client_order_id)
            if parent is None:
                return None
            order_id = parent.order_id
        try:
            order = _model(self._broker._timed("lookup", lambda: self._client.get_order_by_id(
                order_id, GetOrderByIdRequest(nested=True))))
        except BrokerRejected as exc:
            if exc.status == 404:
                return None
            raise
        legs = [order, *(order.legs or [])]
        target = next((o for o in legs if _kind(o) == "limit"), order)
        stop = next((o for o in legs if _kind(o) in ("stop", "stop_limit")), None)
        return _facts(target), (_facts(stop) if stop is not None else None)

    def position(self, ticker: str) -> PositionFacts:
        """The account's long position in `ticker` (0 / 0 when none, or when it is short)."""
        position = self._broker._open_position(url_symbol(ticker))
        if position is None:
            return PositionFacts()
        qty = int(float(position.qty or 0))
        available = int(float(position.qty_available or 0)) if position.qty_available is not None else qty
        return PositionFacts(max(0, qty), max(0, min(available, qty)))

    def submit_protect(self, ticker: str, qty: int, prices: ProtectPrices, client_order_id: str) -> PlacedOrder:
        """The OCO sell: a take-profit limit and a stop-loss stop, good till canceled, so
        a horizon past the close keeps its protection overnight (a day OCO would expire
        at the close and leave the position bare until the next step re-placed it)."""
        request = LimitOrderRequest(
            symbol=ticker, qty=qty, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO, limit_price=float(prices.limit),  # the target leg is the order itself
            take_profit=TakeProfitRequest(limit_price=float(prices.limit)),
            stop_loss=StopLossRequest(stop_price=float(prices.stop)), client_order_id=client_order_id,
            position_intent=PositionIntent.SELL_TO_CLOSE)
        return _placed(self._broker._timed("submit", lambda: _model(self._client.submit_order(request))))

    def submit_sell(self, ticker: str, qty: int, client_order_id: str) -> PlacedOrder:
        """The horizon exit: sell `qty` at market, day, to close."""
        request = MarketOrderRequest(
            symbol=ticker, qty=qty, side=OrderSide.SELL, time_in_force=TimeInForce.DAY,
            client_order_id=client_order_id, position_intent=PositionIntent.SELL_TO_CLOSE)
        return _placed(self._broker._timed("submit", lambda: _model(self._client.submit_order(request))))

    def cancel(self, order_id: str) -> bool:
        """Cancel one order (an OCO's legs go together); False when it is no longer
        cancelable (404, or 422: filled or canceled already): the next step reads which."""
        try:
            self._broker._timed("cancel", lambda: self._client.cancel_order_by_id(order_id))
        except BrokerRejected as exc:
            if exc.status in (404, 422):
                return False
            raise
        return True

    def clock(self) -> datetime:
        """The broker's time now (GET /v2/clock): the lifecycle's clock (worker/lifecycle.py)."""
        return self._broker._timed("clock", lambda: _model(self._client.get_clock())).timestamp

    def sessions(self, start: date, end: date) -> list[Session]:
        """The broker's calendar from `start` to `end`: each session's open and close."""
        entries = self._broker._timed("calendar", lambda: _model(
            self._client.get_calendar(GetCalendarRequest(start=start, end=end))))
        return [Session(e.open.replace(tzinfo=NEW_YORK), e.close.replace(tzinfo=NEW_YORK)) for e in entries]


class RateLimitedBroker:
    """The same calls, paid from the shared per-minute broker budget.

    `prepay(n)` takes the slots a whole placement needs at once, so concurrent orders
    cannot each get half their calls and all stall; a call beyond the prepaid ones
    takes its own slot.
    """

    def __init__(self, broker: AlpacaBroker, limit: BrokerRateLimit, prepaid: int = 0) -> None:
        self._broker = broker
        self._limit = limit
        self._prepaid = prepaid  # taken already (by the admission script)

    def prepay(self, slots: int) -> None:
        if slots <= 0:
            return
        self._limit.acquire("placement", slots)
        self._prepaid += slots

    def _pay(self, label: str, slots: int = 1) -> None:
        if self._prepaid >= slots:
            self._prepaid -= slots
        else:
            self._limit.acquire(label, slots)

    def find_order(self, client_order_id: str) -> PlacedOrder | None:
        self._pay("lookup")
        return self._broker.find_order(client_order_id)

    def exposure(self, ticker: str, day_since: datetime | None = None, look_up_asset: bool = False) -> Exposure:
        # the position, the open orders, the day's orders, the asset
        self._pay("exposure", 2 + (day_since is not None) + look_up_asset)
        return self._broker.exposure(ticker, day_since, look_up_asset)

    def asset(self, ticker: str) -> AssetVerdict:
        """The broker's word on the symbol alone (row 9 answered by the account mirror)."""
        self._pay("asset")
        return self._broker.asset(ticker)

    def submit_buy(self, ticker: str, client_order_id: str) -> PlacedOrder:
        self._pay("submit")
        return self._broker.submit_buy(ticker, client_order_id)

    def keep_warm(self, idle_s: float) -> list[str]:
        """A keep-warm call on each connection idle for `idle_s`, one slot each; a
        connection in use is skipped before it is paid for. RateLimited when the budget is
        spent: the calls wait for the next round, the orders never wait for them."""
        warmed = []
        for connection in self._broker.idle_connections(idle_s):
            if self._broker.in_use(connection):
                continue
            self._pay("keep-warm")
            if self._broker.keep_warm(connection):
                warmed.append(connection)
        return warmed
