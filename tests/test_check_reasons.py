"""Every check of the veto (zero_tasks/core/checks/) with the exact reason it gives: the
reason is what ZERO, the dashboard and an operator read, so each word is part of the rule.
Boundaries are tested on both sides."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from zero_tasks.core.checks.blocklist import check_blocklist
from zero_tasks.core.checks.breaker import breaker_probe_due, check_breaker
from zero_tasks.core.checks.kill_switch import check_kill_switch
from zero_tasks.core.checks.market_state import check_market_state, market_state_snapshot, parse_market_state
from zero_tasks.core.checks.signal_age import check_signal_age
from zero_tasks.core.checks.stand_down import check_stand_down
from zero_tasks.core.checks.threshold import check_threshold
from zero_tasks.core.decision import Verdict
from zero_tasks.core.intake import Signal, parse_payload
from zero_tasks.core.session import TradingSession
from zero_tasks.core.snapshot import Snapshot, json_object, operator_time

NOW = datetime(2026, 11, 24, 19, 30, 30, tzinfo=UTC)
OPENED = NOW - timedelta(hours=5)


def reason(verdict: Verdict | None) -> str | None:
    return None if verdict is None else verdict.reason


def snap(**over: str | None) -> Snapshot:
    fields: dict[str, str | None] = {"execution_enabled": "true", "market_state": None, "stand_down": None}
    fields.update(over)
    return Snapshot(**fields)  # type: ignore[arg-type]


def iso(delta_s: float) -> str:
    return (NOW + timedelta(seconds=delta_s)).isoformat()


def signal(probability: float = 0.95, direction: str = "LONG", age_s: float = 30) -> Signal:
    payload = {"rank_time": iso(-age_s), "opportunities": [{
        "ticker": "SPY", "horizon": "H30", "opportunity_score": 95, "probability": probability,
        "target_atr": 1.5, "stop_atr": 0.75, "market_state": "GREEN", "attention_stability_score": 80,
        "direction": direction}]}
    parsed = parse_payload(json.dumps(payload), 1 << 20)
    assert isinstance(parsed, Signal)
    return parsed


# -- row 2: the kill switch -----------------------------------------------------------------
@pytest.mark.parametrize(("over", "why"), [
    ({"error": "redis: ConnectionError"}, "execution disabled: kill switch unreadable (redis: ConnectionError)"),
    ({"execution_enabled": None}, "execution disabled: key:execution_enabled is not set"),
    ({"execution_enabled": "false"}, "execution disabled: key:execution_enabled is 'false', not 'true'"),
    ({"execution_enabled": "x" * 50}, f"execution disabled: key:execution_enabled is {'x' * 40!r}, not 'true'"),
    ({"execution_enabled": "true"}, None),
])
def test_kill_switch_reasons(over: dict[str, str | None], why: str | None) -> None:
    assert reason(check_kill_switch(snap(**over))) == why


# -- the breaker ----------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "why"), [
    (None, None),
    (json.dumps({"since": "09:31", "reason": "5 broker failures"}), "circuit open: since 09:31: 5 broker failures"),
    ("not json", "circuit open: since ?: unreadable state"),
    ("[1]", "circuit open: since ?: unreadable state"),
])
def test_breaker_reasons(raw: str | None, why: str | None) -> None:
    assert reason(check_breaker(snap(breaker=raw))) == why


@pytest.mark.parametrize(("raw", "due"), [
    (None, False), ("", False), ("not json", False), ("{}", False), (json.dumps({"since": iso(-60)}), False),
    (json.dumps({"until": iso(-1)}), True), (json.dumps({"until": iso(0)}), True),
    (json.dumps({"until": iso(1)}), False), (json.dumps({"until": "2026-11-24T19:00:00"}), False),
    (json.dumps({"until": 12}), False),
])
def test_breaker_probe_due_only_past_an_aware_until(raw: str | None, due: bool) -> None:
    assert breaker_probe_due(raw, NOW) is due


# -- the block list ---------------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "why"), [
    (None, None),
    ("garbage", "blocklist: SPY blocked (entry unreadable; failing closed)"),
    (json.dumps({"reason": "earnings"}), "blocklist: SPY blocked until removed: earnings"),
    (json.dumps({}), "blocklist: SPY blocked until removed: "),
    (json.dumps({"until": "soon", "reason": "news"}),
     "blocklist: SPY blocked (time 'soon' is not ISO 8601; failing closed): news"),
    (json.dumps({"until": "soon"}), "blocklist: SPY blocked (time 'soon' is not ISO 8601; failing closed): "),
    (json.dumps({"until": iso(-1), "reason": "news"}), None),
    (json.dumps({"until": iso(0), "reason": "news"}), None),
    (json.dumps({"until": iso(1), "reason": "news"}), f"blocklist: SPY blocked until {iso(1)}: news"),
    (json.dumps({"until": iso(1)}), f"blocklist: SPY blocked until {iso(1)}: "),
])
def test_blocklist_reasons(entry: str | None, why: str | None) -> None:
    assert reason(check_blocklist(snap(blocklist=entry), "SPY", NOW)) == why


LONG_NAIVE = "2026-11-24 19:00:00.000000" + "0" * 30


@pytest.mark.parametrize(("value", "out"), [
    (12, "time 12 is not an ISO 8601 string"),
    (None, "time None is not an ISO 8601 string"),
    ("x" * 50, f"time {'x' * 40!r} is not ISO 8601"),
    ("2026-11-24T19:00:00", "time '2026-11-24T19:00:00' has no UTC offset"),
    (LONG_NAIVE, f"time {LONG_NAIVE[:40]!r} has no UTC offset"),
    ("garbage" + "!" * 50, f"time {('garbage' + '!' * 50)[:40]!r} is not ISO 8601"),
    ("2026-11-24T19:00:00+00:00", datetime(2026, 11, 24, 19, tzinfo=UTC)),
])
def test_operator_time_is_aware_iso_or_the_reason(value: object, out: object) -> None:
    assert operator_time(value) == out


@pytest.mark.parametrize(("raw", "out"), [('{"a": 1}', {"a": 1}), ("[1]", None), ("nope", None), ("null", None)])
def test_json_object_is_a_dict_or_none(raw: str, out: object) -> None:
    assert json_object(raw) == out


# -- row 4: the stand-down ----------------------------------------------------------------------
def stand_down(scope: str, ticker: str | None = None, expires_s: float | None = 600, sector: str | None = None) -> str:
    return json.dumps({"reason": "FOMC", "scope": scope, "ticker": ticker, "sector": sector,
                       "expires_at": iso(expires_s) if expires_s is not None else None})


@pytest.mark.parametrize(("over", "why"), [
    ({"error": "redis: TimeoutError"}, "stand-down: unreadable (redis: TimeoutError)"),
    ({}, None),
    ({"stand_down": "{"}, "stand-down: key:stand_down_reason is unreadable; failing closed"),
    ({"stand_down": stand_down("GLOBAL")}, "stand-down: GLOBAL: FOMC"),
    ({"stand_down": stand_down("GLOBAL", expires_s=None)}, "stand-down: GLOBAL: FOMC"),
    ({"stand_down": stand_down("GLOBAL", expires_s=0)}, None),
    ({"stand_down": stand_down("GLOBAL", expires_s=-1)}, None),
    ({"stand_down": stand_down("GLOBAL", expires_s=1)}, "stand-down: GLOBAL: FOMC"),
    ({"stand_down": stand_down("TICKER", "SPY")}, "stand-down: TICKER SPY: FOMC"),
    ({"stand_down": stand_down("TICKER", "spy")}, "stand-down: TICKER SPY: FOMC"),
    ({"stand_down": stand_down("TICKER", "QQQ")}, None),
    ({"stand_down": stand_down("TICKER", None)}, None),
    ({"stand_down": stand_down("SECTOR", sector="tech")}, None),
])
def test_stand_down_reasons(over: dict[str, str | None], why: str | None) -> None:
    assert reason(check_stand_down(snap(**over), "SPY", NOW)) == why


def test_a_sector_stand_down_is_logged_as_not_applied(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="zero_tasks.core.checks.stand_down"):
        assert check_stand_down(snap(stand_down=stand_down("SECTOR", sector="tech")), "SPY", NOW) is None
    assert caplog.messages == ["stand-down for sector 'tech' not applied to SPY: the gateway has no sector data"]


# -- row 3: the market state ---------------------------------------------------------------------
def market(state: str = "GREEN", age_s: float = 60, reason_text: str | None = None) -> str:
    return json.dumps({"timestamp": iso(-age_s), "state": state, "reason": reason_text})


def kept(is_open: bool = True, until_s: float = 3600, next_open: datetime | None = None) -> str:
    return TradingSession(is_open, OPENED if is_open else None, NOW + timedelta(seconds=until_s), next_open,
                          NOW - timedelta(minutes=5)).to_json()


NEXT_OPEN = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(("over", "max_age", "why"), [
    ({"error": "redis: X"}, None, "market state: unreadable (redis: X)"),
    ({}, None, "market state: key:market_state is not set"),
    ({"market_state": "{}"}, None, "market state: unreadable (timestamp: Field required)"),
    ({"market_state": market()}, None,
     "market state: trading session unknown (not known yet); failing closed"),
    ({"market_state": market(), "session_error": "broker: 503"}, None,
     "market state: trading session unknown (broker: 503); failing closed"),
    ({"market_state": market(), "session": kept(until_s=0)}, None,
     f"market state: trading session answer expired at {NOW.isoformat()}; failing closed"),
    ({"market_state": market(), "session": kept(until_s=1)}, None, None),
    ({"market_state": market(), "session": kept(False, next_open=NEXT_OPEN)}, None,
     f"market state: market closed (next session opens {NEXT_OPEN.isoformat()}); no state is good before it"),
    ({"market_state": market(), "session": kept(False)}, None,
     "market state: market closed (next session opens unknown); no state is good before it"),
    ({"market_state": market(age_s=5 * 3600 + 1), "session": kept()}, None,
     f"market state: stale: GREEN written {(OPENED - timedelta(seconds=1)).isoformat()}, "
     f"before this session opened at {OPENED.isoformat()}"),
    ({"market_state": market(age_s=5 * 3600), "session": kept()}, None, None),
    ({"market_state": market(age_s=-300), "session": kept()}, None, None),
    ({"market_state": market(age_s=-301), "session": kept()}, None, "market state: timestamp 301s in the future"),
    ({"market_state": market(age_s=90), "session": kept()}, 90.0, None),
    ({"market_state": market(age_s=91), "session": kept()}, 90.0,
     "market state: stale: GREEN is 91s old (MARKET_STATE_MAX_AGE_S 90s)"),
    ({"market_state": market("YELLOW", reason_text="VIX up"), "session": kept()}, None,
     "market state: YELLOW (VIX up), only GREEN permits an order"),
    ({"market_state": market("RED"), "session": kept()}, None, "market state: RED, only GREEN permits an order"),
])
def test_market_state_reasons(over: dict[str, str | None], max_age: float | None, why: str | None) -> None:
    assert reason(check_market_state(snap(**over), NOW, max_age)) == why


@pytest.mark.parametrize(("raw", "out"), [
    (None, "key:market_state is not set"),
    ("[]", "unreadable (value: Input should be an object)"),
    ('{"timestamp": "2026-11-24T19:00:00+00:00", "state": "BLUE"}',
     "unreadable (state: Input should be 'GREEN', 'YELLOW' or 'RED')"),
])
def test_parse_market_state_says_why_there_is_none(raw: str | None, out: str) -> None:
    assert parse_market_state(raw) == out


@pytest.mark.parametrize(("raw", "kept_value"), [
    (None, None),
    ('{"state": "RED", "x": [1]}', {"state": "RED", "x": [1]}),
    ("not json " + "x" * 300, {"unreadable": ("not json " + "x" * 300)[:200]}),
    ("[1, 2]", {"unreadable": "[1, 2]"}),
])
def test_the_audit_keeps_the_market_state_as_read_or_why_it_was_unusable(raw: str | None, kept_value: object) -> None:
    assert market_state_snapshot(raw) == kept_value


# -- rows 5 and 6: threshold and age -------------------------------------------------------------
@pytest.mark.parametrize(("sig", "why"), [
    (signal(0.90), None),
    (signal(0.8999), "threshold: probability 0.8999 < 0.9"),
    (signal(0.95, "SHORT"), "threshold: direction SHORT is not LONG"),
])
def test_threshold_reasons(sig: Signal, why: str | None) -> None:
    assert reason(check_threshold(sig, 0.9)) == why


@pytest.mark.parametrize(("age_s", "why"), [
    (120, None), (121, "expired: ranking is 121s old (max 120s)"),
    (-120, None), (-121, "expired: rank_time is 121s in the future"),
])
def test_signal_age_reasons(age_s: float, why: str | None) -> None:
    assert reason(check_signal_age(signal(age_s=age_s), NOW, 120)) == why


def test_a_ticker_stand_down_without_a_ticker_applies_to_no_ticker() -> None:
    assert check_stand_down(snap(stand_down=stand_down("TICKER", None)), "XXXX", NOW) is None


def test_a_long_market_state_that_is_not_an_object_is_kept_cut_to_200_characters() -> None:
    raw = "[" + "1," * 150 + "1]"
    assert market_state_snapshot(raw) == {"unreadable": raw[:200]}


def test_the_veto_names_the_signals_ticker_in_a_block_list_refusal() -> None:
    from zero_tasks.core.pipeline import veto
    from zero_tasks.core.snapshot import Limits

    good = snap(market_state=market(), session=kept(), blocklist=json.dumps({"reason": "earnings"}))
    verdict = veto(signal(), good, NOW, Limits(0.9, None, 120))
    assert reason(verdict) == "blocklist: SPY blocked until removed: earnings"
