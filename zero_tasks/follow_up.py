"""When to look again at a SUBMITTED order (the order status follow-up of tasks.py).

Pure policy, apart from Celery, so it is tested at any instant without a worker.
"""

from __future__ import annotations

import random
from typing import Callable

FOLLOW_FIRST_S = 2
FOLLOW_MAX_DELAY_S = 600
FOLLOW_MAX_TRIES = 40
RATE_WAIT_SPREAD_S = 5.0
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "stopped"})


def follow_up_delay(tries: int, rate_wait_s: float | None = None,
                    rand: Callable[[], float] = random.random) -> float:
    """Seconds until the next look at an order: doubling from FOLLOW_FIRST_S up to ten
    minutes, and never before the broker budget has a slot again: retried every 2-4 s
    instead, a burst's follow-ups found the budget still spent, again and again, and kept
    the worker busy with futile tasks while orders waited behind them. Those that wait
    for the budget are spread over a few seconds past its slot, so they do not all come
    back at once."""
    delay = float(min(FOLLOW_FIRST_S * 2 ** tries, FOLLOW_MAX_DELAY_S))
    if rate_wait_s is not None:
        delay = max(delay, rate_wait_s + RATE_WAIT_SPREAD_S * rand())
    return delay
