"""Row 5: rank 1 with a probability at or above the minimum, and LONG."""

from __future__ import annotations

from zero_tasks.core.decision import Code, Verdict, deny
from zero_tasks.core.intake import Signal


def check_threshold(signal: Signal, min_probability: float) -> Verdict | None:
    top = signal.top
    if top.probability < min_probability:
        return deny(Code.THRESHOLD, f"probability {top.probability} < {min_probability}")
    if top.direction != "LONG":
        return deny(Code.THRESHOLD, f"direction {top.direction} is not LONG")
    return None
