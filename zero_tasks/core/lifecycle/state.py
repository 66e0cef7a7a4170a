"""What an exit decision reads: the execution's lifecycle record and the broker's facts.

The record is what the gateway itself decided and must remember (kept in Redis, one hash
per execution: adapters/lifecycle_store.py): the entry's signal, the due time, the ATR and
the protect's prices once known, whether each exit's deferral and the outcome were
recorded, whether the position was handed to the operator. The broker's facts are read
afresh at every step (by client_order_id): what was filled is never remembered, always
asked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class Policy(StrEnum):
    """EXIT_POLICY: `zero` protect + horizon exit (ZERO's rule), `horizon` the time exit
    alone, `hold` never sell (the gateway's first version)."""

    ZERO = "zero"
    HORIZON = "horizon"
    HOLD = "hold"


TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced", "stopped",
                      "suspended", "calculated"})


@dataclass(frozen=True)
class LifecycleRecord:
    execution_id: str
    ticker: str
    horizon: str
    probability: float | None
    opportunity_score: float | None
    target_atr: float
    stop_atr: float
    rank_time: datetime
    policy: Policy
    event_key: str  # the entry decision's own key (its execution_log row)
    due_at: datetime | None = None  # set once the calendar is known
    atr: float | None = None
    atr_note: str | None = None  # why there is no ATR (then no protect)
    atr_tries: int = 0  # market-data reads that failed without an answer (asked again: atr.DATA_TRIES)
    protect_skipped: bool = False  # the one `no protect` decision is recorded
    protect_order_id: str | None = None  # the OCO's order id once placed (one read of both legs)
    limit_price: str | None = None  # the protect's prices as sent (decimal text)
    stop_price: str | None = None
    entry_fill: OrderFacts | None = None  # the entry once it ended (then never read again)
    sell_recorded: bool = False  # the horizon sell's SUBMITTED decision is kept
    protect_deferred: bool = False  # the protect's one BLOCKED `exit deferred` is recorded
    exit_deferred: bool = False  # the horizon exit's one BLOCKED `exit deferred` is recorded
    # The gateway sends no order for it any more (its one horizon sell ended or was refused with
    # shares left): the operator's; still looked at, slowly, until flat, for its outcome.
    handed_over: str | None = None
    finished: str | None = None  # why the lifecycle ended (outcome recorded, nothing bought, policy hold)

    def to_json(self) -> str:
        data = asdict(self)
        data["rank_time"] = self.rank_time.isoformat()
        data["due_at"] = self.due_at.isoformat() if self.due_at else None
        data["policy"] = self.policy.value
        fill = data["entry_fill"]
        if fill and fill["filled_at"]:
            fill["filled_at"] = fill["filled_at"].isoformat()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> LifecycleRecord:
        data: dict[str, Any] = json.loads(text)
        if "deferred" in data:  # a record kept before each exit had its own deferral: one said for both
            said = bool(data.pop("deferred"))
            data.update(protect_deferred=said, exit_deferred=said)
        data["rank_time"] = datetime.fromisoformat(data["rank_time"])
        data["due_at"] = datetime.fromisoformat(data["due_at"]) if data.get("due_at") else None
        data["policy"] = Policy(data["policy"])
        fill = data.get("entry_fill")
        if fill:
            fill["filled_at"] = datetime.fromisoformat(fill["filled_at"]) if fill.get("filled_at") else None
            data["entry_fill"] = OrderFacts(**fill)
        return cls(**data)

    def but(self, **changes: Any) -> LifecycleRecord:
        return replace(self, **changes)

    def due(self, now: datetime) -> bool:
        """The horizon has come (on the broker's clock `now`)."""
        return self.due_at is not None and now >= self.due_at


@dataclass(frozen=True)
class OrderFacts:
    """One order as the broker reports it now."""

    order_id: str
    status: str
    filled_qty: int
    filled_avg_price: float | None = None
    filled_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def proceeds(self) -> float:
        return self.filled_qty * (self.filled_avg_price or 0.0)


@dataclass(frozen=True)
class PositionFacts:
    """The account's position in the ticker (0 / 0 when it has none)."""

    qty: int = 0
    qty_available: int = 0  # what no open order holds


@dataclass(frozen=True)
class Facts:
    """The broker's answer at one step, read by client_order_id (entry, protect, exit)."""

    entry: OrderFacts | None
    position: PositionFacts
    target_leg: OrderFacts | None = None  # the OCO's take-profit (its parent order)
    stop_leg: OrderFacts | None = None  # the OCO's stop-loss leg
    horizon_sell: OrderFacts | None = None

    @property
    def protect_placed(self) -> bool:
        return self.target_leg is not None

    @property
    def protect_open(self) -> bool:
        return any(leg is not None and leg.open for leg in (self.target_leg, self.stop_leg))

    @property
    def sold(self) -> int:
        """Shares this execution's own exit orders sold."""
        return sum(o.filled_qty for o in (self.target_leg, self.stop_leg, self.horizon_sell) if o is not None)

    @property
    def bought(self) -> int:
        return self.entry.filled_qty if self.entry else 0

    @property
    def held(self) -> int:
        """What this execution still holds: bought less its own sales, never more than the account has."""
        return max(0, min(self.bought - self.sold, self.position.qty))


@dataclass(frozen=True)
class Gate:
    """Whether an exit order may go out now (kill switch `true`, market GREEN, session
    open), and if not, why."""

    allowed: bool
    why: str = ""
