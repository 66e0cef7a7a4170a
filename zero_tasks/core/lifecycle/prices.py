"""The protect's two prices on Alpaca's tick: limit `fill + target_atr x ATR`, stop
`fill - stop_atr x ATR`.

Alpaca accepts prices of $1.00 and above in cents, below $1.00 in hundredths of a cent.
Rounding is chosen so that neither leg is easier to reach than ZERO's rule asks, which is
what makes a leg's fill the truth test's label: the target is rounded UP (a PASS means the
price rose at least `target_atr x ATR`), the stop is rounded DOWN (a FAIL means it fell
at least `stop_atr x ATR`), as ZERO's `high >= target` / `low <= stop` compare them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

CENT = Decimal("0.01")
SUB_DOLLAR_TICK = Decimal("0.0001")


def tick(price: Decimal) -> Decimal:
    """Alpaca's price increment at `price`."""
    return CENT if price >= 1 else SUB_DOLLAR_TICK


def round_up(price: Decimal) -> Decimal:
    return price.quantize(tick(price), rounding=ROUND_CEILING)


def round_down(price: Decimal) -> Decimal:
    return price.quantize(tick(price), rounding=ROUND_FLOOR)


@dataclass(frozen=True)
class ProtectPrices:
    limit: Decimal  # the take-profit leg (sell limit)
    stop: Decimal  # the stop-loss leg (sell stop)


def protect_prices(fill: float, atr: float, target_atr: float, stop_atr: float) -> ProtectPrices | str:
    """The OCO's prices, or why there is no OCO to place."""
    if not (fill > 0 and atr > 0):
        return f"fill {fill} and ATR {atr} must both be positive"
    if not (target_atr > 0 and stop_atr > 0):
        return f"target_atr {target_atr} and stop_atr {stop_atr} must both be positive"
    fill_d, atr_d = Decimal(str(fill)), Decimal(str(atr))
    limit = round_up(fill_d + Decimal(str(target_atr)) * atr_d)
    stop = round_down(fill_d - Decimal(str(stop_atr)) * atr_d)
    if stop <= 0:
        return f"stop {stop} at or below zero (fill {fill}, stop_atr {stop_atr} x ATR {atr:.4f})"
    return ProtectPrices(limit, stop)
