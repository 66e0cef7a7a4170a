"""The outcome of one execution once its position is flat again, in the truth test's words.

PASS: the protect's target leg sold; FAIL: its stop leg; EXPIRED: the horizon sell.
`exit_via` names which (`target`, `stop`, `horizon`), or `manual` with outcome null when
the gateway's own exits did not sell all it bought (someone else's order made it flat).
The realized P&L counts the gateway's own fills only: what its exits sold, at their
prices, against the entry's fill price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from zero_tasks.core.lifecycle.state import Facts, LifecycleRecord, OrderFacts

SCHEMA_VERSION = "1.0"
Via = Literal["target", "stop", "horizon", "manual"]
LABEL: dict[str, str | None] = {"target": "PASS", "stop": "FAIL", "horizon": "EXPIRED", "manual": None}


@dataclass(frozen=True)
class Outcome:
    execution_id: str
    ticker: str
    horizon: str
    probability: float | None
    target_atr: float
    stop_atr: float
    atr: float | None
    qty: int
    entry_price: float
    exit_price: float | None
    realized_pnl: float | None
    return_pct: float | None
    outcome: str | None
    exit_via: Via
    opened_at: datetime
    closed_at: datetime
    held_s: int

    def to_message(self) -> dict[str, Any]:
        """The contract's `chan:execution_outcome` shape, field for field."""
        return {"schema_version": SCHEMA_VERSION, "execution_id": self.execution_id, "ticker": self.ticker,
                "horizon": self.horizon, "probability": self.probability, "target_atr": self.target_atr,
                "stop_atr": self.stop_atr, "atr": self.atr, "qty": self.qty, "entry_price": self.entry_price,
                "exit_price": self.exit_price, "realized_pnl": self.realized_pnl, "return_pct": self.return_pct,
                "outcome": self.outcome, "exit_via": self.exit_via, "opened_at": self.opened_at.isoformat(),
                "closed_at": self.closed_at.isoformat(), "held_s": self.held_s}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Outcome:
        values = {k: v for k, v in data.items() if k != "schema_version"}
        values["opened_at"] = datetime.fromisoformat(values["opened_at"])
        values["closed_at"] = datetime.fromisoformat(values["closed_at"])
        return cls(**values)


def _via(facts: Facts) -> Via:
    if facts.sold < facts.bought:
        return "manual"
    for via, order in (("horizon", facts.horizon_sell), ("stop", facts.stop_leg), ("target", facts.target_leg)):
        if order is not None and order.filled_qty > 0:
            return via  # type: ignore[return-value]  # one of the Via literals, by the tuple above
    return "manual"


def outcome_of(rec: LifecycleRecord, facts: Facts, now: datetime) -> Outcome | str:
    """The outcome, or why it cannot be told (no entry fill)."""
    entry = facts.entry
    if entry is None or entry.filled_qty <= 0 or not entry.filled_avg_price:
        return "the entry has no fill: no outcome"
    exits = exits_of(facts)
    sold = sum(o.filled_qty for o in exits)
    exit_price = realized = ret = None
    if sold:
        proceeds = sum(o.proceeds for o in exits)
        exit_price = round(proceeds / sold, 4)
        realized = round(proceeds - sold * entry.filled_avg_price, 4)
        ret = round(100 * realized / (sold * entry.filled_avg_price), 3)
    opened = entry.filled_at or rec.rank_time
    closed = max((o.filled_at for o in exits if o.filled_at), default=now)
    via = _via(facts)
    return Outcome(rec.execution_id, rec.ticker, rec.horizon, rec.probability, rec.target_atr, rec.stop_atr, rec.atr,
                   entry.filled_qty, entry.filled_avg_price, exit_price, realized, ret, LABEL[via], via, opened, closed,
                   max(0, int((closed - opened).total_seconds())))


def exits_of(facts: Facts) -> list[OrderFacts]:
    """The execution's exit orders that sold something."""
    return [o for o in (facts.target_leg, facts.stop_leg, facts.horizon_sell) if o is not None and o.filled_qty > 0]
