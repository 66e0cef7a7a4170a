"""The two messages the CLI writes for a demo: an OpportunityRank and a MarketState.

Shapes follow ../shared/CONTRACT.md field for field, so what `publish-sample` sends is
exactly what ZERO's core logic sends and goes through the gateway's real intake.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from zero_tasks.core.contract import SCHEMA_VERSION, MarketState, execution_id


def opportunity_rank(ticker: str, probability: float, direction: str, horizon: str,
                     now: datetime) -> dict[str, Any]:
    """A one-entry ranking, rank_time and timestamps `now` (UTC), as in the contract's example."""
    stamp = now.isoformat()
    top = {"schema_version": SCHEMA_VERSION, "timestamp": stamp, "ticker": ticker, "horizon": horizon,
           "direction": direction, "direction_confidence": 71, "opportunity_score": 95,
           "probability": probability, "target_atr": 1.5, "stop_atr": 0.75, "market_state": "GREEN",
           "attention_stability_score": 80, "attention_bucket": "STABLE", "attention_alignment": 80,
           "why": ["sample from zero-ops publish-sample"], "liquidity_grade": "A"}
    return {"schema_version": SCHEMA_VERSION, "timestamp": stamp, "horizon": horizon, "rank_time": stamp,
            "total_candidates": 1, "opportunities": [top]}


def sample_execution_id(rank: dict[str, Any]) -> str:
    """The id the gateway will compute for this ranking: how the CLI recognises its answer."""
    top = rank["opportunities"][0]
    return execution_id(top["ticker"], top["horizon"], datetime.fromisoformat(rank["rank_time"]))


def market_state(state: str, reason: str | None, now: datetime) -> str:
    """A MarketState JSON stamped `now`, validated by the gateway's own model before it is written."""
    value: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "timestamp": now.isoformat(), "state": state,
                             "reason": reason}
    MarketState.model_validate(value)
    return json.dumps(value)
