"""ZERO's own event model, written here from its published fields and rules.

ZERO at gamerzgit/zero-trading-intelligence 0a64d61 (contracts/schemas.py) defines the
TradeUpdate a consumer of chan:trade_update parses, and the MarketState it nests. These
are the same fields, types, bounds and defaults, in pydantic v2 as ZERO uses it (lax
mode, extra fields ignored), so a test can say "ZERO would accept this event".
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import List, Literal, Optional

from pydantic import BaseModel, Field

Horizon = Literal["H30", "H2H", "HDAY", "HWEEK"]


class ZeroBase(BaseModel):
    schema_version: str = "1.0"
    timestamp: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class ZeroMarketState(ZeroBase):
    state: Literal["GREEN", "YELLOW", "RED"]
    vix_level: Optional[float] = None
    vixy_price: Optional[float] = None
    vix_roc: Optional[float] = None
    adv_decl: Optional[float] = None
    trin: Optional[float] = None
    breadth_score: Optional[float] = None
    event_risk: bool = False
    reason: Optional[str] = None


class ZeroTradeUpdate(ZeroBase):
    execution_id: str
    ticker: Optional[str] = None
    horizon: Optional[Horizon] = None
    probability: Optional[float] = Field(None, ge=0.0, le=1.0)
    opportunity_score: Optional[float] = Field(None, ge=0, le=100)
    status: Literal["SUBMITTED", "BLOCKED", "SKIPPED", "REJECTED", "ERROR"]
    alpaca_order_id: Optional[str] = None
    market_state: Optional[ZeroMarketState] = None
    why: Optional[List[str]] = None
    submitted_at: datetime


def accepted_by_zero(event: dict) -> ZeroTradeUpdate:
    """The event as ZERO's consumer parses it; raises pydantic.ValidationError if it would not."""
    return ZeroTradeUpdate.model_validate(event)
