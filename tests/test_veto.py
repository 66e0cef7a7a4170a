"""Rows 2-6 as pure functions: a table per rule, a fixed clock, no Redis."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from zero_tasks.decision import Code, Status
from zero_tasks.intake import Signal, parse_payload
from zero_tasks.veto import Limits, Snapshot, breaker_probe_due, recheck_before_submit, veto

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


@pytest.mark.parametrize("changed, code", [
    (dict(enabled="false"), Code.DISABLED),
    (dict(breaker=json.dumps({"since": NOW.isoformat(), "reason": "3 failures"})), Code.CIRCUIT_OPEN),
    (dict(state=market("RED")), Code.MARKET_STATE),
    (dict(down=stand_down("GLOBAL")), Code.STAND_DOWN),
    (dict(down=stand_down("TICKER", "SPY")), Code.STAND_DOWN),
    (dict(blocklist=json.dumps({"until": (NOW + timedelta(hours=1)).isoformat(), "reason": "earnings"})),
     Code.BLOCKLIST),
], ids=["kill_switch", "breaker", "market_red", "stand_down_global", "stand_down_ticker", "blocklist"])
def test_the_whole_veto_runs_again_at_submit(changed: dict[str, str], code: Code) -> None:
    base = dict(enabled="true", state=market(), down=None, breaker=None, blocklist=None)
    values = {**base, **changed}
    current = Snapshot(values["enabled"], values["state"], values["down"], breaker=values["breaker"],
                       blocklist=values["blocklist"])
    verdict = recheck_before_submit(signal(), current, NOW, LIMITS)
    assert verdict and verdict.code is code


def test_a_signal_that_grew_too_old_while_retrying_is_expired_at_submit() -> None:
    verdict = recheck_before_submit(signal(age_s=130), snap(), NOW, LIMITS)
    assert verdict and verdict.code is Code.EXPIRED


def test_nothing_changed_means_no_objection_at_submit() -> None:
    assert recheck_before_submit(signal(), snap(), NOW, LIMITS) is None


# operator keys typed by hand fail closed for the message they concern --------------------
@pytest.mark.parametrize("until", ["2026-11-24T15:00:00", "tomorrow", "", 1764000000, ["x"], "2026-13-45T00:00:00+00:00"],
                         ids=["naive", "words", "empty", "number", "list", "impossible_date"])
def test_a_blocklist_entry_with_an_unusable_time_blocks_with_the_reason(until: object) -> None:
    entry = json.dumps({"until": until, "reason": "earnings"})
    verdict = veto(signal(), Snapshot("true", market(), None, blocklist=entry), NOW, LIMITS)
    assert verdict and verdict.code is Code.BLOCKLIST and "failing closed" in verdict.detail


def test_a_blocklist_entry_that_has_expired_no_longer_blocks() -> None:
    entry = json.dumps({"until": (NOW - timedelta(seconds=1)).isoformat(), "reason": "earnings"})
    assert veto(signal(), Snapshot("true", market(), None, blocklist=entry), NOW, LIMITS) is None


@pytest.mark.parametrize("until", ["2026-11-24T14:00:00", "soon", 5, None])
def test_a_breaker_with_an_unusable_time_stays_open_and_asks_no_probe(until: object) -> None:
    raw = json.dumps({"since": "2026-11-24T14:00:00+00:00", "until": until, "reason": "failures"})
    assert breaker_probe_due(raw, NOW) is False
    verdict = veto(signal(), Snapshot("true", market(), None, breaker=raw), NOW, LIMITS)
    assert verdict and verdict.code is Code.CIRCUIT_OPEN


def test_a_breaker_past_its_cool_off_asks_for_a_probe() -> None:
    raw = json.dumps({"since": "2026-11-24T14:00:00+00:00", "until": "2026-11-24T14:10:00+00:00"})
    assert breaker_probe_due(raw, NOW) is True
