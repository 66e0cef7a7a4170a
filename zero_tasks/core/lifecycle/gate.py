"""Whether an exit order may go out now: the seed's rule for EVERY order, entry or exit.

The rows of the decision table marked `exits` (core/pipeline.py): the kill switch exactly
`true` (row 2) and the market state GREEN, written during the session now open (row 3, which
also needs the session open). Nothing else: stand-down, thresholds, signal age, cooldown, the
daily cap and the blocklist are entry rules, and an exit is never stopped by them.
"""

from __future__ import annotations

from datetime import datetime

from zero_tasks.core.lifecycle.state import Gate
from zero_tasks.core.pipeline import exit_veto
from zero_tasks.core.snapshot import Limits, Snapshot


def exit_gate(snap: Snapshot, now: datetime, limits: Limits) -> Gate:
    verdict = exit_veto(snap, now, limits)
    return Gate(True) if verdict is None else Gate(False, verdict.reason)
