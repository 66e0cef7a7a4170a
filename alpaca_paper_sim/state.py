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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .ratelimit import DEFAULT_LIMIT_PER_MIN, RateLimiter
from .session import TradingSession, calendar_json, clock_json

STARTING_CASH = Decimal("100000")
DEFAULT_PRICE = Decimal("100.00")
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
ORDER_TYPES = frozenset({"market", "limit"})
TIME_IN_FORCE = frozenset({"day", "gtc", "ioc", "fok", "opg", "cls"})
# Alpaca's "open" query status = every non-terminal order status.
OPEN_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "partially_filled",
        "pending_new",
        "pending_cancel",
        "pending_replace",
        "pending_review",
        "accepted_for_bidding",
        "held",
    }
)
# "echo_headers": a 502 whose message quotes the request's key headers, as a misbehaving
# proxy might: for the tests that prove no secret leaves the gateway.
PRE_FAULTS = frozenset({"500", "503", "429", "403", "slow", "drop", "echo_headers"})
POST_FAULTS = frozenset({"accept_then_drop", "accept_then_500", "accept_then_slow"})
FAULT_MODES = PRE_FAULTS | POST_FAULTS
MAX_CLIENT_ORDER_ID = 128
_QTY_STEP = Decimal("0.000000001")
_RATIO_STEP = Decimal("0.0000000001")


class SimError(Exception):
    """A request the broker refuses; carries the HTTP status and Alpaca error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def invalid(message: str) -> SimError:
    """Alpaca answers request validation failures with 422 / 40010001."""
    return SimError(422, 40010001, message)


ORDER_NOT_FOUND = (404, 40410000, "order not found")
POSITION_NOT_FOUND = (404, 40410000, "position does not exist")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    """RFC 3339 with a trailing Z, like Alpaca (pydantic parses it as aware UTC)."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str, name: str) -> datetime:
    """Parse an ISO query time; '+' may have arrived as ' ' from a raw query string."""
    try:
        dt = datetime.fromisoformat(value.strip().replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"invalid {name}: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_decimal(value: Any, name: str) -> Decimal:
    """Accept JSON numbers or numeric strings (alpaca-py sends floats, Alpaca strings)."""
    if isinstance(value, bool) or value is None:
        raise invalid(f"invalid {name}")
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise invalid(f"invalid {name}") from None
    if not result.is_finite():
        raise invalid(f"invalid {name}")
    return result


def fmt_num(value: Decimal) -> str:
    """Plain decimal string without exponent or trailing zeros: 100000, 1.5."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def fmt_price(value: Decimal) -> str:
    """Cents-style price string ("100.00") unless it needs more precision."""
    if value == value.quantize(Decimal("0.01")):
        return f"{value:.2f}"
    return fmt_num(value)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def asset_id_for(symbol: str) -> str:
    """Stable per-symbol asset UUID so orders and positions agree on asset_id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-paper-sim/asset/{symbol}"))


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
        _parse_bool(params.get("nested"), "nested")  # only simple orders here: nothing to roll up
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
            asset_classes=classes, after_order_id=after_id, before_order_id=before_id,
        )

    def admits(self, order: SimOrder) -> bool:
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
class SimOrder:
    """One order as the broker tracks it; ``to_json`` renders Alpaca's Order shape."""

    id: str
    seq: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    extended_hours: bool
    submitted_at: datetime
    updated_at: datetime
    position_intent: str
    route_at: datetime  # when an order accepted out of session reaches the market ("new")
    fill_at: datetime | None = None  # when an automatic fill is due (None: manual or limit)
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None

    asset_class = "us_equity"  # the simulator trades US equities only

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso(self.submitted_at),
            "updated_at": iso(self.updated_at),
            "submitted_at": iso(self.submitted_at),
            "filled_at": iso(self.filled_at),
            "expired_at": None,
            "expires_at": None,
            "canceled_at": iso(self.canceled_at),
            "failed_at": iso(self.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset_id_for(self.symbol),
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": fmt_num(self.notional) if self.notional is not None else None,
            "qty": fmt_num(self.qty) if self.qty is not None else None,
            "filled_qty": fmt_num(self.filled_qty),
            "filled_avg_price": (
                fmt_price(self.filled_avg_price) if self.filled_avg_price is not None else None
            ),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": fmt_price(self.limit_price) if self.limit_price is not None else None,
            "stop_price": None,
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }


@dataclass
class SimPosition:
    """Signed quantity (negative = short) and average entry price for one symbol."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal

    def to_json(self, price: Decimal) -> dict[str, Any]:
        market_value = self.qty * price
        cost_basis = self.qty * self.avg_entry_price
        pl = market_value - cost_basis
        plpc = (pl / abs(cost_basis)).quantize(_RATIO_STEP) if cost_basis else Decimal(0)
        return {
            "asset_id": asset_id_for(self.symbol),
            "symbol": self.symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": fmt_price(self.avg_entry_price),
            "qty": fmt_num(self.qty),
            "qty_available": fmt_num(self.qty),
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
    """Account, orders, positions, prices, fill policy, session, fault plan and request counters.

    Fills are due at a time, not done by a timer thread: every public method first brings
    the book up to "now" (``_advance``), so each due fill happens at its due time, at the
    price in force then, before anything can observe the book.
    """

    def __init__(
        self,
        fill_delay_s: float = DEFAULT_FILL_DELAY_S,
        session: TradingSession | None = None,
        rate_limit: int = DEFAULT_LIMIT_PER_MIN,
    ) -> None:
        self._lock = threading.RLock()
        self.account_id = str(uuid.uuid4())
        self.account_created_at = utcnow()
        self._initial = (_delay(fill_delay_s), session or TradingSession.new_york(), rate_limit)
        self.reset()

    def _now(self) -> datetime:
        return self._frozen_at or utcnow()

    # ----------------------------------------------------------------- admin
    def reset(self) -> None:
        with self._lock:
            self.fill_delay_s, self.session, limit = self._initial
            self.rate_limiter = RateLimiter(limit)
            self._frozen_at: datetime | None = None
            self._cash = STARTING_CASH
            self._orders: dict[str, SimOrder] = {}
            self._by_client_id: dict[str, SimOrder] = {}
            self._positions: dict[str, SimPosition] = {}
            self._prices: dict[str, Decimal] = {}
            self._faults: list[FaultRule] = []
            self._counters = _Counters()
            self._pending: list[SimOrder] = []  # accepted out of session, or an automatic fill due
            self._seq = 0
            self.fill_policy = "auto"

    def configure(
        self,
        fill: str | None = None,
        price: dict[str, Any] | None = None,
        fill_delay_s: Any = None,
        always_open: Any = None,
        rate_limit: Any = None,
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
            if rate_limit is not None:
                if isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or rate_limit < 1:
                    raise invalid("rate_limit must be a positive integer")
                self.rate_limiter = RateLimiter(rate_limit)
            for symbol, value in (price or {}).items():
                amount = parse_decimal(value, f"price for {symbol}")
                if amount <= 0:
                    raise invalid(f"price for {symbol} must be > 0")
                self._prices[symbol.upper()] = amount

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
            else:
                raise invalid("now must be an ISO time or null")
            self._advance()
            return {"now": iso(self._now()), "frozen": self._frozen_at is not None}

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

    def fill_order(
        self, order_id: str, qty: Any = None, price: Any = None
    ) -> dict[str, Any]:
        """Fill an open order (fully, or by ``qty`` for a partial fill)."""
        with self._lock:
            self._advance()
            order = self._open_order(order_id)
            fill_price = parse_decimal(price, "price") if price is not None else None
            fill_qty = parse_decimal(qty, "qty") if qty is not None else None
            self._fill(order, fill_qty, fill_price)
            return order.to_json()

    def admin_cancel(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            order = self._open_order(order_id)
            order.status, order.canceled_at = "canceled", self._now()
            order.updated_at = order.canceled_at
            return order.to_json()

    def reject_order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            order = self._open_order(order_id)
            order.status, order.failed_at = "rejected", self._now()
            order.updated_at = order.failed_at
            return order.to_json()

    def set_position(self, symbol: Any, qty: Any, avg_entry_price: Any = None) -> None:
        if not isinstance(symbol, str) or not symbol.strip():
            raise invalid("symbol is required")
        symbol = symbol.strip().upper()
        amount = parse_decimal(qty, "qty")
        with self._lock:
            self._advance()
            if amount == 0:
                self._positions.pop(symbol, None)
                return
            entry = (
                parse_decimal(avg_entry_price, "avg_entry_price")
                if avg_entry_price is not None
                else self._prices.get(symbol, DEFAULT_PRICE)
            )
            self._positions[symbol] = SimPosition(symbol, amount, entry)

    def remove_position(self, symbol: str) -> bool:
        with self._lock:
            return self._positions.pop(symbol.upper(), None) is not None

    # --------------------------------------------------------------- trading
    def account_json(self) -> dict[str, Any]:
        with self._lock:
            self._advance()
            values = [p.qty * self._prices.get(s, DEFAULT_PRICE) for s, p in self._positions.items()]
            long_value = sum((v for v in values if v > 0), Decimal(0))
            short_value = sum((v for v in values if v < 0), Decimal(0))
            cash = fmt_num(self._cash)
            equity = fmt_num(self._cash + long_value + short_value)
        return {
            "id": self.account_id,
            "account_number": "PA" + self.account_id.replace("-", "")[:10].upper(),
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": cash,
            "regt_buying_power": cash,
            "daytrading_buying_power": cash,
            "non_marginable_buying_power": cash,
            "options_buying_power": cash,
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
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            raise invalid("symbol is required")
        side = body.get("side")
        if side not in SIDES:
            raise invalid("side must be buy or sell")
        order_type = body.get("type", body.get("order_type"))
        if order_type not in ORDER_TYPES:
            raise invalid("type must be market or limit")
        tif = body.get("time_in_force")
        if tif not in TIME_IN_FORCE:
            raise invalid(f"time_in_force must be one of {sorted(TIME_IN_FORCE)}")
        if body.get("order_class") not in (None, "", "simple"):
            raise invalid("only simple orders are supported")
        qty = notional = limit_price = None
        if body.get("qty") is not None and body.get("notional") is not None:
            raise invalid("qty and notional are mutually exclusive")
        if body.get("qty") is not None:
            qty = parse_decimal(body["qty"], "qty")
            if qty <= 0:
                raise invalid("qty must be > 0")
        elif body.get("notional") is not None:
            notional = parse_decimal(body["notional"], "notional")
            if notional <= 0:
                raise invalid("notional must be > 0")
            if order_type != "market":
                raise invalid("notional is only supported for market orders")
        else:
            raise invalid("qty or notional is required")
        if order_type == "limit":
            if body.get("limit_price") is None:
                raise invalid("limit_price is required for limit orders")
            limit_price = parse_decimal(body["limit_price"], "limit_price")
            if limit_price <= 0:
                raise invalid("limit_price must be > 0")
        client_order_id = body.get("client_order_id")
        if client_order_id in (None, ""):
            client_order_id = str(uuid.uuid4())
        if not isinstance(client_order_id, str):
            raise invalid("client_order_id must be a string")
        if len(client_order_id) > MAX_CLIENT_ORDER_ID:
            raise invalid(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")

        with self._lock:
            self._advance()
            if client_order_id in self._by_client_id:
                raise invalid("client_order_id must be unique")
            now = self._now()
            route_at = self.session.fill_time(now)
            self._seq += 1
            order = SimOrder(
                id=str(uuid.uuid4()),
                seq=self._seq,
                client_order_id=client_order_id,
                symbol=symbol.strip().upper(),
                side=side,
                type=order_type,
                time_in_force=tif,
                qty=qty,
                notional=notional,
                limit_price=limit_price,
                extended_hours=bool(body.get("extended_hours", False)),
                submitted_at=now,
                updated_at=now,
                position_intent=self._intent(symbol.strip().upper(), side),
                route_at=route_at,
                status="new" if route_at == now else "accepted",
            )
            if order_type == "market" and self.fill_policy == "auto":
                order.fill_at = self.session.fill_time(now + timedelta(seconds=self.fill_delay_s))
            self._orders[order.id] = order
            self._by_client_id[client_order_id] = order
            if order.status == "accepted" or order.fill_at is not None:
                self._pending.append(order)
            self._advance()
            return order.to_json()

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
            return [o.to_json() for o in chosen[: query.limit]]

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
            order.status, order.canceled_at = "canceled", self._now()
            order.updated_at = order.canceled_at

    def positions_json(self) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [
                p.to_json(self._prices.get(s, DEFAULT_PRICE))
                for s, p in sorted(self._positions.items())
            ]

    def position_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        key = symbol_or_asset_id.strip()
        with self._lock:
            self._advance()
            position = self._positions.get(key.upper())
            if position is None and _is_uuid(key):  # a symbol never is: no scan on a plain miss
                position = next(
                    (p for s, p in self._positions.items() if asset_id_for(s) == key.lower()), None
                )
            if position is None:
                raise SimError(*POSITION_NOT_FOUND)
            return position.to_json(self._prices.get(position.symbol, DEFAULT_PRICE))

    # -------------------------------------------------------------- internal
    def _advance(self) -> None:
        """Bring the book to now: accepted orders reach the market at the open, due fills fill."""
        now = self._now()
        waiting = []
        for order in self._pending:
            if order.status == "accepted" and order.route_at <= now:
                order.status, order.updated_at = "new", order.route_at
            if order.is_open and order.fill_at is not None and order.fill_at <= now:
                self._fill(order, None, None, at=order.fill_at)
            if order.is_open and (order.status == "accepted" or order.fill_at is not None):
                waiting.append(order)
        self._pending = waiting

    def _intent(self, symbol: str, side: str) -> str:
        """Alpaca's position_intent for a simple equity order: opening or closing what is held."""
        held = self._positions.get(symbol)
        qty = held.qty if held is not None else Decimal(0)
        if side == "buy":
            return "buy_to_close" if qty < 0 else "buy_to_open"
        return "sell_to_close" if qty > 0 else "sell_to_open"

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

    def _fill(
        self, order: SimOrder, qty: Decimal | None, price: Decimal | None, at: datetime | None = None
    ) -> None:
        """Execute (part of) an order: update the order, cash and the position."""
        if price is None:
            price = order.limit_price or self._prices.get(order.symbol, DEFAULT_PRICE)
        if order.qty is not None:
            remaining = order.qty - order.filled_qty
        else:  # notional market order: buy as many (fractional) shares as it affords
            remaining = (order.notional / price).quantize(_QTY_STEP)  # type: ignore[operator]
        if qty is None or qty >= remaining:
            qty = remaining
        if qty <= 0:
            raise invalid("fill qty must be > 0")
        now = at or self._now()
        total = order.filled_qty + qty
        previous = (order.filled_avg_price or Decimal(0)) * order.filled_qty
        order.filled_avg_price = ((previous + price * qty) / total).quantize(_QTY_STEP).normalize()
        order.filled_qty = total
        order.status = "filled" if qty == remaining else "partially_filled"
        order.updated_at = now
        if order.status == "filled":
            order.filled_at = now
        signed = qty if order.side == "buy" else -qty
        self._cash -= signed * price
        self._apply_to_position(order.symbol, signed, price)

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
