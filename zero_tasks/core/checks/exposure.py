"""Row 9: one position per ticker. Exposure at the broker (a position, or an open order) skips.

The facts come from the broker adapter (`AlpacaBroker.exposure`): the position's quantity
if there is one, otherwise the open orders for the ticker. When a position is found the
open orders are not read, so `open_orders` is empty then and says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from zero_tasks.core.decision import Code, Verdict, deny


@dataclass(frozen=True)
class Exposure:
    """What the broker holds for one ticker, as row 9 needs it."""

    ticker: str
    position_qty: str | None = None  # None: the broker has no position (404)
    open_orders: int = 0

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
