"""Logs: one JSON object per line off a terminal, decision lines carry their fields, and
anything that looks like a key or a URL password is masked."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from zero_tasks.core.decision import Status
from zero_tasks.logs import JsonFormatter, redact
from zero_tasks.core.record import DecisionRecord
from zero_tasks.core.record import log_decision

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=timezone.utc)


def record(**over: object) -> DecisionRecord:
    base = dict(event_key="e1", time=NOW, decided_at=NOW, execution_id="SPY:H30:2026-11-24T14:30:00",
                ticker="SPY", horizon="H30", probability=0.95, opportunity_score=95.0, status=Status.SUBMITTED,
                reason="submitted: 1 share SPY buy market day", why=["submitted: 1 share SPY buy market day"],
                market_state_snapshot={"state": "GREEN"}, alpaca_order_id="o-1")
    base.update(over)
    return DecisionRecord(**base)  # type: ignore[arg-type]


def formatted(caplog_records: list[logging.LogRecord]) -> list[dict]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog_records]


def test_one_json_line_per_decision_with_its_fields(caplog) -> None:
    caplog.set_level(logging.INFO, logger="zero_tasks.core.decision")
    log_decision(record())
    (line,) = formatted(caplog.records)
    assert line["event"] == "decision" and line["level"] == "INFO"
    assert {k: line[k] for k in ("execution_id", "ticker", "status", "reason", "latency_ms", "alpaca_order_id")} == {
        "execution_id": "SPY:H30:2026-11-24T14:30:00", "ticker": "SPY", "status": "SUBMITTED",
        "reason": "submitted: 1 share SPY buy market day", "latency_ms": 0.0, "alpaca_order_id": "o-1"}


def test_secrets_are_masked_in_any_log_line() -> None:
    assert "hunter2" not in redact("headers {'APCA-API-SECRET-KEY': 'hunter2', 'APCA-API-KEY-ID': 'PKID'}")
    assert "PKID" not in redact("APCA-API-KEY-ID: PKID")
    assert redact("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact("postgresql://zero:pw@db/zero") == "postgresql://zero:***@db/zero"


def test_a_plain_message_becomes_a_json_object_with_exception_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", ("SPY",), sys.exc_info())
    line = json.loads(JsonFormatter().format(rec))
    assert line["message"] == "failed for SPY" and "ValueError: boom" in line["exc"]
