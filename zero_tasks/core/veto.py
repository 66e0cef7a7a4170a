"""Rows 2-6 of the decision table, in the contract's order: the first objection is the decision.

Beyond the contract's rows, two operator controls sit where an operator expects them: the
circuit breaker right after the kill switch, the per-ticker block list right after the
stand-down. Each check is one file in `checks/`; this module only orders them.
"""

from __future__ import annotations

from datetime import datetime

from zero_tasks.core.checks.blocklist import check_blocklist
from zero_tasks.core.checks.breaker import check_breaker
from zero_tasks.core.checks.kill_switch import check_kill_switch
from zero_tasks.core.checks.market_state import check_market_state
from zero_tasks.core.checks.signal_age import check_signal_age
from zero_tasks.core.checks.stand_down import check_stand_down
from zero_tasks.core.checks.threshold import check_threshold
from zero_tasks.core.decision import Verdict
from zero_tasks.core.intake import Signal
from zero_tasks.core.snapshot import Limits, Snapshot


def veto(signal: Signal, snap: Snapshot, now: datetime, limits: Limits) -> Verdict | None:
    """Rows 2-6 in the contract's order; the first denial is the decision."""
    return (
        check_kill_switch(snap)
        or check_breaker(snap)
        or check_market_state(snap, now, limits.market_state_max_age_s)
        or check_stand_down(snap, signal.top.ticker, now)
        or check_blocklist(snap, signal.top.ticker, now)
        or check_threshold(signal, limits.min_probability)
        or check_signal_age(signal, now, limits.signal_max_age_s)
    )


def recheck_before_submit(signal: Signal, snap: Snapshot, now: datetime, limits: Limits) -> Verdict | None:
    """The whole veto again, over a snapshot read after the broker answered row 9: a kill
    switch, breaker, market state, stand-down or block list that changed while the broker
    was asked stops the order, and so does a signal that grew too old while it retried."""
    return veto(signal, snap, now, limits)
