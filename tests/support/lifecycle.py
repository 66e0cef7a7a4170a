"""Test helpers for the position lifecycle (zero_tasks/worker/lifecycle.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zero_tasks.core.keys import LIFECYCLE_DUE_KEY

from .procs import wait_for

if TYPE_CHECKING:
    from .gateway import Gateway


def steps_taken(gw: Gateway, execution_id: str, count: int, timeout: float = 60) -> None:
    """Wait until the lifecycle of `execution_id` has stepped `count` more times (each step
    moves its due time), then settle: whatever those steps would have done (a second
    deferral, a sale before its time) has been done and can be counted."""
    for n in range(count):
        before = gw.r.zscore(LIFECYCLE_DUE_KEY, execution_id)
        wait_for(lambda b=before: gw.r.zscore(LIFECYCLE_DUE_KEY, execution_id) != b, timeout,
                 f"step {n + 1} of {count} of {execution_id}'s lifecycle")
    gw.settle()
