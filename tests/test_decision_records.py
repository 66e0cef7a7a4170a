"""What a decision is recorded as (zero_tasks/core/intake.py, record.py): the
message the bridge hands over, the record of a refusal, its audit row, its event and its
log line, field by field."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from zero_tasks import secrets
from zero_tasks.adapters.alpaca_adapter import PlacedOrder
from zero_tasks.core.decision import Code, Status, Verdict, deny
from zero_tasks.core.intake import Invalid, Message, Signal, message_from_bytes
from zero_tasks.core.pipeline import veto
from zero_tasks.core.record import DecisionRecord, build_record, invalid_record, log_decision
from zero_tasks.core.session import TradingSession
from zero_tasks.core.snapshot import Limits, Snapshot

NOW = datetime(2026, 11, 24, 19, 30, 30, tzinfo=UTC)
HEARD = NOW - timedelta(milliseconds=250)
LIMITS = Limits(min_probability=0.9, market_state_max_age_s=None, signal_max_age_s=120)
OPP = {"ticker": "SPY", "horizon": "H30", "opportunity_score": 95, "probability": 0.95, "target_atr": 1.5,
       "stop_atr": 0.75, "market_state": "GREEN", "attention_stability_score": 80, "direction": "LONG",
       "why": ["breakout"]}
RANK = {"rank_time": "2026-11-24T19:30:00+00:00", "horizon": "H30", "opportunities": [OPP]}
EXEC_ID = "SPY:H30:2026-11-24T19:30:00"
BAD = b'{"rank_time": "x", "opportunities": [{"ticker": "QQQ", "horizon": "H30"}]}'
BAD_REASON = "invalid payload: rank_time: Value error, time must be an ISO 8601 string"
GREEN = json.dumps({"timestamp": "2026-11-24T19:00:00+00:00", "state": "GREEN", "reason": None})


def heard(payload: dict | bytes, **over: object) -> tuple[Message, Signal | Invalid]:
    data = payload if isinstance(payload, bytes) else json.dumps({**RANK, **over}).encode()
    return message_from_bytes(data, "m-1", HEARD, 1 << 20)


# -- the message the bridge hands over ----------------------------------------------------
def test_a_valid_message_carries_its_payload_and_no_verdict() -> None:
    msg, subject = heard(RANK)
    assert msg == Message("m-1", HEARD, json.dumps(RANK))
    assert isinstance(subject, Signal) and subject.execution_id == EXEC_ID


def test_an_invalid_message_carries_its_verdict_and_hints_instead_of_the_payload() -> None:
    msg, subject = heard(BAD)
    assert subject == Invalid(BAD_REASON, "invalid:6d27bfb13df14d03", "QQQ", "H30")
    assert msg == Message("m-1", HEARD, None, BAD_REASON, "invalid:6d27bfb13df14d03", "QQQ", "H30")


def test_a_parser_that_raises_still_gives_an_invalid_message(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    def broken(data: bytes, max_bytes: int) -> Signal:
        raise RecursionError("deep")

    monkeypatch.setattr("zero_tasks.core.intake.parse_payload", broken)
    with caplog.at_level(logging.ERROR, logger="zero_tasks.core.intake"):
        msg, subject = heard(b"{}")
    assert caplog.messages == ["intake failed on a message"]
    assert subject == Invalid("invalid payload: unreadable (RecursionError)", "invalid:44136fa355b3678a")
    assert (msg.payload, msg.invalid_reason, msg.invalid_id) == (None, subject.reason, subject.execution_id)


def test_a_message_goes_through_a_task_and_back_unchanged() -> None:
    msg, _ = heard(BAD)
    task = msg.to_task()
    assert task == {"message_id": "m-1", "received_at": HEARD.isoformat(), "payload": None,
                    "invalid_reason": BAD_REASON, "invalid_id": "invalid:6d27bfb13df14d03",
                    "hint_ticker": "QQQ", "hint_horizon": "H30"}
    assert Message.from_task(task) == msg
    assert task["received_at"] == HEARD.isoformat()  # from_task did not change the task it was given


# -- the record of a decision -----------------------------------------------------------------
def test_a_refused_signal_is_recorded_with_every_field() -> None:
    msg, subject = heard(RANK)
    assert isinstance(subject, Signal)
    rec = refusal_before_claim(msg, subject, Snapshot("false", GREEN, None), NOW, LIMITS)
    reason = "execution disabled: key:execution_enabled is 'false', not 'true'"
    assert rec == DecisionRecord(
        event_key="m-1", time=HEARD, decided_at=NOW, execution_id=EXEC_ID, ticker="SPY", horizon="H30",
        probability=0.95, opportunity_score=95.0, status=Status.BLOCKED, reason=reason, why=[reason, "breakout"],
        market_state_snapshot=json.loads(GREEN), payload=OPP)
    assert rec.to_row()["latency_ms"] == 250.0 and rec.to_row()["status"] == "BLOCKED"


def refusal_before_claim(msg: Message, subject: Signal, snap: Snapshot, now: datetime,
                         limits: Limits) -> DecisionRecord | None:
    """What the worker records for rows 2-6 (flow.evaluate): the veto's refusal, or nothing."""
    denial = veto(subject, snap, now, limits)
    return build_record(msg, subject, denial, snap.market_state, now) if denial else None


def test_a_signal_with_no_trading_session_kept_is_refused_by_row_3() -> None:
    msg, subject = heard(RANK)
    assert isinstance(subject, Signal)
    refused = refusal_before_claim(msg, subject, Snapshot("true", GREEN, None), NOW, LIMITS)  # no session kept
    assert refused is not None and refused.reason.startswith("market state: trading session unknown")


OPEN_SESSION = TradingSession(True, NOW - timedelta(hours=5), NOW + timedelta(hours=1), None, NOW).to_json()
ALL_CLEAR = Snapshot("true", GREEN, None, session=OPEN_SESSION)


def test_a_signal_nothing_refuses_gives_no_record_and_a_refused_one_its_reason() -> None:
    msg, subject = heard(RANK)
    assert isinstance(subject, Signal)
    assert refusal_before_claim(msg, subject, ALL_CLEAR, NOW, LIMITS) is None
    _, low = heard(RANK, opportunities=[{**OPP, "probability": 0.5}])
    assert isinstance(low, Signal)
    refused = refusal_before_claim(msg, low, ALL_CLEAR, NOW, LIMITS)
    assert refused is not None and refused.reason == "threshold: probability 0.5 < 0.9"
    expired = Snapshot("true", GREEN, None, session=TradingSession(
        True, NOW - timedelta(hours=5), NOW, None, NOW).to_json())
    late = refusal_before_claim(msg, subject, expired, NOW, LIMITS)
    assert late is not None and late.reason.startswith("market state: trading session answer expired at")


def test_the_limits_are_the_settings_own() -> None:
    from zero_tasks.adapters.runtime import limits_of
    from zero_tasks.settings import load_settings

    settings = load_settings(alpaca_paper="true", alpaca_api_key="k", alpaca_secret_key="s", min_probability=0.93,
                             market_state_max_age_s=45, signal_max_age_s=90)
    assert limits_of(settings) == Limits(min_probability=0.93, market_state_max_age_s=45, signal_max_age_s=90)


@pytest.mark.parametrize(("payload", "code", "detail"), [
    (BAD, Status.SKIPPED, "invalid payload: rank_time: Value error, time must be an ISO 8601 string"),
    (json.dumps({**RANK, "opportunities": []}).encode(), Status.SKIPPED, "no opportunities"),
])
def test_an_invalid_message_is_recorded_skipped_with_its_reason(payload: bytes, code: Status, detail: str) -> None:
    msg, subject = heard(payload)
    assert isinstance(subject, Invalid)
    rec = invalid_record(msg, subject, NOW)
    assert rec.status is code and rec.reason.startswith(detail) and rec.why == [rec.reason]
    assert (rec.probability, rec.opportunity_score, rec.payload, rec.market_state_snapshot) == (None, None, None, None)
    assert (rec.execution_id, rec.ticker) == (subject.execution_id, subject.ticker)
    assert rec.reason == subject.reason  # the code is not repeated


def test_an_order_is_recorded_with_its_ids_and_the_brokers_time() -> None:
    msg, subject = heard(RANK)
    order = PlacedOrder("ord-1", "zx-" + EXEC_ID, "accepted", "2026-11-24T19:30:31+00:00")
    rec = build_record(msg, subject, Verdict(Code.SUBMITTED, "1 share"), GREEN, NOW, order)
    assert (rec.alpaca_order_id, rec.client_order_id) == ("ord-1", "zx-" + EXEC_ID)
    assert rec.submitted_at == datetime(2026, 11, 24, 19, 30, 31, tzinfo=UTC)
    untimed_order = dataclasses.replace(order, submitted_at=None)
    untimed = build_record(msg, subject, Verdict(Code.SUBMITTED, ""), GREEN, NOW, untimed_order)
    assert untimed.submitted_at == NOW and untimed.reason == "submitted"
    assert build_record(msg, subject, deny(Code.COOLDOWN, "x"), GREEN, NOW).submitted_at is None


def test_text_no_consumer_can_store_is_cleaned_in_the_record() -> None:
    msg, subject = heard(RANK, opportunities=[{**OPP, "why": ["nul\x00here"]}])
    rec = build_record(msg, subject, deny(Code.COOLDOWN, "bad\x00reason"), "{\"a\": \"\\u0000\"}", NOW)
    assert rec.reason == "cooldown: bad\ufffdreason"
    assert rec.why == ["cooldown: bad\ufffdreason", "nul\ufffdhere"]
    assert rec.market_state_snapshot == {"a": "\ufffd"}
    assert rec.payload is not None and rec.payload["why"] == ["nul\ufffdhere"]


# -- the row, the event, the log line ---------------------------------------------------------------
def record(**over: object) -> DecisionRecord:
    fields: dict[str, object] = {
        "event_key": "m-1", "time": HEARD, "decided_at": NOW, "execution_id": EXEC_ID, "ticker": "SPY",
        "horizon": "H30", "probability": 0.95, "opportunity_score": 95.0, "status": Status.SUBMITTED,
        "reason": "submitted", "why": ["submitted"], "market_state_snapshot": json.loads(GREEN),
        "alpaca_order_id": "ord-1", "client_order_id": "zx-1", "submitted_at": NOW + timedelta(seconds=1),
        "payload": OPP}
    fields.update(over)
    return DecisionRecord(**fields)  # type: ignore[arg-type]


def test_a_record_goes_through_json_and_back_unchanged() -> None:
    rec = record()
    assert json.loads(rec.to_json())["status"] == "SUBMITTED"
    assert json.loads(rec.to_json())["submitted_at"] == "2026-11-24T19:30:31+00:00"
    assert DecisionRecord.from_json(rec.to_json()) == rec
    assert DecisionRecord.from_json(rec.to_json().encode()) == rec
    unsent = record(submitted_at=None, status=Status.BLOCKED)
    assert DecisionRecord.from_json(unsent.to_json()) == unsent


def test_a_value_json_cannot_carry_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="not JSON serialisable: set"):
        record(payload={"x": {1}}).to_json()


def test_the_event_says_what_the_record_says() -> None:
    event = json.loads(record().to_trade_update())
    assert event == {"schema_version": "1.0", "timestamp": "2026-11-24T19:30:30Z", "execution_id": EXEC_ID,
                     "ticker": "SPY", "horizon": "H30", "probability": 0.95, "opportunity_score": 95,
                     "status": "SUBMITTED", "alpaca_order_id": "ord-1", "why": ["submitted"],
                     "market_state_snapshot": json.loads(GREEN),
                     "market_state": json.loads(GREEN),
                     "submitted_at": "2026-11-24T19:30:31Z", "client_order_id": "zx-1", "decision_id": "m-1",
                     "intent": "entry", "side": "buy", "exit_reason": None}


@pytest.mark.parametrize(("over", "field", "shown"), [
    ({"probability": 0.0}, "probability", 0.0), ({"probability": 1.0}, "probability", 1.0),
    ({"probability": -0.01}, "probability", None), ({"probability": 1.01}, "probability", None),
    ({"probability": None}, "probability", None),
    ({"opportunity_score": 0.0}, "opportunity_score", 0), ({"opportunity_score": 100.0}, "opportunity_score", 100),
    ({"opportunity_score": 95.5}, "opportunity_score", 95.5), ({"opportunity_score": 100.5}, "opportunity_score", None),
    ({"opportunity_score": -1.0}, "opportunity_score", None), ({"opportunity_score": None}, "opportunity_score", None),
    ({"horizon": "H5"}, "horizon", None), ({"horizon": "HDAY"}, "horizon", "HDAY"),
    ({"ticker": ""}, "ticker", None),
    ({"market_state_snapshot": {"unreadable": "x"}}, "market_state", None),
    ({"market_state_snapshot": None}, "market_state_snapshot", None),
    ({"submitted_at": None}, "submitted_at", "2026-11-24T19:30:30Z"),
])
def test_the_event_shows_null_for_what_zero_could_not_accept(over: dict, field: str, shown: object) -> None:
    assert json.loads(record(**over).to_trade_update())[field] == shown


def test_an_integer_score_is_shown_as_an_integer() -> None:
    assert json.loads(record(opportunity_score=95.0).to_trade_update())["opportunity_score"].__class__ is int


def test_a_secret_in_the_reason_or_why_never_reaches_the_record() -> None:
    secrets.use(secrets.Scrubber(["s3cret-value"]))  # put back by conftest's fixture
    rec = record(reason="broker said s3cret-value", why=["broker said s3cret-value", "plain"])
    assert "s3cret-value" not in rec.reason and "s3cret-value" not in "".join(rec.why)
    assert rec.why[1] == "plain" and rec.reason == rec.why[0]
    plain = record()
    assert (plain.reason, plain.why) == ("submitted", ["submitted"])
    only_reason = record(reason="said s3cret-value", why=["plain"])
    assert (only_reason.reason, only_reason.why) == ("said " + secrets.MASK, ["plain"])
    only_why = record(reason="plain", why=["said s3cret-value"])
    assert (only_why.reason, only_why.why) == ("plain", ["said " + secrets.MASK])


def test_one_log_line_per_decision_with_its_facts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="zero_tasks.core.decision"):
        log_decision(record())
    (line,) = caplog.records
    assert line.getMessage() == "decision SUBMITTED SPY: submitted"
    facts = {k: getattr(line, k) for k in ("event", "execution_id", "ticker", "status", "reason", "latency_ms",
                                            "alpaca_order_id", "event_key")}
    assert facts == {"event": "decision", "execution_id": EXEC_ID, "ticker": "SPY", "status": "SUBMITTED",
                     "reason": "submitted", "latency_ms": 250.0, "alpaca_order_id": "ord-1", "event_key": "m-1"}


def test_an_exit_decisions_event_carries_its_intent_side_and_exit_reason() -> None:
    event = json.loads(record(intent="exit", side="sell", exit_reason="horizon").to_trade_update())
    assert (event["intent"], event["side"], event["exit_reason"]) == ("exit", "sell", "horizon")


def test_a_secret_in_the_payload_never_reaches_the_record_and_a_clean_payload_is_kept() -> None:
    secrets.use(secrets.Scrubber(["s3cret-value"]))  # put back by conftest's fixture
    rec = record(payload={"ticker": "SPY", "note": "s3cret-value"})
    assert rec.payload == {"ticker": "SPY", "note": secrets.MASK}
    clean = {"ticker": "SPY", "note": "plain"}
    assert record(payload=clean).payload is clean
    assert record(payload=None).payload is None
