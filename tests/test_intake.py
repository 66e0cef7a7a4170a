"""Row 1 and the execution_id: any bytes at all come out as a value, never an exception."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from zero_tasks.core.contract import client_order_id, execution_id
from zero_tasks.core.intake import Invalid, Signal, parse_payload

LIMIT = 1 << 20


def rank(**opp_over: object) -> dict:
    opp = {"ticker": "SPY", "horizon": "H30", "opportunity_score": 95, "probability": 0.95, "target_atr": 1.5,
           "stop_atr": 0.75, "market_state": "GREEN", "attention_stability_score": 80}
    opp.update(opp_over)
    return {"rank_time": "2026-11-24T14:30:00.987+00:00", "horizon": "H30", "opportunities": [opp]}


def test_execution_id_is_zero_compatible() -> None:
    parsed = parse_payload(json.dumps(rank()), LIMIT)
    assert isinstance(parsed, Signal) and parsed.execution_id == "SPY:H30:2026-11-24T14:30:00"


def test_rank_time_without_offset_is_utc_and_offsets_are_normalised() -> None:
    naive = datetime(2026, 11, 24, 14, 30)
    assert execution_id("SPY", "H30", naive) == "SPY:H30:2026-11-24T14:30:00"
    payload = rank() | {"rank_time": "2026-11-24T09:30:00-05:00"}
    parsed = parse_payload(json.dumps(payload), LIMIT)
    assert isinstance(parsed, Signal) and parsed.execution_id == "SPY:H30:2026-11-24T14:30:00"


def test_client_order_id_is_deterministic_and_fits_alpaca() -> None:
    assert client_order_id("SPY:H30:2026-11-24T14:30:00") == "zx-SPY:H30:2026-11-24T14:30:00"
    long_id = "X" * 200
    assert client_order_id(long_id) == client_order_id(long_id) and len(client_order_id(long_id)) <= 128


def test_unknown_fields_are_kept_for_the_audit() -> None:
    parsed = parse_payload(json.dumps(rank(liquidity_grade="A", custom={"x": 1})), LIMIT)
    assert isinstance(parsed, Signal)
    assert parsed.audit_copy["liquidity_grade"] == "A" and parsed.audit_copy["custom"] == {"x": 1}


def test_only_rank1_is_validated_strictly() -> None:
    payload = rank()
    payload["opportunities"].append({"garbage": True})
    assert isinstance(parse_payload(json.dumps(payload), LIMIT), Signal)


@pytest.mark.parametrize("data, reason", [
    (b"", "invalid payload"),
    (b"{", "invalid payload"),
    (b"\xff\xfe", "invalid payload: not UTF-8"),
    (b"[]", "invalid payload"),
    (b"null", "invalid payload"),
    (b"[" * 10000 + b"]" * 10000, "invalid payload"),
    (json.dumps({"opportunities": []}).encode(), "invalid payload"),  # no rank_time
    (json.dumps(rank() | {"rank_time": "1732458600"}).encode(), "invalid payload: rank_time"),  # epoch, not ISO
    (json.dumps(rank() | {"rank_time": "9999-12-31T23:59:59-05:00"}).encode(), "invalid payload: rank_time"),
    (json.dumps(rank() | {"opportunities": []}).encode(), "no opportunities"),
    (json.dumps(rank(probability=True)).encode(), "invalid payload: rank 1 probability"),
    (json.dumps(rank(probability="0.95")).encode(), "invalid payload: rank 1 probability"),
    (json.dumps(rank(probability=1.5)).encode(), "invalid payload: rank 1 probability"),
    (json.dumps(rank(probability=-0.1)).encode(), "invalid payload: rank 1 probability"),
    (json.dumps(rank(probability=float("nan"))).encode(), "invalid payload: rank 1 probability"),
    (json.dumps(rank(probability=float("inf"))).encode(), "invalid payload: rank 1 probability"),
    (json.dumps(rank(horizon="H5")).encode(), "invalid payload: rank 1 horizon"),
    (json.dumps(rank(ticker="")).encode(), "invalid payload: rank 1 ticker"),
    (json.dumps(rank(ticker="spy")).encode(), "invalid payload: rank 1 ticker"),
    (json.dumps(rank(ticker="A" * 5000)).encode(), "invalid payload: rank 1 ticker"),
    (json.dumps(rank(market_state="PURPLE")).encode(), "invalid payload: rank 1 market_state"),
    (json.dumps(rank(direction="UP")).encode(), "invalid payload: rank 1 direction"),
    (json.dumps(rank(opportunity_score=101)).encode(), "invalid payload: rank 1 opportunity_score"),
    (json.dumps(rank() | {"opportunities": [None]}).encode(), "invalid payload: rank 1"),
])
def test_bad_input_is_invalid_with_a_clear_reason(data: bytes, reason: str) -> None:
    parsed = parse_payload(data, LIMIT)
    assert isinstance(parsed, Invalid)
    assert parsed.reason.startswith(reason), parsed.reason
    assert parsed.execution_id.startswith("invalid:")
    assert len(parsed.reason) < 400


@pytest.mark.parametrize("ticker", ["F250117C00012000", "SPY250117C00500000", "BRK/../ORDERS", "BRK/B", "BF-B",
                                    "0700", "SPY1", "BRK.B.C", "BRK.", ".B", "BRK.BCD", "ABCDEFG", "SP Y",
                                    "BTC/USD", "Spy", "SPY\n"])
def test_a_rank_1_ticker_that_is_not_a_us_equity_symbol_is_invalid(ticker: str) -> None:
    parsed = parse_payload(json.dumps(rank(ticker=ticker)), LIMIT)
    assert isinstance(parsed, Invalid) and parsed.reason.startswith("invalid payload: rank 1 ticker"), parsed


@pytest.mark.parametrize("ticker", ["SPY", "A", "GOOGL", "BRK.B", "BF.B", "QQQ", "IWM"])
def test_a_us_equity_symbol_is_a_ticker(ticker: str) -> None:
    parsed = parse_payload(json.dumps(rank(ticker=ticker)), LIMIT)
    assert isinstance(parsed, Signal) and parsed.top.ticker == ticker


def test_a_message_over_the_size_limit_is_invalid_without_parsing() -> None:
    parsed = parse_payload(b" " * (LIMIT + 1), LIMIT)
    assert isinstance(parsed, Invalid) and "exceeds" in parsed.reason


def test_a_one_megabyte_message_within_the_limit_is_parsed() -> None:
    payload = rank(why=["x" * 900] * 10)
    payload["padding"] = "y" * (LIMIT - 20_000)
    assert isinstance(parse_payload(json.dumps(payload), LIMIT), Signal)


def test_malformed_message_keeps_ticker_hint_for_the_audit() -> None:
    parsed = parse_payload(json.dumps(rank(probability="high")), LIMIT)
    assert isinstance(parsed, Invalid) and parsed.ticker == "SPY" and parsed.horizon == "H30"


def test_reason_never_contains_the_offending_input() -> None:
    parsed = parse_payload(json.dumps(rank(ticker="SECRET" * 100)), LIMIT)
    assert isinstance(parsed, Invalid) and "SECRETSECRET" not in parsed.reason

