"""The decision table, declared once, in order: every row's number, check, code and phase.

The README's "Decisions" table is this declaration in prose (tests/test_pipeline.py reads
one against the other). Each row names the check that judges it (one file per check in
`checks/`), the reason code its refusal starts with (and so its status, decision.STATUS_OF)
and the phase it needs:

- `pure`: judged over the message and one snapshot, no I/O (rows 1-6); rows 2-6 run from
  this declaration (`veto`), in this order, the first objection decides, in the worker only
  (the bridge decides nothing);
- `claim`: judged from what one atomic Redis script found (rows 7-8b, `admit.lua`);
- `broker`: judged from what the broker answered, or the broker's answer itself (9-12).

Row 9a is rows 2-6 again over a snapshot read after the broker answered row 9: its
refusal carries the row's own code, then `at submit`. Exits go through the same
declaration: the rows marked `exits` (the kill switch and the market state, the seed's rule
for every order) are the gate of every exit order (`exit_veto`, lifecycle/gate.py), and no
other entry row ever stops an exit. Beyond the contract's rows, the
gateway's lettered ones sit where an operator expects them: the circuit breaker right after
the kill switch, the block list right after the stand-down, the daily cap and the broker
budget with the claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from zero_tasks.core.checks.admission import check_admission
from zero_tasks.core.checks.blocklist import check_blocklist
from zero_tasks.core.checks.breaker import check_breaker
from zero_tasks.core.checks.exposure import check_exposure
from zero_tasks.core.checks.kill_switch import check_kill_switch
from zero_tasks.core.checks.market_state import check_market_state
from zero_tasks.core.checks.signal_age import check_signal_age
from zero_tasks.core.checks.stand_down import check_stand_down
from zero_tasks.core.checks.threshold import check_threshold
from zero_tasks.core.decision import STATUS_OF, Code, Status, Verdict
from zero_tasks.core.intake import Signal, parse_payload
from zero_tasks.core.snapshot import Limits, Snapshot

AT_SUBMIT = "at submit"  # row 9a's words after the row's code


class Phase(StrEnum):
    PURE = "pure"
    CLAIM = "claim"
    BROKER = "broker"


class Facts(NamedTuple):
    """What the pure rows judge: the signal (none for an exit), the snapshot, the time and the limits."""

    signal: Signal | None
    snap: Snapshot
    now: datetime
    limits: Limits

    @property
    def entry(self) -> Signal:
        """The signal, for the rows only an entry passes; an exit row asking for it is a bug."""
        if self.signal is None:
            raise ValueError("an entry-only row was judged for an exit")
        return self.signal


@dataclass(frozen=True)
class Row:
    number: str
    check: Callable[..., Any] | None  # None: the broker's answer (10-12) is the decision itself
    codes: tuple[Code, ...]  # what its reason starts with; none for 9a (the code of the row it repeats)
    phase: Phase
    # For the rows `veto` runs from here (2-6): the check's arguments, taken from the facts.
    inputs: Callable[[Facts], tuple[Any, ...]] | None = None
    exits: bool = False  # it also gates every exit order (protect, horizon sell): `exit_veto`

    @property
    def status(self) -> Status | None:
        return STATUS_OF[self.codes[0]] if self.codes else None

    def judge(self, facts: Facts) -> Verdict | None:
        assert self.check is not None and self.inputs is not None
        verdict: Verdict | None = self.check(*self.inputs(facts))
        return verdict


def _first_denial(rows: tuple[Row, ...], facts: Facts) -> Verdict | None:
    for row in rows:
        verdict = row.judge(facts)
        if verdict is not None:
            return verdict
    return None


def veto(signal: Signal, snap: Snapshot, now: datetime, limits: Limits) -> Verdict | None:
    """Rows 2-6, in the declared order; the first denial is the decision."""
    return _first_denial(VETO, Facts(signal, snap, now, limits))


def exit_veto(snap: Snapshot, now: datetime, limits: Limits) -> Verdict | None:
    """The rows marked `exits` (2 and 3), in the declared order: what may stop an exit order.
    The entry-only rows (the breaker, the stand-down, the block list, the threshold, the
    signal's age, the claim's) never do: they judge whether to open a position, not whether
    one already open may be closed."""
    return _first_denial(EXIT_GATE, Facts(None, snap, now, limits))


def recheck_before_submit(signal: Signal, snap: Snapshot, now: datetime, limits: Limits) -> Verdict | None:
    """Row 9a: the whole veto again, over a snapshot read after the broker answered row 9:
    a kill switch, breaker, market state, stand-down or block list that changed while the
    broker was asked stops the order, and so does a signal that grew too old while it retried."""
    return veto(signal, snap, now, limits)


ROWS: tuple[Row, ...] = (
    Row("1", parse_payload, (Code.INVALID, Code.NO_OPPORTUNITIES), Phase.PURE),
    Row("2", check_kill_switch, (Code.DISABLED,), Phase.PURE, lambda f: (f.snap,), exits=True),
    Row("2a", check_breaker, (Code.CIRCUIT_OPEN,), Phase.PURE, lambda f: (f.snap,)),
    Row("3", check_market_state, (Code.MARKET_STATE,), Phase.PURE,
        lambda f: (f.snap, f.now, f.limits.market_state_max_age_s), exits=True),
    Row("4", check_stand_down, (Code.STAND_DOWN,), Phase.PURE, lambda f: (f.snap, f.entry.top.ticker, f.now)),
    Row("4a", check_blocklist, (Code.BLOCKLIST,), Phase.PURE, lambda f: (f.snap, f.entry.top.ticker, f.now)),
    Row("5", check_threshold, (Code.THRESHOLD,), Phase.PURE, lambda f: (f.entry, f.limits.min_probability)),
    Row("6", check_signal_age, (Code.EXPIRED,), Phase.PURE, lambda f: (f.entry, f.now, f.limits.signal_max_age_s)),
    Row("7", check_admission, (Code.DUPLICATE,), Phase.CLAIM),
    Row("8", check_admission, (Code.COOLDOWN,), Phase.CLAIM),
    Row("8a", check_admission, (Code.DAILY_CAP,), Phase.CLAIM),
    Row("8b", check_admission, (Code.RATE_LIMIT,), Phase.CLAIM),
    Row("9", check_exposure, (Code.OPEN_POSITION,), Phase.BROKER),
    Row("9a", recheck_before_submit, (), Phase.BROKER),
    Row("10", None, (Code.BROKER_REJECTED,), Phase.BROKER),
    Row("11", None, (Code.ERROR,), Phase.BROKER),
    Row("12", None, (Code.SUBMITTED,), Phase.BROKER),
)

# The rows `veto` runs from this declaration, over the message and one snapshot.
VETO: tuple[Row, ...] = tuple(row for row in ROWS if row.inputs is not None)
# The rows `exit_veto` runs: the gate of every exit order.
EXIT_GATE: tuple[Row, ...] = tuple(row for row in VETO if row.exits)
