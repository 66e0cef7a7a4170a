"""Whether an exit order may go out now: the seed's rule for EVERY order, entry or exit.

The kill switch exactly `true` (row 2) and the market state GREEN, written during the
session now open (row 3, which also needs the session open). Nothing else: stand-down,
thresholds, signal age, cooldown, the daily cap and the blocklist are entry rules, and an
exit is never stopped by them.
"""

from __future__ import annotations

from datetime import datetime

from zero_tasks.core.checks.kill_switch import check_kill_switch
from zero_tasks.core.checks.market_state import check_market_state
from zero_tasks.core.lifecycle.state import Gate
from zero_tasks.core.snapshot import Snapshot


def exit_gate(snap: Snapshot, now: datetime, market_state_max_age_s: float | None) -> Gate:
    for verdict in (check_kill_switch(snap), check_market_state(snap, now, market_state_max_age_s)):
        if verdict is not None:
            return Gate(False, verdict.reason)
    return Gate(True)
