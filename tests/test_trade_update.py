"""Every event the gateway can publish is one ZERO's own TradeUpdate model accepts.

The records are built by the gateway's own functions for each status and failure path;
the model is tests/support/zero_models.py, written from ZERO's contracts/schemas.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.support.gateway import market, opportunity, ranking, zero_market
from tests.support.zero_models import accepted_by_zero
from zero_tasks.adapters.alpaca_adapter import PlacedOrder
from zero_tasks.core.decision import Code, deny
from zero_tasks.core.intake import message_from_bytes
from zero_tasks.core.record import build_record, invalid_record
from zero_tasks.worker.flow import forged_record

NOW = datetime.now(UTC)


def event_of(payload: bytes, code: Code, market_raw: str | None, order: PlacedOrder | None = None) -> dict:
    msg, subject = message_from_bytes(payload, "test:1", NOW, 1 << 20)
    if code in (Code.INVALID, Code.NO_OPPORTUNITIES):
        rec = invalid_record(msg, subject, NOW)  # type: ignore[arg-type]
    else:
        rec = build_record(msg, subject, deny(code, "detail"), market_raw, NOW, order)
    event = json.loads(rec.to_trade_update())
    accepted_by_zero(event)
    return event


VALID = json.dumps(ranking(opportunity("SPY"))).encode()
ORDER = PlacedOrder("61e69015-8549-4bfd-b9c3-01e75843f47d", "zero-SPY", "accepted", NOW.isoformat())


@pytest.mark.parametrize("code", [c for c in Code if c not in (Code.INVALID, Code.NO_OPPORTUNITIES)])
def test_every_decision_of_a_valid_ranking_is_a_zero_trade_update(code: Code) -> None:
    event = event_of(VALID, code, zero_market("GREEN"), ORDER if code is Code.SUBMITTED else None)
    assert event["submitted_at"] is not None and event["market_state"]["state"] == "GREEN"
    assert event["horizon"] == "H30" and event["probability"] == 0.95


@pytest.mark.parametrize("payload", [
    b"{not json", b"\xff\xfe binary", json.dumps({"hello": "world"}).encode(),
    json.dumps(ranking(opportunity(horizon="H5"))).encode(), json.dumps(ranking(horizon="H5")).encode(),
    json.dumps(ranking(opportunities=[])).encode(), json.dumps(ranking(opportunity(probability=1.7))).encode(),
    json.dumps(ranking(opportunity(opportunity_score=250))).encode(),
], ids=["not_json", "binary", "not_a_ranking", "bad_opportunity_horizon", "bad_rank_horizon", "empty",
        "probability_out_of_range", "score_out_of_range"])
def test_a_skipped_payload_is_a_zero_trade_update_with_nulls_for_what_it_lacks(payload: bytes) -> None:
    event = event_of(payload, Code.INVALID, None)
    assert event["status"] == "SKIPPED" and event["submitted_at"] is not None  # the attempt time
    assert event["horizon"] in (None, "H30", "H2H", "HDAY", "HWEEK")
    assert event["market_state"] is None


@pytest.mark.parametrize("market_raw", [None, "garbage", json.dumps({"state": "PURPLE"}), "[1, 2]",
                                        json.dumps({"timestamp": NOW.isoformat(), "state": "GREEN",
                                                    "vix_level": "high"})],
                         ids=["missing", "not_json", "unknown_state", "not_an_object", "vix_not_a_number"])
def test_an_unusable_market_state_is_null_in_the_event_and_kept_in_the_snapshot(market_raw: str | None) -> None:
    event = event_of(VALID, Code.MARKET_STATE, market_raw)
    assert event["market_state"] is None
    assert (event["market_state_snapshot"] is None) is (market_raw is None)


def test_the_gateways_own_market_state_shape_is_a_zero_market_state() -> None:
    assert event_of(VALID, Code.SUBMITTED, market("GREEN"), ORDER)["market_state"]["vix_level"] == 14.2


def test_a_forged_task_refusal_is_a_zero_trade_update() -> None:
    event = json.loads(forged_record("zero.place_order", {"ticker": "IWM"}, "unsealed", NOW).to_trade_update())
    accepted_by_zero(event)
    assert event["status"] == "ERROR" and event["ticker"] is None and event["horizon"] is None
