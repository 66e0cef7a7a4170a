"""ZERO's own event model, written here from its published fields and rules.

ZERO at gamerzgit/zero-trading-intelligence 0a64d61 (contracts/schemas.py) defines the
TradeUpdate a consumer of chan:trade_update parses, and the MarketState it nests. These
are the same fields, types, bounds and defaults, in pydantic v2 as ZERO uses it (lax
mode, extra fields ignored), so a test can say "ZERO would accept this event".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

Horizon = Literal["H30", "H2H", "HDAY", "HWEEK"]


class ZeroBase(BaseModel):
    schema_version: str = "1.0"
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ZeroMarketState(ZeroBase):
    state: Literal["GREEN", "YELLOW", "RED"]
    vix_level: float | None = None
    vixy_price: float | None = None
    vix_roc: float | None = None
    adv_decl: float | None = None
    trin: float | None = None
    breadth_score: float | None = None
    event_risk: bool = False
    reason: str | None = None


class ZeroTradeUpdate(ZeroBase):
    execution_id: str
    ticker: str | None = None
    horizon: Horizon | None = None
    probability: float | None = Field(None, ge=0.0, le=1.0)
    opportunity_score: float | None = Field(None, ge=0, le=100)
    status: Literal["SUBMITTED", "BLOCKED", "SKIPPED", "REJECTED", "ERROR"]
    alpaca_order_id: str | None = None
    market_state: ZeroMarketState | None = None
    why: list[str] | None = None
    submitted_at: datetime


def accepted_by_zero(event: dict) -> ZeroTradeUpdate:
    """The event as ZERO's consumer parses it; raises pydantic.ValidationError if it would not."""
    return ZeroTradeUpdate.model_validate(event)
