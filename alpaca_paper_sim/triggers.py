"""When a working order triggers: its level, whether a price reaches it, the trail's high-water
mark, and the instant a straight stretch of the walk crosses a level. Pure functions of the
order and prices; the broker state runs them over the walk's points.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from .orders import SimOrder


def level(order: SimOrder, buy: bool) -> Decimal:
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


def crosses(order: SimOrder, price: Decimal, buy: bool) -> bool:
    """A buy limit fills at or below its limit, a buy stop triggers at or above its stop (and the
    reverse for sells); a trailing stop is a stop at its trail level."""
    if order.type == "trailing_stop" and order.hwm is None:
        return False
    mark = level(order, buy)
    is_limit = order.type == "limit" or (order.type == "stop_limit" and order.triggered)
    if is_limit:
        return price <= mark if buy else price >= mark
    return price >= mark if buy else price <= mark


def track(order: SimOrder, price: Decimal, buy: bool) -> None:
    """A sell trail follows the high-water mark up; a buy trail follows the low down."""
    if order.type != "trailing_stop":
        return
    if order.hwm is None:
        order.hwm = price
    else:
        order.hwm = min(order.hwm, price) if buy else max(order.hwm, price)


def cross_time(previous: tuple[datetime, float], at: datetime, price: float, level: float) -> datetime:
    """When the straight line from the previous point to this one reaches `level`."""
    start, before = previous
    if price == before:
        return at
    fraction = min(1.0, max(0.0, (level - before) / (price - before)))
    return start + (at - start) * fraction
