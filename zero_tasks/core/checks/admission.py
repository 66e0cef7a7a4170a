"""Rows 7 and 8 and the daily cap: what the admission step in Redis found, judged.

The facts come from one atomic script (redis_state.ExecutionLocks.admit): who holds the
execution_id, whether the ticker is in its cooldown, whether the session's order slots are
all taken. This module turns them into the decision and its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from zero_tasks.core.decision import Code, Verdict, deny


class Claim(IntEnum):
    TAKEN = 0  # somebody else holds it: a duplicate
    CLAIMED = 1  # ours, first sight
    REENTERED = 2  # ours already: this message is being run again (redelivery, retry)


@dataclass(frozen=True)
class Admission:
    """The outcome of rows 7-8 and the daily cap; `refused` is None when admitted."""

    claim: Claim
    refused: str | None
    cooldown_since: str = ""
    prepaid: int = 0  # broker calls of this minute's budget taken for the order


def check_admission(admission: Admission, execution_id: str, ticker: str, cap: int, day: str) -> Verdict | None:
    """Row 7 (duplicate), row 8 (cooldown), then the daily cap; None when admitted."""
    if admission.claim is Claim.TAKEN:
        return deny(Code.DUPLICATE, f"{execution_id} already claimed")
    if admission.refused == "cooldown":
        return deny(Code.COOLDOWN, f"{ticker} last order at {admission.cooldown_since}")
    if admission.refused:
        return deny(Code.DAILY_CAP, f"{cap} orders already on trading day {day}")
    return None
