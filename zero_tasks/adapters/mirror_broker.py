"""The account mirror's broker edge: alpaca-py's models as the mirror's plain data, the
REST snapshot taken at every (re)connect, the broker's list of its US equities, and the
stream's address (paper only)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, AssetStatus, QueryOrderStatus
from alpaca.trading.models import Asset, Order, Position, TradeUpdate
from alpaca.trading.requests import GetAssetsRequest, GetOrdersRequest

from zero_tasks.core.checks.asset import AssetVerdict, asset_verdict
from zero_tasks.core.contract import TICKER_PATTERN
from zero_tasks.core.mirror import OrderState, Update
from zero_tasks.core.mirror import Position as MirrorPosition
from zero_tasks.settings import ALPACA_PAPER_HOST, check_base_url, check_stream_url

PAPER_STREAM_URL = f"wss://{ALPACA_PAPER_HOST}/stream"
PAGE = 500  # orders per snapshot read: a full page may have left some out
SNAPSHOT_CALLS = 3  # take_snapshot's GETs: positions, open orders, the orders since


def stream_url(base_url: str | None, configured: str | None = None) -> str:
    """The trade_updates stream: ALPACA_STREAM_URL when set (checked paper-only again
    here), else the configured paper host's: Alpaca's paper stream, or the loopback
    simulator's `/stream`. The base URL passes the same paper-only check as the REST
    client's (settings.check_base_url); nothing else is ever connected to."""
    if configured:
        return check_stream_url(configured)
    if not base_url:
        return PAPER_STREAM_URL
    parts = urlsplit(check_base_url(base_url))
    if (parts.hostname or "").lower() == ALPACA_PAPER_HOST:
        return PAPER_STREAM_URL
    return urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, "/stream", "", ""))


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _num(value: Any) -> str | None:
    return None if value is None else f"{float(value):.9g}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def order_state(order: Order) -> OrderState:
    return OrderState(
        order_id=str(order.id), client_order_id=order.client_order_id, symbol=order.symbol or "",
        side=_text(order.side), qty=_num(order.qty) or "0", status=_text(order.status),
        order_class=_text(order.order_class) if order.order_class else "simple",
        filled_qty=_num(order.filled_qty) or "0", filled_avg_price=_num(order.filled_avg_price),
        updated_at=_iso(order.updated_at), filled_at=_iso(order.filled_at),
        legs=tuple(str(leg.id) for leg in (order.legs or ())))


def update_of(trade: TradeUpdate) -> Update:
    return Update(event=_text(trade.event), order=order_state(trade.order), timestamp=trade.timestamp.isoformat(),
                  position_qty=_num(trade.position_qty), price=_num(trade.price), qty=_num(trade.qty))


def position_of(position: Position) -> MirrorPosition:
    available = position.qty_available if position.qty_available is not None else position.qty
    return MirrorPosition(_num(position.qty) or "0", _num(available) or "0", _num(position.avg_entry_price))


@dataclass(frozen=True)
class AccountSnapshot:
    """What REST says at a (re)connect: positions by ticker, open orders, and the orders of
    the recent past (to learn what became of an order while nobody listened)."""

    positions: dict[str, MirrorPosition]
    open_orders: list[OrderState]
    recent_orders: list[OrderState]


def take_snapshot(client: TradingClient, since: datetime) -> AccountSnapshot:
    """GET positions, GET open orders, GET every order since `since` (blocking; the
    consumer runs it on a thread). alpaca-py's errors are raised as they come."""
    positions = cast(list[Position], client.get_all_positions())
    opened = cast(list[Order], client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=PAGE)))
    recent = cast(list[Order], client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=since,
                                                                  limit=PAGE)))
    return AccountSnapshot({p.symbol: position_of(p) for p in positions},
                           [order_state(o) for o in opened], [order_state(o) for o in recent])


def listed_equities(client: TradingClient) -> list[AssetVerdict]:
    """The broker's word on every active US equity it lists, in one call (GET
    /v2/assets?status=active&asset_class=us_equity), judged as a lookup of one symbol is
    (core/checks/asset.asset_verdict): a listed symbol that is not tradable is judged so.
    Only symbols the contract's ticker pattern admits; a symbol the list leaves out gets no
    verdict here (the worker asks the broker about it, as before). Blocking; alpaca-py's
    errors are raised as they come."""
    assets = cast(list[Asset], client.get_all_assets(GetAssetsRequest(status=AssetStatus.ACTIVE,
                                                                      asset_class=AssetClass.US_EQUITY)))
    return [asset_verdict(a.symbol, _text(a.asset_class), a.tradable, _text(a.status))
            for a in assets if re.fullmatch(TICKER_PATTERN, a.symbol or "")]
