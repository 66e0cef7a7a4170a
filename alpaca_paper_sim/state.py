"""In-memory broker behind the Alpaca paper simulator.

Kept free of HTTP so the server stays a thin translation layer and in-process
tests can inspect or drive the broker directly. The HTTP server handles every
connection on its own thread, so every public method takes one lock: a
client_order_id uniqueness check and the order insert must be atomic, or two
concurrent retries of the same submit could both succeed.

Quantities and money are ``Decimal`` internally and strings on the wire,
because Alpaca sends them as strings and the gateway must never see float noise.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from .assets import Asset, AssetBook, asset_from_admin, asset_id_for
from .orders import (
    OrderRequest,
    SimError,
    SimOrder,
    fmt_num,
    fmt_price,
    forbidden,
    invalid,
    iso,
    parse_decimal,
    parse_order,
    replace_fields,
)
from .prices import STEP_S, PriceBook
from .ratelimit import DEFAULT_LIMIT_PER_MIN, RateLimiter
from .session import TradingSession, calendar_json, clock_json

STARTING_CASH = Decimal("100000")
# "auto": a market order fills by itself, `fill_delay_s` after it is accepted and only in session;
# "immediate" is its older name. "manual": only the admin API fills.
FILL_POLICIES = frozenset({"auto", "immediate", "manual"})
DEFAULT_FILL_DELAY_S = 0.5
ASSET_CLASSES = frozenset({"us_equity", "us_option", "crypto", "all"})
# Every GET /v2/orders parameter Alpaca documents; any other is refused, never ignored.
ORDER_QUERY_PARAMS = frozenset({"status", "limit", "after", "until", "direction", "nested", "side", "symbols",
                                "asset_class", "before_order_id", "after_order_id"})
CALENDAR_QUERY_PARAMS = frozenset({"start", "end", "date_type"})
CALENDAR_RANGE = (date(1970, 1, 1), date(2029, 12, 31))  # Alpaca's calendar with no start/end
SIDES = frozenset({"buy", "sell"})
GTC_DAYS = 90  # Alpaca cancels a gtc order 90 days after it was placed
EVENTS_KEPT = 1000  # the last trade updates GET /_sim/events shows
# "echo_headers": a 502 whose message quotes the request's key headers, as a misbehaving
# proxy might: for the tests that prove no secret leaves the gateway.
PRE_FAULTS = frozenset({"500", "503", "429", "403", "slow", "drop", "echo_headers"})
POST_FAULTS = frozenset({"accept_then_drop", "accept_then_500", "accept_then_slow"})
FAULT_MODES = PRE_FAULTS | POST_FAULTS
_QTY_STEP = Decimal("0.000000001")
_RATIO_STEP = Decimal("0.0000000001")


ORDER_NOT_FOUND = (404, 40410000, "order not found")
POSITION_NOT_FOUND = (404, 40410000, "position does not exist")


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str, name: str) -> datetime:
    """Parse an ISO query time; '+' may have arrived as ' ' from a raw query string."""
    try:
        dt = datetime.fromisoformat(value.strip().replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"invalid {name}: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _delay(value: Any) -> float:
    seconds = parse_decimal(value, "fill_delay_s")
    if seconds < 0:
        raise invalid("fill_delay_s must be >= 0")
    return float(seconds)


def _parse_date(value: str | None, name: str, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise invalid(f"invalid {name}: {value!r}") from None


def _refuse_unknown(params: dict[str, str], known: frozenset[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise invalid(f"unknown query parameter(s): {', '.join(unknown)}")


def _parse_bool(value: str | None, name: str) -> bool:
    """true/false in any case: alpaca-py sends Python's "True"."""
    text = (value or "").strip().lower()
    if text in ("", "false"):
        return False
    if text == "true":
        return True
    raise invalid(f"{name} must be true or false")


@dataclass(frozen=True)
class _OrderQuery:
    """GET /v2/orders parameters, validated as Alpaca documents them."""

    status: str
    direction: str
    limit: int
    symbols: frozenset[str]
    side: str | None
    after: datetime | None
    until: datetime | None
    asset_classes: frozenset[str]
    nested: bool
    after_order_id: str | None
    before_order_id: str | None

    @classmethod
    def parse(cls, params: dict[str, str]) -> _OrderQuery:
        _refuse_unknown(params, ORDER_QUERY_PARAMS)
        status = params.get("status") or "open"
        if status not in ("open", "closed", "all"):
            raise invalid("status must be open, closed or all")
        direction = params.get("direction") or "desc"
        if direction not in ("asc", "desc"):
            raise invalid("direction must be asc or desc")
        try:
            limit = int(params.get("limit") or 50)
        except ValueError:
            raise invalid("limit must be an integer") from None
        if not 1 <= limit <= 500:
            raise invalid("limit must be between 1 and 500")
        side = params.get("side") or None
        if side is not None and side not in SIDES:
            raise invalid("side must be buy or sell")
        classes = frozenset(c.strip() for c in (params.get("asset_class") or "").split(",") if c.strip())
        if classes - ASSET_CLASSES:
            raise invalid(f"asset_class must be a list of {sorted(ASSET_CLASSES)}")
        after_id, before_id = params.get("after_order_id") or None, params.get("before_order_id") or None
        if after_id and before_id:
            raise invalid("after_order_id and before_order_id are mutually exclusive")
        if (after_id or before_id) and (params.get("after") or params.get("until")):
            raise invalid("after_order_id / before_order_id cannot be combined with after / until")
        return cls(
            status=status, direction=direction, limit=limit,
            symbols=frozenset(s.strip().upper() for s in (params.get("symbols") or "").split(",") if s.strip()),
            side=side,
            after=parse_time(params["after"], "after") if params.get("after") else None,
            until=parse_time(params["until"], "until") if params.get("until") else None,
            asset_classes=classes, nested=_parse_bool(params.get("nested"), "nested"),
            after_order_id=after_id, before_order_id=before_id,
        )

    def admits(self, order: SimOrder) -> bool:
        if self.nested and order.parent_id is not None:  # rolled up into its parent's legs
            return False
        if (self.status == "open") != order.is_open and self.status != "all":
            return False
        if self.symbols and order.symbol not in self.symbols:
            return False
        if self.side and order.side != self.side:
            return False
        if self.asset_classes and "all" not in self.asset_classes and order.asset_class not in self.asset_classes:
            return False
        if self.after and order.submitted_at <= self.after:  # both bounds exclusive, as documented
            return False
        return not (self.until and order.submitted_at >= self.until)


@dataclass
class SimPosition:
    """Signed quantity (negative = short) and average entry price for one symbol."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal

    def to_json(self, price: Decimal, available: Decimal, asset: Asset | None) -> dict[str, Any]:
        market_value = self.qty * price
        cost_basis = self.qty * self.avg_entry_price
        pl = market_value - cost_basis
        plpc = (pl / abs(cost_basis)).quantize(_RATIO_STEP) if cost_basis else Decimal(0)
        return {
            "asset_id": asset_id_for(self.symbol),
            "symbol": self.symbol,
            "exchange": asset.exchange if asset is not None else "NASDAQ",
            "asset_class": asset.asset_class if asset is not None else "us_equity",
            "asset_marginable": True,
            "avg_entry_price": fmt_price(self.avg_entry_price),
            "qty": fmt_num(self.qty),
            "qty_available": fmt_num(available),
            "side": "long" if self.qty > 0 else "short",
            "market_value": fmt_price(market_value),
            "cost_basis": fmt_price(cost_basis),
            "unrealized_pl": fmt_price(pl),
            "unrealized_plpc": fmt_num(plpc),
            "unrealized_intraday_pl": fmt_price(pl),
            "unrealized_intraday_plpc": fmt_num(plpc),
            "current_price": fmt_price(price),
            "lastday_price": fmt_price(price),
            "change_today": "0",
        }


@dataclass
class FaultRule:
    """One injected failure: applies to the next ``count`` matching trading requests."""

    mode: str
    count: int = 1  # -1 = until cleared
    method: str | None = None
    path: str | None = None
    delay: float = 2.0
    retry_after: float | None = 1.0  # None: a 429 without Retry-After (X-RateLimit-Reset only)
    query: dict[str, str] | None = None  # only requests with these query parameters

    def matches(self, method: str, path: str, query: dict[str, str] | None = None) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.query and any((query or {}).get(k) != v for k, v in self.query.items()):
            return False
        return self.path is None or path.startswith(self.path)


@dataclass
class _Counters:
    order_posts: int = 0
    requests: dict[str, int] = field(default_factory=dict)


class BrokerState:
    """Account, orders, positions, prices, assets, session, fault plan and request counters.

    Nothing happens on a timer thread: every public method first brings the book up to "now"
    (``_advance``), handling what fell due since the last call in time order (an order
    reaching the market at the open, a market order's fill, a limit or stop crossed by the
    price walk, a day order expiring at the close), each at its own instant and price. So a
    frozen clock freezes the market, and advancing it plays everything in between at once.
    """

    def __init__(
        self,
        fill_delay_s: float = DEFAULT_FILL_DELAY_S,
        session: TradingSession | None = None,
        rate_limit: int = DEFAULT_LIMIT_PER_MIN,
        seed: int = 0,
        synthetic_assets: bool = False,
    ) -> None:
        self._lock = threading.RLock()
        self.account_id = str(uuid.uuid4())
        self.account_created_at = utcnow()
        self._initial = (_delay(fill_delay_s), session or TradingSession.new_york(), rate_limit, seed,
                         synthetic_assets)
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self.reset()

    def _now(self) -> datetime:
        return self._frozen_at or utcnow()

    # ----------------------------------------------------------------- admin
    def reset(self) -> None:
        with self._lock:
            self.fill_delay_s, self.session, limit, seed, synthetic = self._initial
            self.rate_limiter = RateLimiter(limit)
            self._frozen_at: datetime | None = None
            self._synced_at = utcnow()
            self._cash = STARTING_CASH
            self._orders: dict[str, SimOrder] = {}
            self._open: list[SimOrder] = []  # the orders not yet done (pruned as they finish): what can move
            self._by_client_id: dict[str, SimOrder] = {}
            self._positions: dict[str, SimPosition] = {}
            self.assets = AssetBook(synthetic=synthetic)
            self.prices = PriceBook(self.session, seed, self._listed_level)
            self._faults: list[FaultRule] = []
            self._counters = _Counters()
            self._events: list[dict[str, Any]] = []
            self._seq = 0
            self.fill_policy = "auto"

    def configure(
        self,
        fill: str | None = None,
        price: dict[str, Any] | None = None,
        fill_delay_s: Any = None,
        always_open: Any = None,
        rate_limit: Any = None,
        seed: Any = None,
        synthetic_assets: Any = None,
    ) -> None:
        with self._lock:
            self._advance()
            if fill is not None:
                if fill not in FILL_POLICIES:
                    raise invalid(f"fill must be one of {sorted(FILL_POLICIES)}")
                self.fill_policy = "auto" if fill == "immediate" else fill
            if fill_delay_s is not None:
                self.fill_delay_s = _delay(fill_delay_s)
            if always_open is not None:
                if not isinstance(always_open, bool):
                    raise invalid("always_open must be true or false")
                holidays = self.session.holidays
                self.session = TradingSession.around_the_clock() if always_open else TradingSession.new_york(holidays)
                self._new_price_book(self.prices.seed)
            if seed is not None:
                if isinstance(seed, bool) or not isinstance(seed, int):
                    raise invalid("seed must be an integer")
                self._new_price_book(seed)
            if synthetic_assets is not None:
                if not isinstance(synthetic_assets, bool):
                    raise invalid("synthetic_assets must be true or false")
                self.assets.synthetic = synthetic_assets
            if rate_limit is not None:
                if isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or rate_limit < 1:
                    raise invalid("rate_limit must be a positive integer")
                self.rate_limiter = RateLimiter(rate_limit)
        if price:
            self.set_prices(price)

    def _new_price_book(self, seed: int) -> None:
        pins = self.prices.pins()
        self.prices = PriceBook(self.session, seed, self._listed_level)
        for symbol, value in pins.items():
            self.prices.pin(symbol, value)

    def set_prices(self, prices: Any) -> dict[str, Any]:
        """Pin symbols at a price (it holds until released with null), then play what it triggers."""
        if not isinstance(prices, dict):
            raise invalid("prices must be an object of symbol: price (or null to release)")
        parsed: dict[str, Decimal | None] = {}
        for symbol, value in prices.items():
            amount = None if value is None else parse_decimal(value, f"price for {symbol}")
            if amount is not None and amount <= 0:
                raise invalid(f"price for {symbol} must be > 0")
            parsed[str(symbol).strip().upper()] = amount
        with self._lock:
            self._advance()
            for symbol, amount in parsed.items():
                self.prices.pin(self._canonical(symbol), amount)
            self._advance(force_check=True)
            return self.quote_prices(list(parsed))

    def quote_prices(self, symbols: list[str]) -> dict[str, Any]:
        with self._lock:
            self._advance()
            now = self._now()
            return {s: fmt_price(self._price(self._canonical(s), now)) for s in symbols}

    def add_asset(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        try:
            asset = asset_from_admin(body)
        except (ValueError, ArithmeticError) as exc:
            raise invalid(str(exc)) from None
        with self._lock:
            self.assets.add(asset)
            self.prices.set_level(asset.symbol, asset.price)  # also drops the walk cached at the old level
            return asset.to_json()

    def add_fault(self, spec: dict[str, Any]) -> FaultRule:
        mode = str(spec.get("mode", ""))
        if mode not in FAULT_MODES:
            raise invalid(f"mode must be one of {sorted(FAULT_MODES)}")
        count = spec.get("count", 1)
        if count is None:
            count = 1
        if isinstance(count, bool) or not isinstance(count, int) or (count < 1 and count != -1):
            raise invalid("count must be a positive integer or -1")
        method = spec.get("method")
        path = spec.get("path")
        delay = spec.get("delay")
        retry_after = spec.get("retry_after")
        query = spec.get("query")
        if query is not None and not (isinstance(query, dict) and all(isinstance(v, str) for v in query.values())):
            raise invalid("query must be an object of strings")
        rule = FaultRule(
            mode=mode,
            count=count,
            method=str(method).upper() if method else None,
            path=str(path) if path else None,
            delay=float(delay) if delay is not None else 2.0,
            retry_after=float(retry_after) if retry_after is not None else (None if "retry_after" in spec else 1.0),
            query={str(k): v for k, v in query.items()} if query else None,
        )
        with self._lock:
            self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str, query: dict[str, str] | None = None) -> FaultRule | None:
        """Consume one use of the first matching rule (rules apply in the order added)."""
        with self._lock:
            for rule in self._faults:
                if rule.matches(method, path, query):
                    if rule.count > 0:
                        rule.count -= 1
                        if rule.count == 0:
                            self._faults.remove(rule)
                    return FaultRule(**rule.__dict__)
            return None

    def set_time(self, now: Any) -> dict[str, Any]:
        """Freeze the simulated market time (an ISO time), or go back to the real clock (null).

        Frozen, so a test can stand at 3 a.m. on a Sunday, then at Monday's open, and see
        exactly what Alpaca would show then, with no waiting and no timing assertion.
        """
        with self._lock:
            self._advance()
            if now is None:
                self._frozen_at = None
            elif isinstance(now, str):
                moment = parse_time(now, "now")
                if self._frozen_at is not None and moment < self._frozen_at:
                    raise invalid("time only moves forward")
                self._frozen_at = moment
                self._synced_at = min(self._synced_at, moment)  # from the real clock to a past instant
            else:
                raise invalid("now must be an ISO time or null")
            self._advance()
            return {"now": iso(self._now()), "frozen": self._frozen_at is not None}

    def advance_time(self, seconds: Any) -> dict[str, Any]:
        """Move the frozen clock forward (freezing it at now first if it runs): everything due
        on the way happens, in order, at its own instant."""
        amount = parse_decimal(seconds, "seconds")
        if amount < 0:
            raise invalid("seconds must be >= 0: time only moves forward")
        with self._lock:
            self._advance()
            self._frozen_at = self._now() + timedelta(seconds=float(amount))
            self._advance()
            return {"now": iso(self._now()), "frozen": True}

    def record_request(self, method: str, path: str) -> None:
        with self._lock:
            key = f"{method} {path}"
            self._counters.requests[key] = self._counters.requests.get(key, 0) + 1
            if method == "POST" and path.rstrip("/") == "/v2/orders":
                self._counters.order_posts += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "order_posts": self._counters.order_posts,
                "orders_created": len(self._orders),
                "requests": dict(self._counters.requests),
            }

    def all_orders(self) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [o.to_json() for o in sorted(self._orders.values(), key=lambda o: o.seq)]

    def events(self) -> list[dict[str, Any]]:
        """The last trade updates, oldest first, as the stream sent them."""
        with self._lock:
            self._advance()
            return list(self._events)

    def sync(self) -> None:
        """Bring the book to now (due fills, triggers, expiries happen and are published)."""
        with self._lock:
            self._advance()

    def listener_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def subscribe(self, deliver: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `deliver` (which must not block) with every trade update from now on; returns
        the function that ends the subscription."""
        with self._lock:
            self._subscribers.append(deliver)

        def unsubscribe() -> None:
            with self._lock:
                if deliver in self._subscribers:
                    self._subscribers.remove(deliver)

        return unsubscribe

    def fill_order(
        self, order_id: str, qty: Any = None, price: Any = None
    ) -> dict[str, Any]:
        """Fill an open order (fully, or by ``qty`` for a partial fill)."""
        with self._lock:
            self._advance()
            order = self._open_order(order_id)
            fill_price = parse_decimal(price, "price") if price is not None else None
            fill_qty = parse_decimal(qty, "qty") if qty is not None else None
            if fill_price is None:
                fill_price = order.limit_price or self._price(order.symbol, self._now())
            self._fill(order, fill_qty, fill_price, self._now())
            return order.to_json()

    def admin_cancel(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            order = self._open_order(order_id)
            self._cancel(order, self._now())
            return order.to_json()

    def reject_order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            order = self._open_order(order_id)
            order.status, order.failed_at = "rejected", self._now()
            order.updated_at = order.failed_at
            self._emit("rejected", order, order.failed_at)
            return order.to_json()

    def set_position(self, symbol: Any, qty: Any, avg_entry_price: Any = None) -> None:
        if not isinstance(symbol, str) or not symbol.strip():
            raise invalid("symbol is required")
        amount = parse_decimal(qty, "qty")
        with self._lock:
            self._advance()
            symbol = self._canonical(symbol.strip().upper())
            if amount == 0:
                self._positions.pop(symbol, None)
                return
            entry = (
                parse_decimal(avg_entry_price, "avg_entry_price")
                if avg_entry_price is not None
                else self._price(symbol, self._now())
            )
            self._positions[symbol] = SimPosition(symbol, amount, entry)

    def remove_position(self, symbol: str) -> bool:
        with self._lock:
            return self._positions.pop(self._canonical(symbol.upper()), None) is not None

    # ---------------------------------------------------------------- assets
    def assets_json(self, params: dict[str, str]) -> list[dict[str, Any]]:
        _refuse_unknown(params, frozenset({"status", "asset_class", "exchange", "attributes"}))
        status = params.get("status") or None
        asset_class = params.get("asset_class") or None
        if asset_class is not None and asset_class not in ASSET_CLASSES - {"all"}:
            raise invalid("asset_class must be us_equity, us_option or crypto")
        with self._lock:
            return [a.to_json() for a in self.assets.listed(status, asset_class, params.get("exchange") or None)]

    def asset_json(self, symbol_or_id: str) -> dict[str, Any]:
        with self._lock:
            asset = self.assets.find(symbol_or_id)
        if asset is None:
            raise SimError(404, 40410000, "asset not found")
        return asset.to_json()

    # --------------------------------------------------------------- trading
    def account_json(self) -> dict[str, Any]:
        with self._lock:
            self._advance()
            now = self._now()
            values = [p.qty * self._price(s, now) for s, p in self._positions.items()]
            long_value = sum((v for v in values if v > 0), Decimal(0))
            short_value = sum((v for v in values if v < 0), Decimal(0))
            cash = fmt_num(self._cash)
            buying_power = fmt_num(max(Decimal(0), self._buying_power(now)))
            equity = fmt_num(self._cash + long_value + short_value)
        return {
            "id": self.account_id,
            "account_number": "PA" + self.account_id.replace("-", "")[:10].upper(),
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": buying_power,
            "regt_buying_power": buying_power,
            "daytrading_buying_power": buying_power,
            "non_marginable_buying_power": buying_power,
            "options_buying_power": buying_power,
            "cash": cash,
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": equity,
            "equity": equity,
            "last_equity": equity,
            "long_market_value": fmt_num(long_value),
            "short_market_value": fmt_num(short_value),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "multiplier": "1",
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "shorting_enabled": True,
            "daytrade_count": 0,
            "options_approved_level": 0,
            "options_trading_level": 0,
            "created_at": iso(self.account_created_at),
        }

    def clock_json(self) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return clock_json(self.session, self._now())

    def calendar_json(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Alpaca's /v2/calendar: the trading days from `start` to `end` (dates, inclusive)."""
        _refuse_unknown(params, CALENDAR_QUERY_PARAMS)
        if (params.get("date_type") or "TRADING").upper() != "TRADING":
            raise invalid("date_type SETTLEMENT is not served by the simulator; use TRADING")
        start = _parse_date(params.get("start"), "start", CALENDAR_RANGE[0])
        end = _parse_date(params.get("end"), "end", CALENDAR_RANGE[1])
        with self._lock:
            return [calendar_json(self.session, day) for day in self.session.days(start, end)]

    def submit_order(self, body: Any) -> dict[str, Any]:
        with self._lock:
            request = parse_order(body, self.assets.find)
            self._advance()
            order = self._book(request)
            self._advance()
            return order.to_json()

    def replace_order(self, order_id: str, body: Any) -> dict[str, Any]:
        """PATCH /v2/orders/{id}: a new order takes the old one's place (the old is `replaced`)."""
        changes = replace_fields(body)
        with self._lock:
            self._advance()
            old = self._open_order(order_id)
            if old.status == "held" or old.type == "market":
                raise SimError(422, 42210000, f"order is not replaceable in \"{old.status}\" state")
            now = self._now()
            cid = str(changes.get("client_order_id") or uuid.uuid4())
            if cid in self._by_client_id:
                raise invalid("client_order_id must be unique")
            self._seq += 1
            new = SimOrder(**{**old.__dict__, "legs": list(old.legs)})
            new.id, new.seq, new.client_order_id = str(uuid.uuid4()), self._seq, cid
            new.submitted_at = new.updated_at = now
            new.qty = changes.get("qty", old.qty)  # type: ignore[assignment]
            new.limit_price = changes.get("limit_price", old.limit_price)  # type: ignore[assignment]
            new.stop_price = changes.get("stop_price", old.stop_price)  # type: ignore[assignment]
            if "trail" in changes:
                if old.trail_percent is not None:
                    new.trail_percent = changes["trail"]  # type: ignore[assignment]
                else:
                    new.trail_price = changes["trail"]  # type: ignore[assignment]
            new.time_in_force = str(changes.get("time_in_force", old.time_in_force))
            new.replaces, new.filled_qty, new.filled_avg_price = old.id, Decimal(0), None
            if new.qty is not None and new.qty <= 0:
                raise invalid("qty must be > 0")
            new.active_since = now if old.status != "accepted" else None
            new.expires_at = self._expiry(new.time_in_force, new.route_at)
            old.status, old.replaced_at, old.replaced_by, old.updated_at = "replaced", now, new.id, now
            self._orders[new.id] = new
            self._open.append(new)
            self._by_client_id[cid] = new
            self._swap_in_family(old, new)
            self._emit("replaced", old, now)
            self._emit("new", new, now)
            self._advance()
            return new.to_json()

    def list_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Alpaca's GET /v2/orders: every documented parameter honoured, any other refused (422)."""
        query = _OrderQuery.parse(params)
        with self._lock:
            self._advance()
            after_seq = self._seq_of(query.after_order_id, "after_order_id") if query.after_order_id else None
            before_seq = self._seq_of(query.before_order_id, "before_order_id") if query.before_order_id else None
            chosen = [
                o for o in self._orders.values()
                if query.admits(o) and (after_seq is None or o.seq > after_seq)
                and (before_seq is None or o.seq < before_seq)
            ]
            chosen.sort(key=lambda o: o.seq, reverse=query.direction == "desc")
            return [o.to_json(nested=query.nested) for o in chosen[: query.limit]]

    def _seq_of(self, order_id: str, name: str) -> int:
        order = self._orders.get(order_id.strip().lower())
        if order is None:
            raise invalid(f"{name} is not an order of this account")
        return order.seq

    def get_order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return self._find(order_id).to_json()

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            order = self._by_client_id.get(client_order_id)
            if order is None:
                raise SimError(*ORDER_NOT_FOUND)
            return order.to_json()

    def cancel_order(self, order_id: str) -> None:
        with self._lock:
            self._advance()
            order = self._find(order_id)
            if not order.is_open:
                raise SimError(422, 42210000, f'order is already in "{order.status}" state')
            self._cancel(order, self._now())

    def cancel_all(self) -> list[dict[str, Any]]:
        """DELETE /v2/orders: every open order canceled; one status per order (HTTP 207)."""
        with self._lock:
            self._advance()
            now = self._now()
            answers = []
            for order in sorted(self._open, key=lambda o: o.seq):
                if order.is_open and order.parent_id is None:
                    self._cancel(order, now)
                    answers.append({"id": order.id, "status": 200, "body": order.to_json()})
            return answers

    def close_position(self, symbol_or_id: str, params: dict[str, str]) -> dict[str, Any]:
        """DELETE /v2/positions/{symbol}: a market order for all of it, or `qty` / `percentage`."""
        _refuse_unknown(params, frozenset({"qty", "percentage"}))
        if params.get("qty") and params.get("percentage"):
            raise invalid("qty and percentage are mutually exclusive")
        with self._lock:
            self._advance()
            position = self._position(symbol_or_id)
            held = abs(position.qty)
            if params.get("qty"):
                qty = parse_decimal(params["qty"], "qty")
            elif params.get("percentage"):
                percent = parse_decimal(params["percentage"], "percentage")
                if not 0 < percent <= 100:
                    raise invalid("percentage must be in (0, 100]")
                qty = (held * percent / 100).quantize(_QTY_STEP)
            else:
                qty = held
            if not 0 < qty <= held:
                raise forbidden(f"insufficient qty available for order (requested: {fmt_num(qty)}, "
                                f"available: {fmt_num(held)})")
            side = "sell" if position.qty > 0 else "buy"
            body = {"symbol": position.symbol, "qty": str(qty), "side": side, "type": "market",
                    "time_in_force": "day"}
            order = self._book(parse_order(body, self.assets.find))
            self._advance()
            return order.to_json()

    def close_all_positions(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """DELETE /v2/positions: a closing market order per position (HTTP 207), after
        canceling every open order when `cancel_orders=true`."""
        _refuse_unknown(params, frozenset({"cancel_orders"}))
        cancel = _parse_bool(params.get("cancel_orders"), "cancel_orders")
        with self._lock:
            if cancel:
                self.cancel_all()
            answers = []
            for symbol in sorted(self._positions):
                try:
                    answers.append({"symbol": symbol, "status": 200, "body": self.close_position(symbol, {})})
                except SimError as exc:
                    answers.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
            return answers

    def positions_json(self) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [self._position_json(p) for _, p in sorted(self._positions.items())]

    def position_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return self._position_json(self._position(symbol_or_asset_id))

    # ----------------------------------------------------------- market data
    def price_book(self) -> tuple[PriceBook, datetime]:
        """The walk and the simulated now, for the market-data endpoints (under the lock)."""
        self._advance()
        return self.prices, self._now()

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def canonical(self, symbol: str) -> str:
        return self._canonical(symbol)

    # -------------------------------------------------------------- internal
    def _canonical(self, symbol: str) -> str:
        asset = self.assets.find(symbol)
        return asset.symbol if asset is not None else symbol.strip().upper()

    def _price(self, symbol: str, at: datetime) -> Decimal:
        return self.prices.price(symbol, at)

    def _listed_level(self, symbol: str) -> Decimal | None:
        asset = self.assets.find(symbol)
        return asset.price if asset is not None else None

    def _position(self, symbol_or_asset_id: str) -> SimPosition:
        key = symbol_or_asset_id.strip()
        position = self._positions.get(self._canonical(key))
        if position is None and _is_uuid(key):  # a symbol never is: no scan on a plain miss
            position = next((p for s, p in self._positions.items() if asset_id_for(s) == key.lower()), None)
        if position is None:
            raise SimError(*POSITION_NOT_FOUND)
        return position

    def _position_json(self, position: SimPosition) -> dict[str, Any]:
        available = self._available(position.symbol)
        return position.to_json(self._price(position.symbol, self._now()), available,
                                self.assets.find(position.symbol))

    def _reserving(self, side: str, symbol: str | None = None) -> list[SimOrder]:
        """Open (not held) orders on `side`, one per OCO group (a group's orders share shares)."""
        seen: dict[str, SimOrder] = {}
        for order in self._open:
            if order.is_open and order.status != "held" and order.side == side and (
                    symbol is None or order.symbol == symbol):
                key = order.oco_group or order.id
                if key not in seen or order.remaining > seen[key].remaining:
                    seen[key] = order
        return list(seen.values())

    def _available(self, symbol: str) -> Decimal:
        position = self._positions.get(symbol)
        held = position.qty if position is not None else Decimal(0)
        if held <= 0:
            return abs(held) - sum((o.remaining for o in self._reserving("buy", symbol)), Decimal(0)) \
                if held < 0 else Decimal(0)
        return held - sum((o.remaining for o in self._reserving("sell", symbol)), Decimal(0))

    def _buying_power(self, now: datetime) -> Decimal:
        reserved = Decimal(0)
        for order in self._reserving("buy"):
            if order.notional is not None:
                reserved += order.notional
            else:
                reserved += order.remaining * (order.limit_price or order.stop_price or self._price(order.symbol, now))
        return self._cash - reserved

    def _book(self, request: OrderRequest) -> SimOrder:
        """Check the request against the account, then book it (with its legs)."""
        now = self._now()
        client_order_id = request.client_order_id or str(uuid.uuid4())
        if client_order_id in self._by_client_id:
            raise invalid("client_order_id must be unique")
        price = self._price(request.symbol, now)
        intent = self._check_account(request, price, now)
        route_at = self.session.fill_time(now) if request.asset.asset_class != "crypto" else now
        order = self._new_order(request, request.side, request.type, client_order_id, intent, route_at, now,
                                limit_price=request.limit_price, stop_price=request.stop_price)
        order.order_class = request.order_class
        order.trail_price, order.trail_percent = request.trail_price, request.trail_percent
        self._legs(order, request, route_at, now)
        if order.status == "new":
            self._emit("new", order, now)
        return order

    def _new_order(self, request: OrderRequest, side: str, order_type: str, client_order_id: str, intent: str,
                   route_at: datetime, now: datetime, limit_price: Decimal | None, stop_price: Decimal | None,
                   held: bool = False) -> SimOrder:
        self._seq += 1
        status = "held" if held else ("new" if route_at == now else "accepted")
        order = SimOrder(
            id=str(uuid.uuid4()), seq=self._seq, client_order_id=client_order_id, symbol=request.symbol,
            asset_class=request.asset.asset_class, side=side, type=order_type,
            time_in_force=request.time_in_force, qty=request.qty, notional=request.notional,
            submitted_at=now, updated_at=now, position_intent=intent, route_at=route_at,
            expires_at=self._expiry(request.time_in_force, route_at),
            limit_price=limit_price, stop_price=stop_price, extended_hours=request.extended_hours,
            status=status, active_since=now if status == "new" else None,
        )
        if order_type == "market" and self.fill_policy == "auto" and not held:
            due = now + timedelta(seconds=self.fill_delay_s)
            order.fill_at = due if request.asset.asset_class == "crypto" else self.session.fill_time(due)
        self._orders[order.id] = order
        self._open.append(order)
        self._by_client_id[client_order_id] = order
        return order

    def _legs(self, parent: SimOrder, request: OrderRequest, route_at: datetime, now: datetime) -> None:
        """Bracket and OTO legs wait `held` for the entry's fill; an OCO's stop leg works at once
        beside its limit parent. The exits of one entry form one OCO group."""
        if request.order_class == "simple":
            return
        exit_side = "sell" if request.side == "buy" else "buy"
        exit_intent = ("sell_to_close" if request.side == "buy" else "buy_to_close")
        specs = []
        if request.order_class == "oco":
            parent.limit_price = request.take_profit.limit_price  # type: ignore[union-attr]
            specs = [request.stop_loss]
            exit_side, exit_intent, held = request.side, parent.position_intent, False
            parent.oco_group = parent.id
        else:
            specs = [s for s in (request.take_profit, request.stop_loss) if s is not None]
            held = True
        for spec in specs:
            assert spec is not None
            leg = self._new_order(request, exit_side, spec.type, str(uuid.uuid4()), exit_intent, route_at, now,
                                  limit_price=spec.limit_price, stop_price=spec.stop_price, held=held)
            leg.order_class, leg.parent_id = request.order_class, parent.id
            leg.oco_group = parent.id if (request.order_class != "oto" or held) else None
            parent.legs.append(leg)

    def _check_account(self, request: OrderRequest, price: Decimal, now: datetime) -> str:
        """Alpaca's account checks (403): shares held, shorting, buying power; the intent."""
        position = self._positions.get(request.symbol)
        held = position.qty if position is not None else Decimal(0)
        if request.side == "sell" and request.order_class != "oco":
            intent = "sell_to_close" if held > 0 else "sell_to_open"
        elif request.side == "sell":
            intent = "sell_to_close"
        else:
            intent = "buy_to_close" if held < 0 else "buy_to_open"
        if request.position_intent is not None:
            if request.position_intent.endswith("close") and intent.endswith("open"):
                raise forbidden(f"position_intent {request.position_intent}: no {request.symbol} position to close")
            if request.position_intent.endswith("open") and intent.endswith("close") and request.side == "sell":
                raise forbidden(f"position_intent {request.position_intent}: sell the long {request.symbol} "
                                f"position with sell_to_close first")
            intent = request.position_intent
        qty = request.qty if request.qty is not None else (request.notional or Decimal(0)) / price
        if request.side == "sell":
            if held > 0:
                available = self._available(request.symbol)
                if qty > available:
                    raise forbidden(f"insufficient qty available for order (requested: {fmt_num(qty)}, "
                                    f"available: {fmt_num(available)})")
            else:
                asset = request.asset
                if not (asset.shortable and asset.easy_to_borrow) or asset.asset_class != "us_equity":
                    raise forbidden(f"asset {asset.symbol} cannot be sold short")
                if request.fractional:
                    raise forbidden("fractional orders cannot be sold short")
        if request.side == "buy" and held >= 0:
            cost = request.notional if request.notional is not None else \
                qty * (request.limit_price or request.stop_price or price)
            if cost > self._buying_power(now):
                raise forbidden("insufficient buying power")
        return intent

    def _expiry(self, tif: str, route_at: datetime) -> datetime:
        """A day order lives until its session's close; gtc until the close 90 days on."""
        if tif == "gtc":
            return self.session.next_close(route_at + timedelta(days=GTC_DAYS))
        return self.session.next_close(route_at)

    def _swap_in_family(self, old: SimOrder, new: SimOrder) -> None:
        for order in self._orders.values():
            order.legs = [new if leg is old else leg for leg in order.legs]
            if order.parent_id == old.id:
                order.parent_id = new.id
            if order.oco_group == old.id:
                order.oco_group = new.id
        if new.oco_group == old.id:
            new.oco_group = new.id

    def _advance(self, force_check: bool = False) -> None:
        """Bring the book to now: play every due event in time order (see the class docstring)."""
        now = self._now()
        start = self._synced_at
        self._open = [o for o in self._open if o.is_open]
        if now < start:
            return  # the real clock after a frozen future: nothing new until it catches up
        while True:
            due = self._next_event(start, now, force_check)
            if due is None:
                break
            at, action = due
            action()
            start = max(start, at)
            force_check = False
        self._synced_at = now

    def _next_event(self, start: datetime, end: datetime,
                    force_check: bool) -> tuple[datetime, Callable[[], None]] | None:
        best: tuple[datetime, int, Callable[[], None]] | None = None

        def consider(at: datetime, seq: int, action: Callable[[], None]) -> None:
            nonlocal best
            if at <= end and (best is None or (at, seq) < best[:2]):
                best = (at, seq, action)

        for order in list(self._open):
            if not order.is_open or order.status == "held":
                continue
            if order.status == "accepted":
                consider(order.route_at, order.seq, partial(self._route, order))
                continue
            if order.expires_at <= end:
                consider(order.expires_at, order.seq, partial(self._expire, order))
            if order.type == "market":
                if order.fill_at is not None:
                    consider(order.fill_at, order.seq, partial(self._fill_market, order))
                continue
            if self.fill_policy == "manual":
                continue
            since = max(start, order.active_since or start)
            hit = self._crossing(order, since, end)
            if hit is not None:
                at, price = hit
                consider(at, order.seq, partial(self._trigger, order, at, price))
        return (best[0], best[2]) if best is not None else None

    def _route(self, order: SimOrder) -> None:
        order.status, order.updated_at, order.active_since = "new", order.route_at, order.route_at
        self._emit("new", order, order.route_at)

    def _fill_market(self, order: SimOrder) -> None:
        at = order.fill_at
        assert at is not None
        self._fill(order, None, self._price(order.symbol, at), at)

    def _expire(self, order: SimOrder) -> None:
        order.status, order.expired_at, order.updated_at = "expired", order.expires_at, order.expires_at
        self._emit("expired", order, order.expires_at)
        for leg in order.legs:
            if leg.is_open:
                self._cancel(leg, order.expires_at)

    def _trigger(self, order: SimOrder, at: datetime, price: Decimal) -> None:
        if order.type == "stop_limit" and not order.triggered:
            order.triggered = True
            limit = order.limit_price or price
            marketable = price <= limit if order.side == "buy" else price >= limit
            if not marketable:
                order.active_since = at
                return
        self._fill(order, None, price, at)

    def _crossing(self, order: SimOrder, since: datetime, end: datetime) -> tuple[datetime, Decimal] | None:
        """The first instant in [since, end] the price reaches the order's level, and the fill price:
        at `since` itself or at a session's first price the current price (a limit fills at it or
        better, a stop at market); crossed on the walk, the level itself."""
        buy = order.side == "buy"
        previous: tuple[datetime, float] | None = None
        if self.session.is_open(since) or order.asset_class == "crypto":
            first = self._price(order.symbol, since)
            if _crosses(order, first, buy):
                return since, first
            _track(order, first, buy)
            previous = (since, float(first))
        for point in self.prices.points(order.symbol, since, end):
            current = Decimal(str(round(point.price, 2)))
            if previous is None or point.at - previous[0] > timedelta(seconds=STEP_S):  # a session's open
                if _crosses(order, current, buy):
                    return point.at, current
            elif _crosses(order, current, buy):
                level = _level(order, buy)
                return _cross_time(previous, point.at, point.price, float(level)), level
            _track(order, current, buy)
            previous = (point.at, point.price)
        return None

    def _find(self, order_id: str) -> SimOrder:
        order = self._orders.get(order_id.strip().lower())
        if order is None:
            raise SimError(*ORDER_NOT_FOUND)
        return order

    def _open_order(self, order_id: str) -> SimOrder:
        order = self._find(order_id)
        if not order.is_open:
            raise SimError(422, 42210000, f'order is already in "{order.status}" state')
        return order

    def _cancel(self, order: SimOrder, at: datetime) -> None:
        """Cancel an order, its legs, and its OCO partner (a bracket's exits go together)."""
        order.status, order.canceled_at, order.updated_at = "canceled", at, at
        self._emit("canceled", order, at)
        for other in list(self._open):
            related = other.parent_id == order.id or (
                order.oco_group is not None and other.oco_group == order.oco_group and other is not order)
            if related and other.is_open:
                self._cancel(other, at)

    def _fill(self, order: SimOrder, qty: Decimal | None, price: Decimal, at: datetime) -> None:
        """Execute (part of) an order: update the order, cash and the position; then its family."""
        if order.qty is not None:
            remaining = order.qty - order.filled_qty
        else:  # notional market order: buy as many (fractional) shares as it affords
            remaining = (order.notional / price).quantize(_QTY_STEP)  # type: ignore[operator]
            order.qty = None
        if qty is None or qty >= remaining:
            qty = remaining
        if qty <= 0:
            raise invalid("fill qty must be > 0")
        total = order.filled_qty + qty
        previous = (order.filled_avg_price or Decimal(0)) * order.filled_qty
        order.filled_avg_price = ((previous + price * qty) / total).quantize(_QTY_STEP).normalize()
        order.filled_qty = total
        order.status = "filled" if qty == remaining else "partially_filled"
        order.updated_at = at
        if order.status == "filled":
            order.filled_at = at
        signed = qty if order.side == "buy" else -qty
        self._cash -= signed * price
        self._apply_to_position(order.symbol, signed, price)
        position = self._positions.get(order.symbol)
        self._emit("fill" if order.status == "filled" else "partial_fill", order, at, price=price, qty=qty,
                   position_qty=position.qty if position is not None else Decimal(0))
        if order.status != "filled":
            return
        if order.oco_group is not None:
            for other in list(self._open):
                if other is not order and other.oco_group == order.oco_group and other.is_open:
                    self._cancel_one(other, at)
        for leg in order.legs:
            if leg.status == "held":
                leg.status, leg.active_since, leg.updated_at = "new", at, at
                leg.route_at = at
                self._emit("new", leg, at)

    def _cancel_one(self, order: SimOrder, at: datetime) -> None:
        order.status, order.canceled_at, order.updated_at = "canceled", at, at
        self._emit("canceled", order, at)

    def _emit(self, event: str, order: SimOrder, at: datetime, price: Decimal | None = None,
              qty: Decimal | None = None, position_qty: Decimal | None = None) -> None:
        """One trade update, as Alpaca's stream sends it, to every subscriber (and the log)."""
        data: dict[str, Any] = {"event": event, "timestamp": iso(at), "order": order.to_json()}
        if event in ("fill", "partial_fill"):
            data.update(execution_id=str(uuid.uuid4()), price=fmt_price(price or Decimal(0)),
                        qty=fmt_num(qty or Decimal(0)), position_qty=fmt_num(position_qty or Decimal(0)))
        message = {"stream": "trade_updates", "data": data}
        self._events.append(message)
        del self._events[:-EVENTS_KEPT]
        for deliver in list(self._subscribers):
            deliver(message)

    def _apply_to_position(self, symbol: str, signed_qty: Decimal, price: Decimal) -> None:
        position = self._positions.get(symbol)
        if position is None:
            self._positions[symbol] = SimPosition(symbol, signed_qty, price)
            return
        new_qty = position.qty + signed_qty
        if new_qty == 0:
            del self._positions[symbol]
            return
        if position.qty * signed_qty > 0:  # adding to the position: weighted average entry
            cost = position.avg_entry_price * abs(position.qty) + price * abs(signed_qty)
            position.avg_entry_price = (cost / abs(new_qty)).quantize(_QTY_STEP).normalize()
        elif position.qty * new_qty < 0:  # flipped long <-> short: the remainder is new
            position.avg_entry_price = price
        position.qty = new_qty


def _level(order: SimOrder, buy: bool) -> Decimal:
    """The price that triggers the order: its limit, its stop, or the trail off the high-water mark."""
    if order.type == "limit" or (order.type == "stop_limit" and order.triggered):
        assert order.limit_price is not None
        return order.limit_price
    if order.type in ("stop", "stop_limit"):
        assert order.stop_price is not None
        return order.stop_price
    hwm = order.hwm or Decimal(0)
    offset = hwm * order.trail_percent / 100 if order.trail_percent is not None else order.trail_price or Decimal(0)
    return (hwm + offset if buy else hwm - offset).quantize(Decimal("0.01"))


def _crosses(order: SimOrder, price: Decimal, buy: bool) -> bool:
    """A buy limit fills at or below its limit, a buy stop triggers at or above its stop (and the
    reverse for sells); a trailing stop is a stop at its trail level."""
    if order.type == "trailing_stop" and order.hwm is None:
        return False
    level = _level(order, buy)
    is_limit = order.type == "limit" or (order.type == "stop_limit" and order.triggered)
    if is_limit:
        return price <= level if buy else price >= level
    return price >= level if buy else price <= level


def _track(order: SimOrder, price: Decimal, buy: bool) -> None:
    """A sell trail follows the high-water mark up; a buy trail follows the low down."""
    if order.type != "trailing_stop":
        return
    if order.hwm is None:
        order.hwm = price
    else:
        order.hwm = min(order.hwm, price) if buy else max(order.hwm, price)


def _cross_time(previous: tuple[datetime, float], at: datetime, price: float, level: float) -> datetime:
    """When the straight line from the previous point to this one reaches `level`."""
    start, before = previous
    if price == before:
        return at
    fraction = min(1.0, max(0.0, (level - before) / (price - before)))
    return start + (at - start) * fraction
