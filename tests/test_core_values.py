"""Exact values of the pure core that the rule tables leave loose: intake's reasons and
salvaged hints, the contract's times and ids, the kept trading session, task seals, the
Redis key names. Each line here is something another component or an operator reads."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from zero_tasks.core import keys
from zero_tasks.core.contract import MarketState, as_utc, client_order_id, execution_id, is_market_state
from zero_tasks.core.intake import Invalid, Signal, parse_payload
from zero_tasks.core.session import NEW_YORK, TradingSession, from_broker, parse
from zero_tasks.core.task_auth import SEAL_FIELD, SEALED_AT_FIELD, forgery_key, open_seal, seal

OPP = {"ticker": "SPY", "horizon": "H30", "opportunity_score": 95, "probability": 0.95, "target_atr": 1.5,
       "stop_atr": 0.75, "market_state": "GREEN", "attention_stability_score": 80, "direction": "LONG"}
RANK = {"rank_time": "2026-11-24T19:30:00+00:00", "opportunities": [OPP]}


def fallback_id(data: bytes) -> str:
    return "invalid:" + hashlib.sha256(data).hexdigest()[:16]


def payload(**over: object) -> bytes:
    return json.dumps({**RANK, **over}).encode()


# -- intake ---------------------------------------------------------------------------------
MANY_ERRORS = payload(rank_time=5, horizon=7, total_candidates="x", schema_version=3)
BAD_RANK_1 = payload(opportunities=[{"ticker": "spy\x01", "horizon": "H30x" * 5}])


@pytest.mark.parametrize(("data", "max_bytes", "invalid"), [
    (b"x" * 11, 10, Invalid("invalid payload: 11 bytes exceeds the 10-byte limit", fallback_id(b"x" * 11))),
    (b"\xff{}", 1 << 20, Invalid("invalid payload: not UTF-8 (invalid start byte at byte 0)", fallback_id(b"\xff{}"))),
    (b"{bad", 1 << 20, Invalid("invalid payload: payload: Invalid JSON: key must be a string at line 1 column 2",
                               fallback_id(b"{bad"))),
    (MANY_ERRORS, 1 << 20, Invalid(
        "invalid payload: schema_version: Input should be a valid string; horizon: Input should be 'H30', 'H2H', "
        "'HDAY' or 'HWEEK'; rank_time: Value error, time must be an ISO 8601 string (+1 more)",
        fallback_id(MANY_ERRORS), "SPY", "H30")),
    (payload(opportunities=[{**OPP, "probability": 2}]), 1 << 20, Invalid(
        "invalid payload: rank 1 probability: Input should be less than or equal to 1",
        fallback_id(payload(opportunities=[{**OPP, "probability": 2}])), "SPY", "H30")),
    (BAD_RANK_1, 1 << 20, Invalid(
        "invalid payload: rank 1 ticker: String should match pattern '^[A-Z]{1,6}(?:\\.[A-Z]{1,2})?$'; horizon: "
        "Input should be 'H30', 'H2H', 'HDAY' or 'HWEEK'; opportunity_score: Field required (+5 more)",
        fallback_id(BAD_RANK_1), "", "H30xH30x")),
    (payload(horizon="H30", opportunities=[]), 1 << 20, Invalid(
        "no opportunities: empty opportunities list", fallback_id(payload(horizon="H30", opportunities=[])),
        "", "H30")),
    (payload(opportunities=[]), 1 << 20, Invalid(
        "no opportunities: empty opportunities list", fallback_id(payload(opportunities=[])))),
    (payload(rank_time=1764000000), 1 << 20, Invalid(
        "invalid payload: rank_time: Value error, time must be an ISO 8601 string",
        fallback_id(payload(rank_time=1764000000)), "SPY", "H30")),
    (payload(rank_time="2026-13-45T00:00:00Z"), 1 << 20, Invalid(
        "invalid payload: rank_time: Value error, time must be an ISO 8601 string",
        fallback_id(payload(rank_time="2026-13-45T00:00:00Z")), "SPY", "H30")),
], ids=["too_big", "not_utf8", "not_json", "four_errors", "rank1", "rank1_eight_errors", "empty_with_horizon",
        "empty", "epoch_number", "bad_date"])
def test_intake_reasons_and_hints(data: bytes, max_bytes: int, invalid: Invalid) -> None:
    assert parse_payload(data, max_bytes) == invalid


def test_a_payload_at_the_byte_limit_is_read() -> None:
    data = payload()
    assert isinstance(parse_payload(data, len(data)), Signal)
    assert isinstance(parse_payload(data.decode(), len(data)), Signal)


@pytest.mark.parametrize(("opp", "ticker", "horizon"), [
    ({"ticker": "T" * 20, "horizon": "H" * 10}, "T" * 16, "H" * 8),
    ({"ticker": 5, "horizon": ["H30"]}, "", ""),
    ({"ticker": "SP\u00e9", "horizon": "H\x0730"}, "", ""),
])
def test_a_malformed_rank_1_gives_printable_hints_cut_short_or_none(opp: dict, ticker: str, horizon: str) -> None:
    out = parse_payload(payload(opportunities=[opp]), 1 << 20)
    assert isinstance(out, Invalid) and (out.ticker, out.horizon) == (ticker, horizon)


@pytest.mark.parametrize(("opp", "ticker", "horizon"), [
    ({"ticker": "T" * 16 + "\x01", "horizon": "H" * 8 + "\x01"}, "T" * 16, "H" * 8),
])
def test_only_the_kept_part_of_a_hint_must_be_printable(opp: dict, ticker: str, horizon: str) -> None:
    out = parse_payload(payload(opportunities=[opp]), 1 << 20)
    assert isinstance(out, Invalid) and (out.ticker, out.horizon) == (ticker, horizon)


def test_a_reason_names_a_nested_field_by_its_dotted_path_and_the_whole_as_payload() -> None:
    nested = parse_payload(payload(opportunities=[{**OPP, "why": [1]}]), 1 << 20)
    assert isinstance(nested, Invalid)
    assert nested.reason == "invalid payload: rank 1 why.0: Input should be a valid string"
    whole = parse_payload(payload(opportunities=[5]), 1 << 20)
    assert isinstance(whole, Invalid)
    assert whole.reason == ("invalid payload: rank 1 payload: "
                            "Input should be a valid dictionary or instance of Opportunity")


def test_a_number_given_as_text_is_refused_json_types_are_strict() -> None:
    out = parse_payload(payload(total_candidates="57"), 1 << 20)
    assert isinstance(out, Invalid)
    assert out.reason == "invalid payload: total_candidates: Input should be a valid integer"


def test_text_with_a_lone_surrogate_is_read_as_the_bytes_it_stands_for() -> None:
    out = parse_payload('{"a": "\udc80"}', 1 << 20)  # what surrogateescape decoding of byte 0x80 gives
    assert isinstance(out, Invalid) and out.reason == "invalid payload: not UTF-8 (invalid start byte at byte 7)"


def test_no_hints_from_a_ranking_without_a_first_opportunity_object() -> None:
    out = parse_payload(payload(rank_time=5, opportunities=["SPY"]), 1 << 20)
    assert isinstance(out, Invalid) and (out.ticker, out.horizon) == ("", "")


def test_json_too_deep_for_the_parser_is_invalid() -> None:
    out = parse_payload(b"[" * 5000 + b"]" * 5000, 1 << 20)
    assert isinstance(out, Invalid) and out.reason.startswith("invalid payload: payload: Invalid JSON: recursion")


# -- the contract's times and ids ------------------------------------------------------------
def test_a_time_without_an_offset_is_utc_and_one_with_an_offset_is_converted() -> None:
    assert as_utc(datetime(2026, 11, 24, 19, 30)) == datetime(2026, 11, 24, 19, 30, tzinfo=UTC)
    converted = as_utc(datetime(2026, 11, 24, 14, 30, tzinfo=timezone(timedelta(hours=-5))))
    assert converted == datetime(2026, 11, 24, 19, 30, tzinfo=UTC) and converted.tzinfo is UTC


def test_a_time_past_year_9999_in_utc_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^time is out of range once converted to UTC$"):
        as_utc(datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))))


@pytest.mark.parametrize(("rank_time", "expected"), [
    ("2026-11-24T19:30:00", "SPY:H30:2026-11-24T19:30:00"),
    ("2026-11-24T14:30:00-05:00", "SPY:H30:2026-11-24T19:30:00"),
    ("2026-11-24T19:30:00.999+00:00", "SPY:H30:2026-11-24T19:30:00"),
])
def test_the_execution_id_is_ticker_horizon_and_utc_second(rank_time: str, expected: str) -> None:
    out = parse_payload(payload(rank_time=rank_time), 1 << 20)
    assert isinstance(out, Signal) and out.execution_id == expected
    assert execution_id("SPY", "H30", datetime.fromisoformat(rank_time)) == expected


@pytest.mark.parametrize("text", ["", "2026", "x2026-11-24T19:30:00Z", "2026-11-24Tnope"])
def test_a_time_that_is_not_iso_8601_text_is_refused(text: str) -> None:
    out = parse_payload(payload(rank_time=text), 1 << 20)
    assert isinstance(out, Invalid)
    assert out.reason == "invalid payload: rank_time: Value error, time must be an ISO 8601 string"


def test_a_client_order_id_is_readable_up_to_128_characters_then_hashed() -> None:
    fits = "E" * 125
    assert client_order_id(fits) == "zx-" + fits
    long_id = "E" * 126
    assert client_order_id(long_id) == "zx-" + hashlib.sha256(long_id.encode()).hexdigest()


def test_a_stored_snapshot_is_a_market_state_only_when_the_model_accepts_it() -> None:
    assert is_market_state(None) is False
    assert is_market_state({"state": "GREEN"}) is False
    good = {"timestamp": "2026-11-24T19:00:00+00:00", "state": "GREEN"}
    assert is_market_state(good) is True and MarketState.model_validate(good).state == "GREEN"


# -- the trading session ------------------------------------------------------------------------
NOW = datetime(2026, 11, 24, 19, 30, tzinfo=UTC)
CLOCK = NOW - timedelta(seconds=2)  # the broker's clock runs 2 s behind the gateway's
OPEN = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
CLOSE = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
NEXT = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


def test_an_open_session_is_on_the_gateways_clock_and_trusted_an_hour_at_most() -> None:
    assert from_broker(NOW, CLOCK, True, NEXT, CLOSE, [OPEN, NEXT]) == TradingSession(
        True, OPEN + timedelta(seconds=2), NOW + timedelta(hours=1), None, NOW)
    near_close = from_broker(NOW, CLOSE - timedelta(minutes=5), True, NEXT, CLOSE, [OPEN])
    assert near_close == TradingSession(True, NOW - (CLOSE - timedelta(minutes=5) - OPEN),
                                        NOW + timedelta(minutes=5), None, NOW)


def test_a_closed_session_lasts_until_the_next_open_or_an_hour() -> None:
    assert from_broker(NOW, CLOCK, False, NEXT, CLOSE, []) == TradingSession(
        False, None, NOW + timedelta(hours=1), NEXT, NOW)
    soon = CLOCK + timedelta(minutes=10)
    assert from_broker(NOW, CLOCK, False, soon, CLOSE, []) == TradingSession(
        False, None, NOW + timedelta(minutes=10), soon, NOW)


@pytest.mark.parametrize(("args", "why"), [
    ((CLOCK.replace(tzinfo=None), True, NEXT, CLOSE, [OPEN]), "the broker's clock gave a time without an offset"),
    ((CLOCK, True, NEXT.replace(tzinfo=None), CLOSE, [OPEN]), "the broker's clock gave a time without an offset"),
    ((CLOCK, True, NEXT, CLOSE.replace(tzinfo=None), [OPEN]), "the broker's clock gave a time without an offset"),
    ((CLOCK, False, CLOCK, CLOSE, []),
     f"the broker's clock is closed with its next open {CLOCK.isoformat()} already past"),
    ((CLOCK, True, NEXT, CLOSE, [CLOCK + timedelta(seconds=1)]),
     f"the broker's calendar has no session opened by {CLOCK.isoformat()}"),
    ((CLOCK, True, NEXT, CLOCK, [OPEN]),
     f"the broker's clock is open with its next close {CLOCK.isoformat()} already past"),
])
def test_a_broker_answer_that_cannot_be_used_says_why(args: tuple, why: str) -> None:
    assert from_broker(NOW, *args) == why


def test_a_session_opened_exactly_at_the_clock_counts_and_the_latest_open_is_taken() -> None:
    out = from_broker(NOW, CLOCK, True, NEXT, CLOSE, [OPEN - timedelta(days=1), CLOCK])
    assert isinstance(out, TradingSession) and out.opened_at == NOW


def test_a_kept_session_reads_back_as_it_was_written_in_utc() -> None:
    kept = TradingSession(True, OPEN.astimezone(NEW_YORK), CLOSE, None, NOW)
    assert json.loads(kept.to_json()) == {"is_open": True, "opened_at": "2026-11-24T14:30:00+00:00",
                                          "until": "2026-11-24T21:00:00+00:00", "next_open": None,
                                          "checked_at": "2026-11-24T19:30:00+00:00"}
    assert parse(kept.to_json()) == kept
    closed = TradingSession(False, None, NEXT, NEXT, NOW)
    assert json.loads(closed.to_json())["next_open"] == "2026-11-25T14:30:00+00:00"
    assert parse(closed.to_json()) == closed


def test_a_kept_session_is_written_in_utc_whatever_the_machines_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        written = json.loads(TradingSession(True, OPEN, CLOSE, None, NOW).to_json())
    finally:
        monkeypatch.undo()
        time.tzset()
    assert written["opened_at"] == "2026-11-24T14:30:00+00:00"


@pytest.mark.parametrize(("raw", "why"), [
    (None, "not known yet"),
    ("{", "unreadable (JSONDecodeError)"),
    ("{}", "unreadable (KeyError)"),
    (json.dumps({"is_open": "yes", "opened_at": None, "until": NOW.isoformat(), "next_open": None,
                 "checked_at": NOW.isoformat()}), "unreadable (TypeError)"),
    (json.dumps({"is_open": False, "opened_at": None, "until": None, "next_open": None,
                 "checked_at": NOW.isoformat()}), "unreadable (ValueError)"),
    (json.dumps({"is_open": False, "opened_at": None, "until": 5, "next_open": None,
                 "checked_at": NOW.isoformat()}), "unreadable (TypeError)"),
    (json.dumps({"is_open": False, "opened_at": None, "until": "2026-11-24T21:00:00", "next_open": None,
                 "checked_at": NOW.isoformat()}), "unreadable (ValueError)"),
    (json.dumps({"is_open": True, "opened_at": None, "until": NOW.isoformat(), "next_open": None,
                 "checked_at": NOW.isoformat()}), "unreadable (open with no opening time)"),
])
def test_a_kept_session_that_cannot_be_read_says_why(raw: str | None, why: str) -> None:
    assert parse(raw) == why


@pytest.mark.parametrize(("session", "day"), [
    (TradingSession(True, datetime(2026, 11, 25, 4, 30, tzinfo=UTC), NOW, None, NOW + timedelta(days=2)),
     "2026-11-24"),
    (TradingSession(False, None, NOW, datetime(2026, 11, 25, 14, 30, tzinfo=UTC), NOW), "2026-11-25"),
    (TradingSession(False, None, NOW, None, datetime(2026, 11, 25, 3, 0, tzinfo=UTC)), "2026-11-24"),
])
def test_a_sessions_day_is_the_new_york_date_of_its_open_or_next_open(session: TradingSession, day: str) -> None:
    assert session.day().isoformat() == day


# -- task seals --------------------------------------------------------------------------------------
KEY = "k" * 32


SEALED = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def test_a_seal_is_the_hmac_of_the_task_and_its_body_with_its_time_in_canonical_json() -> None:
    body = {"b": [1, "é"], "a": 1}
    timed = {**body, SEALED_AT_FIELD: SEALED.isoformat()}
    text = json.dumps(["zero.decide", timed], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert seal(KEY, "zero.decide", body, SEALED) == {**timed, SEAL_FIELD: digest}
    assert seal(KEY, "zero.decide", {**body, SEAL_FIELD: "old"}, SEALED) == {**timed, SEAL_FIELD: digest}
    assert seal(KEY, "zero.decide", timed) == {**timed, SEAL_FIELD: digest}  # a body that carries its time keeps it


def test_a_seal_without_its_time_is_refused_when_made() -> None:
    with pytest.raises(ValueError, match="a seal needs the time it is made"):
        seal(KEY, "zero.decide", {"a": 1})


@pytest.mark.parametrize(("argument", "why"), [
    ([1], "argument is a list, not a sealed object"),
    ({"a": 1}, "no seal"),
    ({"a": 1, SEAL_FIELD: 5}, "no seal"),
    ({"a": {1, 2}, SEAL_FIELD: "x"}, "argument is not plain JSON"),
    ({"a": 1, SEAL_FIELD: "0" * 64},
     "seal does not match (not made with this gateway's TASK_SIGNING_KEY for this task)"),
])
def test_an_argument_that_is_not_sealed_for_the_task_says_why(argument: object, why: str) -> None:
    assert open_seal(KEY, "zero.decide", argument, SEALED) == (None, why)


def test_a_sealed_argument_opens_to_its_body_only_for_its_task_and_key() -> None:
    sealed = seal(KEY, "zero.decide", {"a": 1}, SEALED)
    assert open_seal(KEY, "zero.decide", sealed, SEALED) == ({"a": 1}, None)
    assert open_seal(KEY, "zero.place_order", sealed, SEALED)[0] is None
    assert open_seal("j" * 32, "zero.decide", sealed, SEALED)[0] is None


def test_a_forgery_key_is_stable_prefixed_and_24_hex_characters() -> None:
    text = json.dumps(["zero.decide", {"b": 1, "a": 2}], sort_keys=True)
    assert forgery_key("zero.decide", {"b": 1, "a": 2}) == "forged:" + hashlib.sha256(text.encode()).hexdigest()[:24]
    as_repr = json.dumps(["zero.decide", {"a": repr({1})}], sort_keys=True)
    assert forgery_key("zero.decide", {"a": {1}}) == "forged:" + hashlib.sha256(as_repr.encode()).hexdigest()[:24]
    circular: list[object] = []
    circular.append(circular)
    expected = hashlib.sha256(repr(("t", circular)).encode()).hexdigest()[:24]
    assert forgery_key("t", circular) == "forged:" + expected
    lone = hashlib.sha256(json.dumps(["t", "\udc80"], sort_keys=True).encode()).hexdigest()[:24]
    assert forgery_key("t", "\udc80") == "forged:" + lone


# -- delayed tasks: the floors ------------------------------------------------------------------------
def test_a_hop_is_never_shorter_than_half_a_second_and_a_claim_never_shorter_than_a_second() -> None:
    from zero_tasks.core.delayed import hop_max_s, running_ttl_s

    assert hop_max_s(10, 10) == 0.5
    assert running_ttl_s(0.5) == 1 and running_ttl_s(30.9) == 30


# -- Redis key names (ZERO and operators read and write these) --------------------------------------
def test_the_per_item_keys_are_their_prefix_and_the_item() -> None:
    assert keys.seen_key("E") == "key:execution_seen:E"
    assert keys.cooldown_key("SPY") == "key:execution_cooldown:SPY"
    assert keys.attempt_key("E") == "key:execution_attempts:E"
    assert keys.blocklist_key("SPY") == "key:execution_blocklist:SPY"
    assert keys.worker_alive_key("w1@h") == "key:execution_worker:w1@h"
