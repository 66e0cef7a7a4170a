"""Every row of the contract's decision table, through the whole path, in SQLite and PostgreSQL.

publish on chan:opportunity_update -> bridge -> Celery worker -> simulator -> one
chan:trade_update event and one execution_log row with the contract's status and reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support.gateway import YESTERDAY_S, Gateway, market, now_iso, opportunity, ranking, zero_market
from zero_tasks.core.contract import client_order_id, execution_id

pytestmark = pytest.mark.e2e


def only_event(gw: Gateway, payload: object) -> dict:
    """The one event of a message, once the gateway has settled: exactly one event, exactly
    one row for its execution_id saying the same, and at most the one order of that message
    at the simulator (exactly one when SUBMITTED)."""
    (event,) = gw.decide(payload)
    (row,) = gw.wait_rows(1, event_key=event["decision_id"])
    assert len(gw.rows(execution_id=event["execution_id"])) == 1, "a second row for the message"
    assert row["status"] == event["status"]
    assert row["why"] == event["why"]
    assert row["execution_id"] == event["execution_id"]
    orders = gw.orders_for(event["execution_id"]) if event["execution_id"] else []
    assert len(orders) == (1 if event["status"] == "SUBMITTED" else 0), orders
    return event


def assert_decision(event: dict, status: str, reason_start: str) -> None:
    assert event["status"] == status, event
    assert event["why"][0].startswith(reason_start), event["why"]


# row 1 ---------------------------------------------------------------------------
@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "invalid payload"),
    (b"\xff\xfe\x00binary", "invalid payload"),
    (json.dumps({"hello": "world"}), "invalid payload"),
    (json.dumps(ranking(opportunity(probability="0.99"))), "invalid payload"),
    (json.dumps(ranking(opportunity(horizon="H5"))), "invalid payload"),
    (json.dumps(ranking(opportunities=[])), "no opportunities"),
    (json.dumps(ranking(opportunity("F250117C00012000"))), "invalid payload: rank 1 ticker"),  # an option
    (json.dumps(ranking(opportunity("BRK/../ORDERS"))), "invalid payload: rank 1 ticker"),
], ids=["not_json", "binary", "not_a_ranking", "probability_text", "horizon", "empty", "option_symbol",
        "path_in_ticker"])
def test_row1_bad_input_is_skipped_with_reason(gw: Gateway, payload: bytes, reason: str) -> None:
    gw.green()
    event = only_event(gw, payload)
    assert_decision(event, "SKIPPED", reason)
    assert gw.order_posts() == 0


# row 2 ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, "false", "TRUE", "True", " true", "1", "yes", "garbage"])
def test_row2_kill_switch_not_exactly_true_blocks(gw: Gateway, value: str | None) -> None:
    gw.green(enabled=False)
    if value is not None:
        gw.r.set("key:execution_enabled", value)
    event = only_event(gw, ranking(opportunity("AAPL")))
    assert_decision(event, "BLOCKED", "execution disabled")
    assert gw.order_posts() == 0


# row 3 ---------------------------------------------------------------------------
@pytest.mark.parametrize("state", [
    market("RED"), market("YELLOW"), None, market("GREEN", age_s=YESTERDAY_S), "garbage",
    json.dumps({"state": "GREEN"}),
], ids=["red", "yellow", "missing", "yesterday", "garbage", "no_timestamp"])
def test_row3_market_state_not_fresh_green_blocks(gw: Gateway, state: str | None) -> None:
    gw.r.set("key:execution_enabled", "true")
    if state is not None:
        gw.r.set("key:market_state", state)
    event = only_event(gw, ranking(opportunity("MSFT")))
    assert_decision(event, "BLOCKED", "market state")
    assert gw.order_posts() == 0


WEDNESDAY_3PM = "2026-11-25T20:00:00+00:00"  # 15:00 New York, the session open since 09:30
SATURDAY_NOON = "2026-11-28T17:00:00+00:00"


@pytest.mark.guarantee
def test_row3_unchanged_green_written_hours_ago_in_this_session_is_submitted(gw: Gateway) -> None:
    """ZERO writes key:market_state only when the state changes: a GREEN of 09:45 still holds at 15:00."""
    gw.market_hours(WEDNESDAY_3PM)
    gw.green()
    gw.r.set("key:market_state", zero_market("GREEN", age_s=5 * 3600, reason="Prime Window"))
    event = only_event(gw, ranking(opportunity("ADBE")))
    assert_decision(event, "SUBMITTED", "submitted")


@pytest.mark.guarantee
def test_row3_green_written_before_this_session_opened_is_blocked(gw: Gateway) -> None:
    """Yesterday's GREEN, unchanged overnight: 15:00 now, written at 08:00, before the 09:30 open."""
    gw.market_hours(WEDNESDAY_3PM)
    gw.green()
    gw.r.set("key:market_state", zero_market("GREEN", age_s=7 * 3600, reason="Closing Window"))
    event = only_event(gw, ranking(opportunity("ADBE")))
    assert_decision(event, "BLOCKED", "market state: stale: GREEN written")
    assert "before this session opened" in event["why"][0]
    assert gw.order_posts() == 0


@pytest.mark.guarantee
def test_row3_market_closed_blocks_a_fresh_green(gw: Gateway) -> None:
    gw.market_hours(SATURDAY_NOON)
    gw.green()
    event = only_event(gw, ranking(opportunity("ADBE")))
    assert_decision(event, "BLOCKED", "market state: market closed (next session opens 2026-11-30T14:30:00+00:00")
    assert gw.order_posts() == 0


@pytest.mark.guarantee
def test_row3_broker_that_cannot_tell_the_session_blocks(gw: Gateway) -> None:
    gw.green()
    gw.r.delete("key:execution_session")
    gw.sim("POST", "/_sim/fault", {"mode": "500", "count": -1, "method": "GET", "path": "/v2/clock"})
    event = only_event(gw, ranking(opportunity("ADBE")))
    assert_decision(event, "BLOCKED", "market state: trading session unknown (")
    assert gw.order_posts() == 0


def test_row3_session_is_asked_once_and_kept_for_every_worker(gw: Gateway) -> None:
    """One clock and calendar read serves the following decisions, whichever worker takes them."""
    gw.green()
    gw.r.delete("key:execution_session")
    gw.decide(ranking(opportunity("ADBE")))
    gw.decide(*[ranking(opportunity(t)) for t in ("INTU", "SNPS")])
    requests_seen = gw.sim("GET", "/_sim/stats")["requests"]
    assert requests_seen.get("GET /v2/clock") == 1 and requests_seen.get("GET /v2/calendar") == 1
    assert json.loads(gw.r.get("key:execution_session"))["is_open"] is True


# row 4 ---------------------------------------------------------------------------
@pytest.mark.parametrize("scope, ticker", [("GLOBAL", None), ("TICKER", "NVDA")])
def test_row4_stand_down_in_force_blocks(gw: Gateway, scope: str, ticker: str | None) -> None:
    gw.green()
    gw.r.set("key:stand_down_reason", json.dumps({
        "schema_version": "1.0", "timestamp": now_iso(), "reason": "FOMC in 10 min", "scope": scope,
        "ticker": ticker, "sector": None, "expires_at": now_iso(600)}))
    event = only_event(gw, ranking(opportunity("NVDA")))
    assert_decision(event, "BLOCKED", "stand-down")
    assert gw.order_posts() == 0


def test_row4_expired_stand_down_does_not_block(gw: Gateway) -> None:
    gw.green()
    gw.r.set("key:stand_down_reason", json.dumps({
        "reason": "over", "scope": "GLOBAL", "expires_at": now_iso(-60)}))
    assert_decision(only_event(gw, ranking(opportunity("NVDA"))), "SUBMITTED", "submitted")


# row 5 ---------------------------------------------------------------------------
@pytest.mark.parametrize("opps", [
    [opportunity("TSLA", probability=0.8999)],
    [opportunity("TSLA", direction="SHORT")],
    [opportunity("TSLA", probability=0.5), opportunity("AMD", probability=0.99)],
])
def test_row5_threshold_blocks_and_only_rank1_is_considered(gw: Gateway, opps: list) -> None:
    gw.green()
    event = only_event(gw, ranking(*opps))
    assert_decision(event, "BLOCKED", "threshold")
    assert gw.order_posts() == 0


# row 6 ---------------------------------------------------------------------------
def test_row6_old_ranking_is_skipped_expired(gw: Gateway) -> None:
    gw.green()
    old = datetime.now(UTC) - timedelta(seconds=121)
    event = only_event(gw, ranking(opportunity("META"), rank_time=old))
    assert_decision(event, "SKIPPED", "expired")
    assert gw.order_posts() == 0


# row 7 ---------------------------------------------------------------------------
def test_row7_same_execution_id_twice_is_skipped_duplicate(gw: Gateway) -> None:
    gw.green()
    rank = ranking(opportunity("AMZN"))
    first = only_event(gw, rank)
    (second,) = gw.decide(rank)
    assert_decision(first, "SUBMITTED", "submitted")
    assert_decision(second, "SKIPPED", "duplicate")
    assert len(gw.orders()) == 1


# row 8 ---------------------------------------------------------------------------
def test_row8_same_ticker_within_cooldown_is_skipped(gw: Gateway) -> None:
    gw.green()
    first = only_event(gw, ranking(opportunity("GOOG")))
    later = datetime.now(UTC) + timedelta(seconds=1)
    (second,) = gw.decide(ranking(opportunity("GOOG"), rank_time=later))
    assert first["execution_id"] != second["execution_id"]
    assert_decision(second, "SKIPPED", "cooldown")
    assert len(gw.orders()) == 1


# row 9 ---------------------------------------------------------------------------
def test_row9_open_position_at_broker_is_skipped(gw: Gateway) -> None:
    gw.green()
    gw.sim("POST", "/_sim/positions", {"symbol": "NFLX", "qty": "1"})
    event = only_event(gw, ranking(opportunity("NFLX")))
    assert_decision(event, "SKIPPED", "open position")
    assert gw.orders() == []
    assert gw.r.get("key:execution_cooldown:NFLX") is None  # reservation released


def test_row9_open_order_at_broker_is_skipped(gw: Gateway) -> None:
    gw.green()
    gw.sim("POST", "/_sim/config", {"fill": "manual"})
    first = only_event(gw, ranking(opportunity("ORCL")))
    gw.r.delete("key:execution_cooldown:ORCL", "key:execution_cooldown:ORCL:owner")
    later = datetime.now(UTC) + timedelta(seconds=1)
    (second,) = gw.decide(ranking(opportunity("ORCL"), rank_time=later))
    assert_decision(first, "SUBMITTED", "submitted")
    assert_decision(second, "SKIPPED", "open position")
    assert len(gw.orders()) == 1


def test_row9_exposure_that_is_this_decisions_own_order_is_submitted(gw: Gateway) -> None:
    """A copy of the same task (a redelivery) placed the order between this copy's lookup and
    its exposure read: the open order carries this decision's client_order_id, so the
    decision is SUBMITTED with that order, and its cooldown is kept."""
    gw.green()
    rank_time = datetime.now(UTC)
    cid = client_order_id(execution_id("AMGN", "H30", rank_time))
    placed = requests.post(gw.sim_url + "/v2/orders", timeout=10, json={
        "symbol": "AMGN", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day",
        "client_order_id": cid}, headers={"APCA-API-KEY-ID": "test-key-id", "APCA-API-SECRET-KEY": "test-secret-value"})
    placed.raise_for_status()
    event = only_event(gw, ranking(opportunity("AMGN"), rank_time=rank_time))
    assert_decision(event, "SUBMITTED", "submitted")
    assert event["alpaca_order_id"] == placed.json()["id"]
    assert len(gw.orders()) == 1
    assert gw.r.get("key:execution_cooldown:AMGN") is not None


# row 10 --------------------------------------------------------------------------
def test_row10_broker_403_is_rejected_and_cooldown_released(gw: Gateway) -> None:
    gw.green()
    gw.sim("POST", "/_sim/fault", {"mode": "403", "method": "POST", "path": "/v2/orders"})
    event = only_event(gw, ranking(opportunity("IBM")))
    assert_decision(event, "REJECTED", "broker rejected")
    assert "insufficient buying power" in event["why"][0]
    assert gw.orders() == []
    assert gw.r.get("key:execution_cooldown:IBM") is None


# row 11 --------------------------------------------------------------------------
def test_row11_broker_down_is_error_and_next_message_is_served(gw: Gateway) -> None:
    gw.green()
    gw.sim("POST", "/_sim/fault", {"mode": "503", "count": -1})
    event = only_event(gw, ranking(opportunity("INTC")))
    assert_decision(event, "ERROR", "error")
    gw.sim("DELETE", "/_sim/fault")
    (following,) = gw.decide(ranking(opportunity("CSCO")))
    assert_decision(following, "SUBMITTED", "submitted")
    assert [o["symbol"] for o in gw.orders()] == ["CSCO"]


# row 12 --------------------------------------------------------------------------
def test_row12_eligible_signal_is_submitted_as_one_share_market_day_buy(gw: Gateway) -> None:
    gw.green()
    event = only_event(gw, ranking(opportunity("SPY")))
    assert_decision(event, "SUBMITTED", "submitted")
    (order,) = gw.orders()
    assert (order["symbol"], order["qty"], order["side"], order["type"], order["time_in_force"]) == \
        ("SPY", "1", "buy", "market", "day")
    assert order["client_order_id"] == "zx-" + event["execution_id"]
    assert event["alpaca_order_id"] == order["id"]
    assert event["market_state"]["state"] == "GREEN" == event["market_state_snapshot"]["state"]
    assert event["why"] == ["submitted: 1 share SPY buy market day", "breakout above VWAP"]
    assert gw.r.get("key:execution_cooldown:SPY") is not None
    row = gw.rows()[0]
    assert row["alpaca_order_id"] == order["id"] and row["probability"] == 0.95
    assert row["payload"]["liquidity_grade"] == "A"  # unknown fields kept in the audit copy
