"""Row 9: one position per ticker. Exposure at the broker (a position, or an open order) skips.

The facts come from the broker adapter (`AlpacaBroker.exposure`): the position's quantity
if there is one, otherwise the open orders for the ticker. When a position is found the
open orders are not read, so `open_orders` is empty then and says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from zero_tasks.core.checks.asset import AssetVerdict
from zero_tasks.core.decision import Code, Verdict, deny


@dataclass(frozen=True)
class Exposure:
    """What the broker holds for one ticker, as row 9 needs it."""

    ticker: str
    position_qty: str | None = None  # None: the broker has no position (404)
    open_orders: int = 0
    entries_today: int | None = None  # the gateway's entry orders at the broker this trading day (None: not read)
    day_full: bool = False  # the day's orders filled a whole page: more may exist than were counted
    asset: AssetVerdict | None = None  # the broker's word on the symbol, when it was asked with row 9

    @property
    def any(self) -> bool:
        return self.position_qty is not None or self.open_orders > 0


def check_exposure(exposure: Exposure) -> Verdict | None:
    """SKIPPED `open position` while the ticker has a position or an open order at the broker."""
    if exposure.position_qty is not None:
        return deny(Code.OPEN_POSITION, f"{exposure.ticker} position qty {exposure.position_qty} at the broker")
    if exposure.open_orders:
        return deny(Code.OPEN_POSITION, f"{exposure.ticker} has {exposure.open_orders} open order(s) at the broker")
    return None


def check_broker_daily_cap(exposure: Exposure, cap: int, day: str) -> Verdict | None:
    """The daily cap, counted by the broker: its own list of the gateway's entry orders
    (`zx-` client_order_ids; exits are not entries) placed this trading day. The Redis
    count is the fast, race-free reservation; this is the one Redis access cannot forge.
    A count that could not be completed fails closed."""
    if exposure.entries_today is None:
        return None
    if exposure.day_full and exposure.entries_today < cap:
        return deny(Code.DAILY_CAP, f"the broker's orders of trading day {day} fill a whole page; "
                                    "the gateway's entries cannot all be counted, failing closed")
    if exposure.entries_today >= cap:
        return deny(Code.DAILY_CAP, f"{exposure.entries_today} entry orders at the broker on trading day {day} "
                                    f"(MAX_ORDERS_PER_DAY {cap})")
    return None
