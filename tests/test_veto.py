"""Rows 2-6 as pure functions: a table per rule, a fixed clock, no Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from zero_tasks.core.checks.breaker import breaker_probe_due
from zero_tasks.core.decision import Code, Status
from zero_tasks.core.intake import Signal, parse_payload
from zero_tasks.core.pipeline import recheck_before_submit, veto
from zero_tasks.core.session import TradingSession
from zero_tasks.core.snapshot import Limits, Snapshot

NOW = datetime(2026, 11, 24, 19, 30, 30, tzinfo=UTC)
LIMITS = Limits(min_probability=0.90, market_state_max_age_s=None, signal_max_age_s=120)


def session(opened_s_ago: float = 6 * 3600, closes_in_s: float = 3600) -> str:
    """The kept trading session: open since `opened_s_ago`, good until the close."""
    return TradingSession(True, NOW - timedelta(seconds=opened_s_ago), NOW + timedelta(seconds=closes_in_s),
                          None, NOW - timedelta(minutes=5)).to_json()


CLOSED = TradingSession(False, None, NOW + timedelta(hours=15), NOW + timedelta(hours=15), NOW).to_json()


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
         error: str | None = None, kept: str | None = "open") -> Snapshot:
    return Snapshot(enabled, market() if state is None else state, down, error,
                    session=session() if kept == "open" else kept)


@pytest.mark.parametrize("enabled", [None, "false", "TRUE", "True", " true", "true ", "1", "yes", ""])
def test_kill_switch_not_exactly_true_blocks(enabled: str | None) -> None:
    verdict = veto(signal(), snap(enabled=enabled), NOW, LIMITS)
    assert verdict and verdict.code is Code.DISABLED and verdict.status is Status.BLOCKED


def test_unreadable_redis_blocks_as_execution_disabled() -> None:
    verdict = veto(signal(), snap(error="redis: ConnectionError"), NOW, LIMITS)
    assert verdict and verdict.reason.startswith("execution disabled: kill switch unreadable")


@pytest.mark.parametrize(("state", "reason"), [
    (market("RED"), "market state: RED, only GREEN permits an order"),
    (market("YELLOW"), "market state: YELLOW, only GREEN permits an order"),
    (market("GREEN", age_s=-400), "market state: timestamp 400s in the future"),
    ("{bad json", "market state: unreadable (value: Invalid JSON: key must be a string at line 1 column 2)"),
    (json.dumps({"state": "GREEN"}), "market state: unreadable (timestamp: Field required)"),
    (json.dumps({"timestamp": NOW.isoformat(), "state": "BLUE"}),
     "market state: unreadable (state: Input should be 'GREEN', 'YELLOW' or 'RED')"),
    ("null", "market state: unreadable (value: Input should be an object)"),
    ("[]", "market state: unreadable (value: Input should be an object)"),
])
def test_market_state_not_green_or_unreadable_blocks_with_its_reason(state: str, reason: str) -> None:
    verdict = veto(signal(), snap(state=state), NOW, LIMITS)
    assert verdict and verdict.code is Code.MARKET_STATE and verdict.status is Status.BLOCKED
    assert verdict.reason == reason


def test_missing_market_state_blocks() -> None:
    verdict = veto(signal(), Snapshot("true", None, None), NOW, LIMITS)
    assert verdict and verdict.reason == "market state: key:market_state is not set"


@pytest.mark.parametrize("age_s", [10, 20 * 60, 3 * 3600, 6 * 3600 - 1])
def test_unchanged_green_written_during_this_session_permits_however_old(age_s: float) -> None:
    """ZERO writes the key only when the state changes: an hours-old GREEN of this session is good."""
    assert veto(signal(), snap(state=market(age_s=age_s)), NOW, LIMITS) is None


@pytest.mark.parametrize("age_s", [6 * 3600 + 1, 24 * 3600, 3 * 86400])
def test_green_written_before_this_session_opened_blocks(age_s: float) -> None:
    """Yesterday's GREEN, a weekend's: written before the session now open."""
    verdict = veto(signal(), snap(state=market(age_s=age_s)), NOW, LIMITS)
    assert verdict and verdict.code is Code.MARKET_STATE
    assert verdict.detail.startswith("stale: GREEN written ") and "before this session opened" in verdict.detail


def test_market_closed_blocks_even_a_fresh_green() -> None:
    verdict = veto(signal(), snap(state=market(age_s=1), kept=CLOSED), NOW, LIMITS)
    assert verdict and verdict.code is Code.MARKET_STATE and verdict.detail.startswith("market closed")


@pytest.mark.parametrize("kept, why", [
    (None, "not known yet"), ("{garbage", "unreadable"), (json.dumps({"is_open": True}), "unreadable"),
    (json.dumps({"is_open": "yes", "opened_at": None, "until": NOW.isoformat(), "next_open": None,
                 "checked_at": NOW.isoformat()}), "unreadable"),
    (json.dumps({"is_open": True, "opened_at": None, "until": (NOW + timedelta(hours=1)).isoformat(),
                 "next_open": None, "checked_at": NOW.isoformat()}), "unreadable"),
    (json.dumps({"is_open": True, "opened_at": "2026-11-24T14:30:00", "until": "2026-11-24T21:00:00",
                 "next_open": None, "checked_at": "2026-11-24T19:00:00"}), "unreadable"),
], ids=["missing", "not_json", "fields_missing", "is_open_not_bool", "open_without_open_time", "naive_times"])
def test_trading_session_unknown_or_unreadable_blocks(kept: str | None, why: str) -> None:
    verdict = veto(signal(), snap(kept=kept), NOW, LIMITS)
    assert verdict and verdict.code is Code.MARKET_STATE
    assert verdict.detail.startswith("trading session unknown (") and why in verdict.detail


def test_broker_that_cannot_tell_the_session_blocks_with_its_reason() -> None:
    unknown = Snapshot("true", market(), None, session_error="BrokerTransient: timeout")
    verdict = veto(signal(), unknown, NOW, LIMITS)
    assert verdict and verdict.detail == "trading session unknown (BrokerTransient: timeout); failing closed"


def test_trading_session_answer_past_its_time_blocks() -> None:
    verdict = veto(signal(), snap(kept=session(closes_in_s=0)), NOW, LIMITS)
    assert verdict and verdict.code is Code.MARKET_STATE and "answer expired" in verdict.detail


def test_optional_market_state_max_age_blocks_an_older_state() -> None:
    tight = Limits(0.90, market_state_max_age_s=60, signal_max_age_s=120)
    assert veto(signal(), snap(state=market(age_s=59)), NOW, tight) is None
    verdict = veto(signal(), snap(state=market(age_s=61)), NOW, tight)
    assert verdict and verdict.code is Code.MARKET_STATE and "MARKET_STATE_MAX_AGE_S 60s" in verdict.detail


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
    ({"enabled": "false"}, Code.DISABLED),
    ({"breaker": json.dumps({"since": NOW.isoformat(), "reason": "3 failures"})}, Code.CIRCUIT_OPEN),
    ({"state": market("RED")}, Code.MARKET_STATE),
    ({"kept": CLOSED}, Code.MARKET_STATE),
    ({"down": stand_down("GLOBAL")}, Code.STAND_DOWN),
    ({"down": stand_down("TICKER", "SPY")}, Code.STAND_DOWN),
    ({"blocklist": json.dumps({"until": (NOW + timedelta(hours=1)).isoformat(), "reason": "earnings"})},
     Code.BLOCKLIST),
], ids=["kill_switch", "breaker", "market_red", "market_closed", "stand_down_global", "stand_down_ticker", "blocklist"])
def test_the_whole_veto_runs_again_at_submit(changed: dict[str, str], code: Code) -> None:
    base = {"enabled": "true", "state": market(), "down": None, "breaker": None, "blocklist": None, "kept": session()}
    values = {**base, **changed}
    current = Snapshot(values["enabled"], values["state"], values["down"], breaker=values["breaker"],
                       blocklist=values["blocklist"], session=values["kept"])
    verdict = recheck_before_submit(signal(), current, NOW, LIMITS)
    assert verdict and verdict.code is code


def test_a_signal_that_grew_too_old_while_retrying_is_expired_at_submit() -> None:
    verdict = recheck_before_submit(signal(age_s=130), snap(), NOW, LIMITS)
    assert verdict and verdict.code is Code.EXPIRED


def test_nothing_changed_means_no_objection_at_submit() -> None:
    assert recheck_before_submit(signal(), snap(), NOW, LIMITS) is None


# operator keys typed by hand fail closed for the message they concern --------------------
@pytest.mark.parametrize("until", ["2026-11-24T15:00:00", "tomorrow", "", 1764000000, ["x"],
                                   "2026-13-45T00:00:00+00:00"],
                         ids=["naive", "words", "empty", "number", "list", "impossible_date"])
def test_a_blocklist_entry_with_an_unusable_time_blocks_with_the_reason(until: object) -> None:
    entry = json.dumps({"until": until, "reason": "earnings"})
    verdict = veto(signal(), Snapshot("true", market(), None, blocklist=entry, session=session()), NOW, LIMITS)
    assert verdict and verdict.code is Code.BLOCKLIST and "failing closed" in verdict.detail


def test_a_blocklist_entry_that_has_expired_no_longer_blocks() -> None:
    entry = json.dumps({"until": (NOW - timedelta(seconds=1)).isoformat(), "reason": "earnings"})
    assert veto(signal(), Snapshot("true", market(), None, blocklist=entry, session=session()), NOW, LIMITS) is None


@pytest.mark.parametrize("until", ["2026-11-24T14:00:00", "soon", 5, None])
def test_a_breaker_with_an_unusable_time_stays_open_and_asks_no_probe(until: object) -> None:
    raw = json.dumps({"since": "2026-11-24T14:00:00+00:00", "until": until, "reason": "failures"})
    assert breaker_probe_due(raw, NOW) is False
    verdict = veto(signal(), Snapshot("true", market(), None, breaker=raw, session=session()), NOW, LIMITS)
    assert verdict and verdict.code is Code.CIRCUIT_OPEN


def test_a_breaker_past_its_cool_off_asks_for_a_probe() -> None:
    raw = json.dumps({"since": "2026-11-24T14:00:00+00:00", "until": "2026-11-24T14:10:00+00:00"})
    assert breaker_probe_due(raw, NOW) is True
