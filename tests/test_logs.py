"""Logs: one JSON object per line off a terminal (python-json-logger), a record's extra
fields as top-level keys, decision lines carry their fields, anything that looks like a key
or a URL password is masked, and a worker's `-l` level is the one it logs at."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.procs import CELERY, PrivateRedis, Proc, base_env, free_port, wait_for
from zero_tasks.adapters.audit import ensure_schema, make_engine
from zero_tasks.core.decision import Status
from zero_tasks.core.record import DecisionRecord, log_decision
from zero_tasks.logs import JsonFormatter, SecretFilter, redact
from zero_tasks.settings import load_settings

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def record(**over: object) -> DecisionRecord:
    base: dict[str, object] = {
        "event_key": "e1", "time": NOW, "decided_at": NOW, "execution_id": "SPY:H30:2026-11-24T14:30:00",
        "ticker": "SPY", "horizon": "H30", "probability": 0.95, "opportunity_score": 95.0, "status": Status.SUBMITTED,
        "reason": "submitted: 1 share SPY buy market day", "why": ["submitted: 1 share SPY buy market day"],
        "market_state_snapshot": {"state": "GREEN"}, "alpaca_order_id": "o-1"}
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


def test_a_record_with_extra_fields_serialises_them_as_top_level_keys() -> None:
    rec = logging.LogRecord("zero_tasks.x", logging.WARNING, __file__, 1, "breaker opened for %s", ("submit",), None)
    rec.__dict__.update(failures=3, window_s=600.0, calls=["submit", "position"], detail={"status": 503})
    line = json.loads(JsonFormatter().format(rec))
    assert line["message"] == "breaker opened for submit"
    assert (line["level"], line["logger"]) == ("WARNING", "zero_tasks.x")
    assert (line["failures"], line["window_s"], line["calls"], line["detail"]) == (
        3, 600.0, ["submit", "position"], {"status": 503})
    assert datetime.fromisoformat(line["time"]).tzinfo is not None


def test_a_secret_in_an_extra_field_is_scrubbed() -> None:
    load_settings(alpaca_paper="true", alpaca_api_key="PKTEST0123456789",
                  alpaca_secret_key="Extra-field-secret-0123456789")  # installs the scrubber
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "sent", None, None)
    rec.__dict__.update(url="https://u:Extra-field-secret-0123456789@h/",
                        nested={"key": "Extra-field-secret-0123456789"})
    SecretFilter().filter(rec)
    text = JsonFormatter().format(rec)
    assert "Extra-field-secret" not in text and "Extra-field-secret" not in repr(rec.__dict__)
    assert json.loads(text)["nested"]["key"] == "***"


@pytest.mark.e2e
def test_a_worker_started_with_l_debug_logs_debug_lines(tmp_path: Path) -> None:
    redis_server = PrivateRedis(tmp_path).start()
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    ensure_schema(make_engine(url))  # a worker refuses a schema that is behind
    env = base_env(redis_server.port, "http://127.0.0.1:9", url, free_port())
    worker = Proc("debug-worker", [CELERY, "-A", "zero_tasks", "worker", "-c", "1", "-n", "debug@%h",
                                   "--without-gossip", "--without-mingle", "-l", "DEBUG"], env, tmp_path).start()
    try:
        def debug_lines() -> list[dict]:
            lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
            return [line for line in lines if line["level"] == "DEBUG"]

        (first, *_) = wait_for(debug_lines, 60, "a DEBUG line from the worker")
        assert first["logger"] and first["message"]
    finally:
        worker.stop()
        redis_server.stop()
