"""The exit decision: one execution's next step, from its record, the broker's facts, the
gate (kill switch, market state, session) and the time. The rules are one table, read top
to bottom, the first that speaks decides, as the entry rules are (CONTRACT.md):

| # | rule | when | step |
|---|---|---|---|
| 1 | hold | EXIT_POLICY=hold | DONE: never sold |
| 2 | entry unknown | the entry order is not found (yet; a day after the ranking: DONE) | WAIT |
| 3 | entry open | the entry order is still working | WAIT |
| 4 | nothing bought | the entry ended with no fill | DONE |
| 5 | sold by us | its own exits sold everything it bought | CANCEL a protect leg left, else OUTCOME |
| 6 | flat by another | the account holds none, not all sold by us | CANCEL an exit left, else OUTCOME (manual) |
| 6a | the operator's | handed over (rule 11, a horizon sell refused), still held | WAIT slowly; a week on: DONE |
| 7 | no protect | EXIT_POLICY=zero, not protected, no ATR (why), or none yet at the horizon | NO_PROTECT, once |
| 8 | gate shut | an order is due (protect, or the horizon) while the gate forbids it | DEFER once per exit, then WAIT |
| 9 | horizon cancel | due: protect still open | CANCEL the protect |
| 10 | horizon sell working | due: the horizon sell is working | WAIT |
| 11 | horizon sell ended | due: the horizon sell ended with shares left | HAND_OVER: the operator's |
| 12 | horizon sell | due: nothing working | SELL min(held, qty_available) at market |
| 13 | protect | EXIT_POLICY=zero, not protected yet | PROTECT min(held, qty_available) (ATR unknown: WAIT) |
| 14 | wait | otherwise | WAIT until the horizon or the next look |

The step reads the ATR (adapters) before asking, when a protect is pending and none is
known: `rec.atr`, or `rec.atr_note` saying why there is none. A read that got no answer
leaves both unset (`rec.atr_tries` counts it, atr.DATA_TRIES in all): the protect waits for
the next look, and the horizon's rules run meanwhile.

A cancel places nothing and only takes a sell off a position (rules 5 and 6 run whatever
the gate says: a leg left on a flat position would sell short); an order (protect, sell)
needs the gate. Stand-down, thresholds, signal age, cooldown and the daily cap are entry
rules: none is consulted here. A sale never exceeds what this execution still holds nor
what the account has free (`qty_available`), so it can never cross zero, and a position
the gateway did not open is never touched: the quantity comes from the entry's own fill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from zero_tasks.core.lifecycle.state import Facts, Gate, LifecycleRecord, Policy


class Step(StrEnum):
    WAIT = "wait"
    PROTECT = "protect"
    NO_PROTECT = "no_protect"
    DEFER = "defer"
    CANCEL = "cancel"
    SELL = "sell"
    OUTCOME = "outcome"
    HAND_OVER = "hand_over"
    DONE = "done"


@dataclass(frozen=True)
class ExitAction:
    """One step and why; `qty` for PROTECT and SELL, `order_id` for CANCEL, `at` for WAIT."""

    step: Step
    reason: str
    rule: str
    qty: int = 0
    order_id: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Inputs:
    rec: LifecycleRecord
    facts: Facts
    gate: Gate
    now: datetime
    look_every: timedelta  # how soon to look again while something is working

    @property
    def due(self) -> bool:
        return self.rec.due(self.now)

    @property
    def free(self) -> int:
        """What an exit may sell now: what it holds, and no more than the account has free."""
        return max(0, min(self.facts.held, self.facts.position.qty_available))

    def slowly(self) -> datetime:
        """The next look at a position the gateway handed over: it places nothing more, and
        only its outcome is waited for."""
        return self.now + self.look_every * OPERATORS_LOOK_FACTOR

    def later(self) -> datetime:
        soon = self.now + self.look_every
        return min(soon, self.rec.due_at) if self.rec.due_at and self.rec.due_at > self.now else soon


Rule = Callable[[Inputs], ExitAction | None]
# A position handed to the operator is looked at this many look intervals apart (10 minutes
# by default): its outcome is recorded within that of its going flat, for a few broker reads
# an hour instead of a few a minute, however long the operator holds it.
OPERATORS_LOOK_FACTOR = 20
# ... and for at most this long after the horizon: the account may hold shares of the ticker
# that are not this execution's (the operator's own, a later entry's), and then "flat" never
# comes; the lifecycle ends without an outcome rather than watch for ever.
HANDED_OVER_WATCH = timedelta(days=7)


def _hold(i: Inputs) -> ExitAction | None:
    if i.rec.policy is Policy.HOLD:
        return ExitAction(Step.DONE, "EXIT_POLICY hold: the position is never sold by the gateway", "hold")
    return None


ENTRY_LOOKUP_GIVE_UP = timedelta(days=1)


def _entry_unknown(i: Inputs) -> ExitAction | None:
    if i.facts.entry is not None:
        return None
    if i.now - i.rec.rank_time > ENTRY_LOOKUP_GIVE_UP:
        return ExitAction(Step.DONE, f"entry order not found at the broker {ENTRY_LOOKUP_GIVE_UP} after the "
                                     "ranking: nothing to close (reconcile reports it)", "entry unknown")
    return ExitAction(Step.WAIT, "entry order not found at the broker yet", "entry unknown", at=i.later())


def _entry_open(i: Inputs) -> ExitAction | None:
    entry = i.facts.entry
    if entry is not None and entry.open:
        return ExitAction(Step.WAIT, f"entry order {entry.status} ({entry.filled_qty} filled)", "entry open",
                          at=i.later())
    return None


def _nothing_bought(i: Inputs) -> ExitAction | None:
    entry = i.facts.entry
    if entry is not None and entry.filled_qty == 0:
        return ExitAction(Step.DONE, f"entry order {entry.status} with nothing filled: no position", "nothing bought")
    return None


def _working_protect(i: Inputs) -> str | None:
    for leg in (i.facts.target_leg, i.facts.stop_leg):
        if leg is not None and leg.open:
            return leg.order_id
    return None


def _sold_by_us(i: Inputs) -> ExitAction | None:
    if i.facts.sold < i.facts.bought:
        return None
    left = _working_protect(i)
    if left:
        return ExitAction(Step.CANCEL, "everything bought is sold: the protect's leg left is canceled", "sold by us",
                          order_id=left)
    return ExitAction(Step.OUTCOME, f"flat: {i.facts.sold} sold by the gateway's own exits", "sold by us")


def _flat_by_another(i: Inputs) -> ExitAction | None:
    if i.facts.position.qty > 0:
        return None
    left = _working_protect(i)
    sell = i.facts.horizon_sell
    if left is None and sell is not None and sell.open:
        left = sell.order_id
    if left:
        return ExitAction(Step.CANCEL, "the account holds no shares: the exit order left is canceled (never short)",
                          "flat by another", order_id=left)
    return ExitAction(Step.OUTCOME, f"flat: {i.facts.bought - i.facts.sold} share(s) sold by an order not the "
                                    "gateway's", "flat by another")


def _handed_over(i: Inputs) -> ExitAction | None:
    if i.rec.handed_over is None:
        return None
    if i.rec.due_at is not None and i.now - i.rec.due_at > HANDED_OVER_WATCH:
        return ExitAction(Step.DONE, f"the operator's ({i.rec.handed_over}) and not flat {HANDED_OVER_WATCH} after "
                                     "the horizon: no outcome", "the operator's")
    return ExitAction(Step.WAIT, f"the operator's ({i.rec.handed_over}): {i.facts.held} held; its outcome is recorded "
                                 "once flat", "the operator's", at=i.slowly())


def _protect_pending(i: Inputs) -> bool:
    """EXIT_POLICY=zero and neither a protect placed nor its absence recorded yet."""
    return i.rec.policy is Policy.ZERO and not i.facts.protect_placed and not i.rec.protect_skipped


def _order_due(i: Inputs) -> bool:
    """An order would go out now: the horizon exit, or a protect whose prices are known."""
    return i.due or (_protect_pending(i) and i.rec.atr is not None)


def _gate_shut(i: Inputs) -> ExitAction | None:
    if i.gate.allowed or not _order_due(i):
        return None
    what = "horizon exit" if i.due else "protect"
    reason = f"exit deferred: {what}: {i.gate.why}"
    if not (i.rec.exit_deferred if i.due else i.rec.protect_deferred):
        return ExitAction(Step.DEFER, reason, "gate shut", at=i.later())
    return ExitAction(Step.WAIT, reason, "gate shut", at=i.later())


def _horizon_cancel(i: Inputs) -> ExitAction | None:
    left = _working_protect(i)
    if i.due and left:
        return ExitAction(Step.CANCEL, f"horizon {i.rec.horizon} reached: the protect is canceled before the sale",
                          "horizon", order_id=left)
    return None


def _horizon_sell_working(i: Inputs) -> ExitAction | None:
    sell = i.facts.horizon_sell
    if i.due and sell is not None and sell.open:
        return ExitAction(Step.WAIT, f"horizon sell {sell.status}", "horizon sell working", at=i.later())
    return None


def _horizon_sell_ended(i: Inputs) -> ExitAction | None:
    sell = i.facts.horizon_sell
    if i.due and sell is not None:
        return ExitAction(Step.HAND_OVER, f"horizon sell ended {sell.status} with {i.facts.held} share(s) left: at "
                                          "most one horizon sell per execution; the rest is the operator's",
                          "horizon sell ended")
    return None


def _horizon_sell(i: Inputs) -> ExitAction | None:
    if not i.due:
        return None
    if i.free == 0:
        return ExitAction(Step.WAIT, f"horizon reached but no share free to sell (held {i.facts.held}, "
                                     f"qty_available {i.facts.position.qty_available})", "horizon", at=i.later())
    return ExitAction(Step.SELL, f"horizon {i.rec.horizon} reached: sell {i.free} at market", "horizon", qty=i.free)


def _no_protect(i: Inputs) -> ExitAction | None:
    """No ATR, and why; or still none when the horizon comes (the market data never answered
    before it): the protect is decided, and said, before the horizon's sale."""
    if not _protect_pending(i) or i.rec.atr is not None:
        return None
    if i.rec.atr_note:
        return ExitAction(Step.NO_PROTECT, f"no protect: {i.rec.atr_note}; horizon exit alone", "no protect")
    if i.due:
        return ExitAction(Step.NO_PROTECT, f"no protect: ATR not known by the horizon ({i.rec.atr_tries} "
                                           "market-data read(s) got no answer); horizon exit alone", "no protect")
    return None


def _protect(i: Inputs) -> ExitAction | None:
    if not _protect_pending(i):
        return None
    if i.rec.atr is None:
        return ExitAction(Step.WAIT, f"protect: ATR not known yet ({i.rec.atr_tries} market-data read(s) got no "
                                     "answer); asked again", "protect", at=i.later())
    if i.free == 0:
        return ExitAction(Step.WAIT, f"protect: no share free (qty_available {i.facts.position.qty_available})",
                          "protect", at=i.later())
    return ExitAction(Step.PROTECT, f"protect {i.free}: OCO target {i.rec.target_atr} x ATR, stop "
                                    f"{i.rec.stop_atr} x ATR", "protect", qty=i.free)


def _wait(i: Inputs) -> ExitAction:
    due = i.rec.due_at.isoformat() if i.rec.due_at else "unknown"
    return ExitAction(Step.WAIT, f"holding {i.facts.held} until the horizon at {due}", "wait", at=i.later())


RULES: tuple[tuple[str, Rule], ...] = (
    ("hold", _hold),
    ("entry unknown", _entry_unknown),
    ("entry open", _entry_open),
    ("nothing bought", _nothing_bought),
    ("sold by us", _sold_by_us),
    ("flat by another", _flat_by_another),
    ("the operator's", _handed_over),
    ("no protect", _no_protect),
    ("gate shut", _gate_shut),
    ("horizon cancel", _horizon_cancel),
    ("horizon sell working", _horizon_sell_working),
    ("horizon sell ended", _horizon_sell_ended),
    ("horizon sell", _horizon_sell),
    ("protect", _protect),
)


def decide_exit(rec: LifecycleRecord, facts: Facts, gate: Gate, now: datetime, look_every: timedelta) -> ExitAction:
    """The one next step for this execution, with its reason."""
    inputs = Inputs(rec, facts, gate, now, look_every)
    for _name, rule in RULES:
        action = rule(inputs)
        if action is not None:
            return action
    return _wait(inputs)
