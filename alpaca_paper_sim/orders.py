"""Orders as Alpaca keeps them: the order record, its JSON, and the checks of a new order's body.

Pure: the request is validated here against the asset it names (order types, classes, legs,
time in force, fractional, extended hours, crypto and options rules) before the broker state
looks at the account (buying power, qty available, shorting), which needs the book and its lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .assets import Asset, asset_id_for

SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
ORDER_CLASSES = frozenset({"simple", "bracket", "oco", "oto"})
TIME_IN_FORCE = frozenset({"day", "gtc", "ioc", "fok", "opg", "cls"})
CRYPTO_TIME_IN_FORCE = frozenset({"gtc", "ioc"})
INTENTS = frozenset({"buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"})
# Alpaca's "open" query status = every non-terminal order status.
OPEN_STATUSES = frozenset({"new", "accepted", "partially_filled", "pending_new", "pending_cancel",
                           "pending_replace", "pending_review", "accepted_for_bidding", "held"})
MAX_CLIENT_ORDER_ID = 128


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


def forbidden(message: str) -> SimError:
    """Alpaca answers what the account cannot afford or does not hold with 403 / 40310000."""
    return SimError(403, 40310000, message)


def iso(dt: datetime | None) -> str | None:
    """RFC 3339 with a trailing Z, like Alpaca (pydantic parses it as aware UTC)."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


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


def _opt(value: Decimal | None, fmt: Any = fmt_price) -> str | None:
    return fmt(value) if value is not None else None


@dataclass
class SimOrder:
    """One order as the broker tracks it; ``to_json`` renders Alpaca's Order shape."""

    id: str
    seq: int
    client_order_id: str
    symbol: str
    asset_class: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    submitted_at: datetime
    updated_at: datetime
    position_intent: str
    route_at: datetime  # when an order accepted out of session reaches the market ("new")
    expires_at: datetime
    order_class: str = "simple"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    status: str = "new"
    active_since: datetime | None = None  # working in the market since (None: accepted or held)
    fill_at: datetime | None = None  # a market order's automatic fill (None: manual policy)
    triggered: bool = False  # a stop_limit whose stop was reached works as a limit
    legs: list[SimOrder] = field(default_factory=list)
    parent_id: str | None = None
    oco_group: str | None = None  # orders of one group cancel each other when one fills
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return (self.qty or Decimal(0)) - self.filled_qty

    def to_json(self, nested: bool = True) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso(self.submitted_at),
            "updated_at": iso(self.updated_at),
            "submitted_at": iso(self.submitted_at),
            "filled_at": iso(self.filled_at),
            "expired_at": iso(self.expired_at),
            "expires_at": iso(self.expires_at),
            "canceled_at": iso(self.canceled_at),
            "failed_at": iso(self.failed_at),
            "replaced_at": iso(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": asset_id_for(self.symbol),
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": _opt(self.notional, fmt_num),
            "qty": _opt(self.qty, fmt_num),
            "filled_qty": fmt_num(self.filled_qty),
            "filled_avg_price": _opt(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": _opt(self.limit_price),
            "stop_price": _opt(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": [leg.to_json() for leg in self.legs] if self.legs and nested else None,
            "trail_percent": _opt(self.trail_percent, fmt_num),
            "trail_price": _opt(self.trail_price),
            "hwm": _opt(self.hwm),
            "subtag": None,
            "source": None,
        }


@dataclass(frozen=True)
class LegSpec:
    """A take-profit (limit) or stop-loss (stop, or stop_limit with a limit) leg."""

    type: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class OrderRequest:
    """A validated POST /v2/orders body: what the broker state books, if the account allows."""

    symbol: str
    asset: Asset
    side: str
    type: str
    time_in_force: str
    order_class: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    client_order_id: str | None
    position_intent: str | None
    take_profit: LegSpec | None
    stop_loss: LegSpec | None

    @property
    def fractional(self) -> bool:
        return self.notional is not None or (self.qty is not None and self.qty != self.qty.to_integral_value())


def _positive(body: dict[str, Any], key: str) -> Decimal | None:
    if body.get(key) is None:
        return None
    value = parse_decimal(body[key], key)
    if value <= 0:
        raise invalid(f"{key} must be > 0")
    return value


def _leg(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    leg = body.get(key)
    if leg is None:
        return None
    if not isinstance(leg, dict):
        raise invalid(f"{key} must be an object")
    return leg


def parse_order(body: Any, find_asset: Any) -> OrderRequest:
    """Validate a new order's body as Alpaca does, in Alpaca's order; the first refusal wins."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        raise invalid("symbol is required")
    asset: Asset | None = find_asset(symbol)
    if asset is None:
        raise invalid(f"could not find asset \"{symbol.strip().upper()}\"")
    if asset.status != "active" or not asset.tradable:
        raise invalid(f"asset {asset.symbol} is not active")
    side = body.get("side")
    if side not in SIDES:
        raise invalid("side must be buy or sell")
    order_type = body.get("type", body.get("order_type"))
    if order_type not in ORDER_TYPES:
        raise invalid(f"type must be one of {sorted(ORDER_TYPES)}")
    tif = body.get("time_in_force")
    if tif not in TIME_IN_FORCE:
        raise invalid(f"time_in_force must be one of {sorted(TIME_IN_FORCE)}")
    order_class = body.get("order_class") or "simple"
    if order_class not in ORDER_CLASSES:
        raise invalid(f"order_class must be one of {sorted(ORDER_CLASSES)}")
    if body.get("qty") is not None and body.get("notional") is not None:
        raise invalid("qty and notional are mutually exclusive")
    qty, notional = _positive(body, "qty"), _positive(body, "notional")
    if qty is None and notional is None:
        raise invalid("qty or notional is required")
    if notional is not None and order_type != "market":
        raise invalid("notional is only supported for market orders")
    limit_price, stop_price = _positive(body, "limit_price"), _positive(body, "stop_price")
    trail_price, trail_percent = _positive(body, "trail_price"), _positive(body, "trail_percent")
    if order_type in ("limit", "stop_limit") and limit_price is None:
        raise invalid(f"limit_price is required for {order_type} orders")
    if order_type in ("stop", "stop_limit") and stop_price is None:
        raise invalid(f"stop_price is required for {order_type} orders")
    if order_type == "trailing_stop" and (trail_price is None) == (trail_percent is None):
        raise invalid("trailing_stop orders need exactly one of trail_price or trail_percent")
    if order_type in ("market", "stop", "trailing_stop") and limit_price is not None:
        raise invalid(f"limit_price is not allowed for {order_type} orders")
    extended_hours = body.get("extended_hours", False)
    if not isinstance(extended_hours, bool):
        raise invalid("extended_hours must be true or false")
    if extended_hours and (order_type != "limit" or tif != "day"):
        raise invalid("extended hours order must be DAY limit orders")
    intent = body.get("position_intent")
    if intent is not None and intent not in INTENTS:
        raise invalid(f"position_intent must be one of {sorted(INTENTS)}")
    if intent is not None and not intent.startswith(side):
        raise invalid(f"position_intent {intent} does not match side {side}")
    client_order_id = body.get("client_order_id")
    if client_order_id is not None and not isinstance(client_order_id, str):
        raise invalid("client_order_id must be a string")
    if client_order_id is not None and len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise invalid(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
    take_profit, stop_loss = _leg(body, "take_profit"), _leg(body, "stop_loss")
    request = OrderRequest(
        symbol=asset.symbol, asset=asset, side=side, type=order_type, time_in_force=tif, order_class=order_class,
        qty=qty, notional=notional, limit_price=limit_price, stop_price=stop_price, trail_price=trail_price,
        trail_percent=trail_percent, extended_hours=extended_hours, client_order_id=client_order_id or None,
        position_intent=intent,
        take_profit=LegSpec("limit", limit_price=_positive(take_profit, "limit_price")) if take_profit else None,
        stop_loss=(LegSpec("stop_limit" if stop_loss.get("limit_price") is not None else "stop",
                           limit_price=_positive(stop_loss, "limit_price"),
                           stop_price=_positive(stop_loss, "stop_price")) if stop_loss else None),
    )
    _check_asset_rules(request)
    _check_class(request)
    return request


def _check_asset_rules(request: OrderRequest) -> None:
    asset = request.asset
    if asset.asset_class == "crypto":
        if request.time_in_force not in CRYPTO_TIME_IN_FORCE:
            raise invalid(f"invalid crypto time_in_force {request.time_in_force}: gtc or ioc only")
        if request.type == "trailing_stop" or request.order_class != "simple":
            raise invalid("crypto orders are market, limit or stop_limit, simple only")
        return
    if asset.asset_class == "us_option":
        if request.time_in_force != "day":
            raise invalid("option orders must be DAY orders")
        if request.fractional:
            raise invalid("qty must be a whole number of contracts")
        if request.type not in ("market", "limit", "stop", "stop_limit"):
            raise invalid("option orders are market, limit, stop or stop_limit")
        return
    if request.fractional:
        if not asset.fractionable:
            raise invalid(f"asset {asset.symbol} is not fractionable")
        if request.type != "market" or request.time_in_force != "day":
            raise invalid("fractional orders must be DAY market orders")


def _check_class(request: OrderRequest) -> None:
    tp, sl = request.take_profit, request.stop_loss
    if request.order_class == "simple":
        if tp or sl:
            raise invalid("take_profit and stop_loss need order_class bracket, oco or oto")
        return
    if request.time_in_force not in ("day", "gtc"):
        raise invalid(f"{request.order_class} orders must be day or gtc")
    if request.fractional:
        raise invalid(f"fractional orders cannot be {request.order_class} orders")
    if request.order_class == "bracket":
        if tp is None or sl is None or tp.limit_price is None or sl.stop_price is None:
            raise invalid("bracket orders need take_profit.limit_price and stop_loss.stop_price")
        if request.type not in ("market", "limit"):
            raise invalid("the entry of a bracket order is market or limit")
    elif request.order_class == "oco":
        if tp is None or sl is None or tp.limit_price is None or sl.stop_price is None:
            raise invalid("oco orders need take_profit.limit_price and stop_loss.stop_price")
        if request.type != "limit":
            raise invalid("oco orders are of type limit")
    elif (tp is None) == (sl is None):
        raise invalid("oto orders need exactly one of take_profit or stop_loss")
    if tp is not None and sl is not None and tp.limit_price is not None and sl.stop_price is not None:
        exit_side_sells = (request.side == "buy") != (request.order_class == "oco")
        if exit_side_sells and tp.limit_price <= sl.stop_price:
            raise invalid("take_profit.limit_price must be above stop_loss.stop_price")
        if not exit_side_sells and tp.limit_price >= sl.stop_price:
            raise invalid("take_profit.limit_price must be below stop_loss.stop_price")


def replace_fields(body: Any) -> dict[str, Decimal | str | None]:
    """A PATCH /v2/orders/{id} body: qty, time_in_force, limit_price, stop_price, trail, client_order_id."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    unknown = sorted(set(body) - {"qty", "time_in_force", "limit_price", "stop_price", "trail", "client_order_id"})
    if unknown:
        raise invalid(f"unknown field(s): {', '.join(unknown)}")
    found: dict[str, Decimal | str | None] = {}
    for key in ("qty", "limit_price", "stop_price", "trail"):
        if body.get(key) is not None:
            found[key] = _positive(body, key)
    if body.get("time_in_force") is not None:
        if body["time_in_force"] not in TIME_IN_FORCE:
            raise invalid(f"time_in_force must be one of {sorted(TIME_IN_FORCE)}")
        found["time_in_force"] = body["time_in_force"]
    if body.get("client_order_id") is not None:
        if not isinstance(body["client_order_id"], str) or len(body["client_order_id"]) > MAX_CLIENT_ORDER_ID:
            raise invalid("client_order_id must be a string of at most 128 characters")
        found["client_order_id"] = body["client_order_id"]
    if not found:
        raise invalid("nothing to replace")
    return found
