"""Market data as Alpaca's data API v2 serves it, from the same price walk the orders fill on.

``/v2/stocks/bars`` and ``/v2/stocks/{symbol}/bars`` (1Min, 5Min, 1Day; start, end, limit,
page_token, sort), latest trades, quotes and bars. Nothing after the simulated now is ever
served: a bar still forming ends at now, and a test that freezes the clock at 10:31 sees
exactly the bars a live client would have seen then.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .orders import fmt_price, invalid, iso
from .prices import Bar, PriceBook
from .session import NEW_YORK

TIMEFRAMES = {"1Min": 1, "1T": 1, "5Min": 5, "5T": 5, "1Day": 0, "1D": 0}
BAR_PARAMS = frozenset({"symbols", "timeframe", "start", "end", "limit", "page_token", "feed", "adjustment",
                        "sort", "asof", "currency"})
LATEST_PARAMS = frozenset({"symbols", "feed", "currency"})
MAX_LIMIT = 10_000
SPREAD = Decimal("0.01")


def _parse_time(value: str, name: str) -> datetime:
    from .state import parse_time

    return parse_time(value, name)


def _refuse_unknown(params: dict[str, str], known: frozenset[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise invalid(f"unknown query parameter(s): {', '.join(unknown)}")


def bar_json(bar: Bar) -> dict[str, Any]:
    return {"t": bar.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "o": float(bar.open), "h": float(bar.high), "l": float(bar.low), "c": float(bar.close),
            "v": bar.volume, "n": bar.trades, "vw": float(bar.vwap)}


def _symbols(params: dict[str, str], path_symbol: str | None) -> list[str]:
    if path_symbol is not None:
        return [path_symbol.strip().upper()]
    symbols = [s.strip().upper() for s in (params.get("symbols") or "").split(",") if s.strip()]
    if not symbols:
        raise invalid("symbols is required")
    return symbols


def bars(book: PriceBook, now: datetime, params: dict[str, str], path_symbol: str | None) -> dict[str, Any]:
    """The bars of one symbol (path form) or several (query form), paged by `limit`."""
    _refuse_unknown(params, BAR_PARAMS - ({"symbols"} if path_symbol else set()))
    timeframe = params.get("timeframe") or ""
    if timeframe not in TIMEFRAMES:
        raise invalid(f"invalid timeframe {timeframe!r}: 1Min, 5Min or 1Day")
    symbols = _symbols(params, path_symbol)
    local_midnight = datetime.combine(now.astimezone(NEW_YORK).date(), datetime.min.time(), NEW_YORK)
    start = _parse_time(params["start"], "start") if params.get("start") else local_midnight
    end = min(_parse_time(params["end"], "end"), now) if params.get("end") else now
    try:
        limit = int(params.get("limit") or 1000)
    except ValueError:
        raise invalid("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIMIT}")
    sort = params.get("sort") or "asc"
    if sort not in ("asc", "desc"):
        raise invalid("sort must be asc or desc")
    offset = _offset(params.get("page_token"))
    everything: list[tuple[str, dict[str, Any]]] = []
    for symbol in symbols:
        found = book.bars(symbol, start, end, TIMEFRAMES[timeframe]) if start < end else []
        if sort == "desc":
            found.reverse()
        everything.extend((symbol, bar_json(bar)) for bar in found)
    page = everything[offset:offset + limit]
    token = _token(offset + limit) if offset + limit < len(everything) else None
    if path_symbol is not None:
        return {"bars": [bar for _, bar in page], "symbol": symbols[0], "next_page_token": token}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for symbol, bar in page:
        grouped.setdefault(symbol, []).append(bar)
    return {"bars": grouped, "next_page_token": token}


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
    except (ValueError, UnicodeDecodeError):
        raise invalid("invalid page_token") from None


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def trade_json(book: PriceBook, symbol: str, now: datetime) -> dict[str, Any]:
    price = book.price(symbol, now)
    return {"t": iso(now), "x": "V", "p": float(price), "s": 100, "c": ["@"], "i": int(now.timestamp()) % 10**9,
            "z": "C"}


def quote_json(book: PriceBook, symbol: str, now: datetime) -> dict[str, Any]:
    price = book.price(symbol, now)
    return {"t": iso(now), "ax": "V", "ap": float(price + SPREAD), "as": 2, "bx": "V",
            "bp": float(max(price - SPREAD, SPREAD)), "bs": 3, "c": ["R"], "z": "C"}


def latest_bar(book: PriceBook, symbol: str, now: datetime) -> dict[str, Any] | None:
    found = book.bars(symbol, now - timedelta(days=10), now, 1)
    return bar_json(found[-1]) if found else None


def latest(kind: str, book: PriceBook, now: datetime, params: dict[str, str],
           path_symbol: str | None) -> dict[str, Any]:
    """Latest trade, quote or bar, for one symbol (path form) or several."""
    _refuse_unknown(params, LATEST_PARAMS - ({"symbols"} if path_symbol else set()))
    symbols = _symbols(params, path_symbol)
    make = {"trades": trade_json, "quotes": quote_json, "bars": latest_bar}[kind]
    found = {s: make(book, s, now) for s in symbols}
    if path_symbol is not None:
        return {"symbol": symbols[0], kind[:-1]: found[symbols[0]]}
    return {kind: {s: v for s, v in found.items() if v is not None}}


def price_text(book: PriceBook, symbol: str, now: datetime) -> str:
    return fmt_price(book.price(symbol, now))
