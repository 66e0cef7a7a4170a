"""Every wait the gateway schedules, declared in one place: the broker retries of an order,
the wait for the broker budget, and the order status follow-ups.

Pure policy, apart from Celery (tasks.py schedules what this decides), so every rule is
tested at any instant without a worker. How the waits are carried out (short hops that
never outlast the visibility timeout) is delayed.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable

FOLLOW_FIRST_S = 2
FOLLOW_MAX_DELAY_S = 600
FOLLOW_MAX_TRIES = 40
RATE_WAIT_SPREAD_S = 5.0
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "stopped"})


def broker_retry_countdown(attempt: int, backoff_max_s: float, retry_after: float | None = None,
                           rand: Callable[[], float] = random.random) -> float:
    """Seconds before broker round `attempt + 2` of an order: exponential from 1 s with full
    jitter (orders of many workers do not come back at once), capped at `backoff_max_s`,
    and never sooner than a Retry-After the broker gave (within the same cap)."""
    countdown = min(float(2 ** attempt), backoff_max_s) * rand()
    if retry_after:
        countdown = max(countdown, min(retry_after, backoff_max_s))
    return countdown


def broker_retries_left(attempt: int, max_retries: int) -> bool:
    """Whether a failed round may be followed by another (BROKER_MAX_RETRIES more at most)."""
    return attempt < max_retries


def may_wait_for_budget(waited_s: float, wait_s: float, max_wait_s: float) -> bool:
    """Whether an order may wait `wait_s` more for the broker budget (else BLOCKED `rate limit`)."""
    return waited_s + wait_s <= max_wait_s


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
