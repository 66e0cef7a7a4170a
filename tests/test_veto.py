"""Rows 2-6 as pure functions: a table per rule, a fixed clock, no Redis."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from zero_tasks.decision import Code, Status
from zero_tasks.intake import Signal, parse_payload
from zero_tasks.veto import Limits, Snapshot, recheck_before_submit, veto

NOW = datetime(2026, 11, 24, 14, 30, 30, tzinfo=timezone.utc)
LIMITS = Limits(min_probability=0.90, market_state_max_age_s=300, signal_max_age_s=120)


def signal(probability: float = 0.95, direction: str = "LONG", ticker: str = "SPY", age_s: float = 30) -> Signal:
    rank_time = NOW - timedelta(seconds=age_s)
    payload = {"rank_time": rank_time.isoformat(), "opportunities": [{
        "ticker": ticker, "horizon": "H30", "opportunity_score": 95, "probability": probability,
        "target_atr": 1.5, "stop_atr": 0.75, "market_state": "GREEN", "attention_stability_score": 80,
        "direction": direction}]}
    parsed = parse_payload(json.dumps(payload), 1 << 20)
    assert isinstance(parsed, Signal)
    return parsed


def market(state: str = "GREEN", age_s: float = 10) -> str:
    return json.dumps({"timestamp": (NOW - timedelta(seconds=age_s)).isoformat(), "state": state})


def stand_down(scope: str, ticker: str | None = None, expires_in_s: float | None = 600) -> str:
    expires = (NOW + timedelta(seconds=expires_in_s)).isoformat() if expires_in_s is not None else None
    return json.dumps({"reason": "FOMC", "scope": scope, "ticker": ticker, "expires_at": expires})


def snap(enabled: str | None = "true", state: str | None = None, down: str | None = None,
         error: str | None = None) -> Snapshot:
    return Snapshot(enabled, market() if state is None else state, down, error)


@pytest.mark.parametrize("enabled", [None, "false", "TRUE", "True", " true", "true ", "1", "yes", ""])
def test_kill_switch_not_exactly_true_blocks(enabled: str | None) -> None:
    verdict = veto(signal(), snap(enabled=enabled), NOW, LIMITS)
    assert verdict and verdict.code is Code.DISABLED and verdict.status is Status.BLOCKED


def test_unreadable_redis_blocks_as_execution_disabled() -> None:
    verdict = veto(signal(), snap(error="redis: ConnectionError"), NOW, LIMITS)
    assert verdict and verdict.reason.startswith("execution disabled: kill switch unreadable")


@pytest.mark.parametrize("state", [
    market("RED"), market("YELLOW"), market("GREEN", age_s=301), market("GREEN", age_s=-400), "{bad json",
    json.dumps({"state": "GREEN"}), json.dumps({"timestamp": NOW.isoformat(), "state": "BLUE"}), "null", "[]",
])
def test_market_state_not_fresh_green_blocks(state: str) -> None:
    verdict = veto(signal(), snap(state=state), NOW, LIMITS)
    assert verdict and verdict.code is Code.MARKET_STATE and verdict.status is Status.BLOCKED


def test_missing_market_state_blocks() -> None:
    verdict = veto(signal(), Snapshot("true", None, None), NOW, LIMITS)
    assert verdict and verdict.reason == "market state: key:market_state is not set"


def test_market_state_age_limit_is_configurable_tighter() -> None:
    tight = Limits(0.90, market_state_max_age_s=60, signal_max_age_s=120)
    verdict = veto(signal(), snap(state=market(age_s=61)), NOW, tight)
    assert verdict and verdict.code is Code.MARKET_STATE and "stale" in verdict.reason


@pytest.mark.parametrize("down, blocks", [
    (stand_down("GLOBAL"), True),
    (stand_down("TICKER", "SPY"), True),
    (stand_down("TICKER", "spy"), True),
    (stand_down("TICKER", "AAPL"), False),
    (stand_down("SECTOR"), False),
    (stand_down("GLOBAL", expires_in_s=-1), False),
    (stand_down("GLOBAL", expires_in_s=None), True),
    ("not json", True),
])
def test_stand_down_in_force_for_the_ticker_blocks(down: str, blocks: bool) -> None:
    verdict = veto(signal(), snap(down=down), NOW, LIMITS)
    assert (verdict is not None and verdict.code is Code.STAND_DOWN) is blocks


@pytest.mark.parametrize("probability, direction, blocks", [
    (0.90, "LONG", False), (0.95, "LONG", False), (1.0, "LONG", False),
    (0.8999, "LONG", True), (0.0, "LONG", True), (0.95, "SHORT", True), (0.95, "NEUTRAL", True),
])
def test_threshold_probability_and_direction(probability: float, direction: str, blocks: bool) -> None:
    verdict = veto(signal(probability, direction), snap(), NOW, LIMITS)
    assert (verdict is not None and verdict.code is Code.THRESHOLD) is blocks


@pytest.mark.parametrize("age_s, expired", [(0, False), (120, False), (121, True), (3600, True), (-200, True)])
def test_signal_older_than_max_age_is_expired(age_s: float, expired: bool) -> None:
    verdict = veto(signal(age_s=age_s), snap(), NOW, LIMITS)
    assert (verdict is not None and verdict.code is Code.EXPIRED and verdict.status is Status.SKIPPED) is expired


def test_first_denial_wins_in_contract_order() -> None:
    everything_wrong = snap(enabled="false", state=market("RED"), down=stand_down("GLOBAL"))
    verdict = veto(signal(probability=0.1, age_s=999), everything_wrong, NOW, LIMITS)
    assert verdict and verdict.code is Code.DISABLED
    verdict = veto(signal(probability=0.1, age_s=999), snap(down=stand_down("GLOBAL")), NOW, LIMITS)
    assert verdict and verdict.code is Code.STAND_DOWN


def test_eligible_signal_has_no_objection() -> None:
    assert veto(signal(), snap(), NOW, LIMITS) is None


def test_recheck_before_submit_reads_only_kill_switch_and_market() -> None:
    assert recheck_before_submit(snap(down=stand_down("GLOBAL")), NOW, LIMITS) is None
    verdict = recheck_before_submit(snap(enabled="false"), NOW, LIMITS)
    assert verdict and verdict.code is Code.DISABLED
