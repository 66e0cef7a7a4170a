"""JSON schemas of what the simulator serves, written from Alpaca's Trading API spec.

Alpaca's OpenAPI spec (alpacahq/cli api/specs/trading-api.json, and the Order schema of
docs.alpaca.markets) marks which Order fields may be null; the simulator must never send
null where the spec has none (a strict client, or ZERO's own models, would refuse it).
Small on purpose: the fields the simulator serves, every one required, so a missing or
null field fails the tests that validate every answer with these.
"""

from __future__ import annotations

from typing import Any

_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
_NULLABLE_DECIMAL = {"type": ["string", "null"], "pattern": r"^-?\d+(\.\d+)?$"}
_UUID = {"type": "string", "pattern": r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
_ORDER_STATUS = [
    "new", "partially_filled", "filled", "done_for_day", "canceled", "expired", "replaced",
    "pending_cancel", "pending_replace", "accepted", "pending_new", "accepted_for_bidding",
    "stopped", "rejected", "suspended", "calculated", "held",
]
_ORDER_TYPE = ["market", "limit", "stop", "stop_limit", "trailing_stop"]

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": _UUID,
        "client_order_id": {"type": "string", "maxLength": 128},
        "created_at": _DATE_TIME,
        "updated_at": _DATE_TIME,
        "submitted_at": _DATE_TIME,
        "filled_at": _NULLABLE_TIME,
        "expired_at": _NULLABLE_TIME,
        "expires_at": _NULLABLE_TIME,
        "canceled_at": _NULLABLE_TIME,
        "failed_at": _NULLABLE_TIME,
        "replaced_at": _NULLABLE_TIME,
        "replaced_by": {"type": ["string", "null"]},
        "replaces": {"type": ["string", "null"]},
        "asset_id": _UUID,
        "symbol": {"type": "string", "minLength": 1},
        "asset_class": {"enum": ["us_equity", "us_option", "crypto"]},
        "notional": _NULLABLE_DECIMAL,
        "qty": _NULLABLE_DECIMAL,
        "filled_qty": _DECIMAL,
        "filled_avg_price": _NULLABLE_DECIMAL,
        "order_class": {"enum": ["simple", "bracket", "oco", "oto", "mleg", ""]},
        "order_type": {"enum": _ORDER_TYPE},
        "type": {"enum": _ORDER_TYPE},
        "side": {"enum": ["buy", "sell"]},
        "position_intent": {"enum": ["buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"]},
        "time_in_force": {"enum": ["day", "gtc", "opg", "cls", "ioc", "fok"]},
        "limit_price": _NULLABLE_DECIMAL,
        "stop_price": _NULLABLE_DECIMAL,
        "status": {"enum": _ORDER_STATUS},
        "extended_hours": {"type": "boolean"},
        "legs": {"type": ["array", "null"]},
        "trail_percent": _NULLABLE_DECIMAL,
        "trail_price": _NULLABLE_DECIMAL,
        "hwm": _NULLABLE_DECIMAL,
        "subtag": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"]},
    },
}
ORDER["required"] = sorted(ORDER["properties"])
ORDER["additionalProperties"] = False

_EASTERN_TIME = {"type": "string", "format": "date-time", "pattern": r"[-+]0[45]:00$"}
CLOCK: dict[str, Any] = {
    "type": "object",
    "properties": {
        "timestamp": _EASTERN_TIME,
        "is_open": {"type": "boolean"},
        "next_open": _EASTERN_TIME,
        "next_close": _EASTERN_TIME,
    },
    "required": ["timestamp", "is_open", "next_open", "next_close"],
    "additionalProperties": False,
}

_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
CALENDAR_DAY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "date": _DATE,
        "open": {"type": "string", "pattern": r"^\d{2}:\d{2}$"},
        "close": {"type": "string", "pattern": r"^\d{2}:\d{2}$"},
        "session_open": {"type": "string", "pattern": r"^\d{4}$"},
        "session_close": {"type": "string", "pattern": r"^\d{4}$"},
        "settlement_date": _DATE,
    },
    "required": ["date", "open", "close", "session_open", "session_close", "settlement_date"],
    "additionalProperties": False,
}
CALENDAR: dict[str, Any] = {"type": "array", "items": CALENDAR_DAY}
ORDERS: dict[str, Any] = {"type": "array", "items": ORDER}

ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string", "minLength": 1}},
    "required": ["code", "message"],
    "additionalProperties": False,
}

RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
