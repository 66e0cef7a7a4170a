"""Row 6: a ranking older than the maximum signal age (or as far in the future) is expired."""

from __future__ import annotations

from datetime import datetime

from zero_tasks.core.decision import Code, Verdict, deny
from zero_tasks.core.intake import Signal


def check_signal_age(signal: Signal, now: datetime, max_age_s: float) -> Verdict | None:
    age = (now - signal.rank.rank_time).total_seconds()
    if age > max_age_s:
        return deny(Code.EXPIRED, f"ranking is {age:.0f}s old (max {max_age_s:.0f}s)")
    if age < -max_age_s:
        return deny(Code.EXPIRED, f"rank_time is {-age:.0f}s in the future")
    return None
