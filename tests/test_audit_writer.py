"""The audit writer turns the outbox's audit stream into execution_log rows: batched, never
losing an entry, never writing one twice. Real Redis, real SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError

from tests.support.gateway import PG_URL, sqlalchemy_url
from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import redis_db
from zero_tasks.adapters import audit_writer, outbox
from zero_tasks.adapters.audit import ensure_schema, execution_log, insert_rows, make_engine
from zero_tasks.adapters.audit_writer import DEAD_LETTER, AuditWriter
from zero_tasks.core.decision import Status
from zero_tasks.core.record import DecisionRecord

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
SCHEMA = "test_audit_writer"


def decision(event_key: str, ticker: str = "SPY") -> DecisionRecord:
    return DecisionRecord(event_key=event_key, time=NOW, decided_at=NOW, execution_id=f"SPY:H30:{event_key}",
                          ticker=ticker, horizon="H30", probability=0.5, opportunity_score=50.0,
                          status=Status.BLOCKED, reason="threshold: 0.5 < 0.90", why=["threshold: 0.5 < 0.90"],
                          market_state_snapshot={"state": "GREEN"})


@pytest.fixture
def r(private_redis: PrivateRedis) -> redis.Redis:
    client = redis.Redis(port=private_redis.port, db=redis_db(__name__), decode_responses=True)
    client.flushdb()
    return client


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = sqlalchemy_url(PG_URL) + f"?options=-csearch_path%3D{SCHEMA}"
        with make_engine(url).begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    eng = make_engine(url)
    ensure_schema(eng)
    yield eng
    eng.dispose()


def rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(execution_log.c.event_key)).scalars())


def read_as(r: redis.Redis, consumer: str) -> list[tuple[str, dict[str, str]]]:
    """The entries a writer named `consumer` reads from the stream (then pending for it),
    read as Redis lets any consumer of the writers' group read them."""
    r.xgroup_create(outbox.AUDIT_STREAM, audit_writer.GROUP, id="0", mkstream=True)  # no writer ran yet
    ((_, entries),) = r.xreadgroup(audit_writer.GROUP, consumer, {outbox.AUDIT_STREAM: ">"})
    return entries


def keep(r: redis.Redis, *event_keys: str) -> None:
    for key in event_keys:
        outbox.keep_and_announce(r, decision(key))


def test_kept_decisions_become_rows_in_one_batch_and_leave_the_stream(r: redis.Redis, engine: Engine) -> None:
    keep(r, *(f"e{i}" for i in range(50)))
    writer = AuditWriter(r, engine, name="w1")
    assert writer.step(block_ms=None) == 50
    assert rows(engine) == sorted(f"e{i}" for i in range(50))
    assert r.xlen(outbox.AUDIT_STREAM) == 0 and audit_writer.backlog(r) == 0


def test_a_decision_kept_twice_is_one_stream_entry_and_one_row(r: redis.Redis, engine: Engine) -> None:
    keep(r, "same", "same")
    assert r.xlen(outbox.AUDIT_STREAM) == 1
    AuditWriter(r, engine, name="w1").drain()
    assert rows(engine) == ["same"]


def test_a_batch_written_again_after_a_crash_before_its_ack_writes_nothing_twice(
        r: redis.Redis, engine: Engine) -> None:
    keep(r, "a", "b")
    taken = read_as(r, "w1")  # what writer w1 read, committed, then was killed before acknowledging
    assert insert_rows(engine, [DecisionRecord.from_json(fields["row"]).to_row() for _, fields in taken]) == 2
    again = AuditWriter(r, engine, name="w1")  # the same consumer, restarted
    assert again.step(block_ms=None) == 2 and again.written == 0
    assert rows(engine) == ["a", "b"] and r.xlen(outbox.AUDIT_STREAM) == 0


def test_entries_stay_pending_while_the_database_is_away_then_are_written(
        r: redis.Redis, engine: Engine) -> None:
    keep(r, "a", "b")
    away = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/test")  # nothing listens there
    with pytest.raises(OperationalError):
        AuditWriter(r, away, name="w1").step(block_ms=None)
    assert r.xlen(outbox.AUDIT_STREAM) == 2  # nothing acknowledged, nothing lost
    back = AuditWriter(r, engine, name="w1")
    assert back.step(block_ms=None) == 2
    assert rows(engine) == ["a", "b"] and r.xlen(outbox.AUDIT_STREAM) == 0


def test_entries_of_a_writer_that_stopped_are_taken_over(r: redis.Redis, engine: Engine,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    keep(r, "a", "b")
    assert len(read_as(r, "dead")) == 2  # writer `dead` read the batch and was killed before writing it
    monkeypatch.setattr(audit_writer, "CLAIM_IDLE_MS", 0)
    heir = AuditWriter(r, engine, name="heir")
    heir.drain()
    assert rows(engine) == ["a", "b"] and r.xlen(outbox.AUDIT_STREAM) == 0


def test_the_stream_deleted_under_the_writer_is_started_again(r: redis.Redis, engine: Engine) -> None:
    writer = AuditWriter(r, engine, name="w1")
    writer.drain()
    r.delete(outbox.AUDIT_STREAM)  # FLUSHDB, or a test's reset
    keep(r, "after")
    writer.drain()
    assert rows(engine) == ["after"]


def test_a_row_the_database_refuses_goes_to_the_dead_letter_list_and_the_rest_is_written(
        r: redis.Redis, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores text of any length; PostgreSQL refuses a 40-character ticker (a DataError)")
    keep(r, "good-1")
    outbox.keep_and_announce(r, decision("bad", ticker="X" * 40))
    keep(r, "good-2")
    AuditWriter(r, engine, name="w1").drain()
    assert rows(engine) == ["good-1", "good-2"]
    (dead,) = r.lrange(DEAD_LETTER, 0, -1)
    assert json.loads(dead)["event_key"] == "bad"
    assert r.xlen(outbox.AUDIT_STREAM) == 0


def test_a_batch_of_many_rows_is_one_transaction(r: redis.Redis, engine: Engine) -> None:
    keep(r, *(f"e{i:04d}" for i in range(1200)))
    writer = AuditWriter(r, engine, name="w1")
    assert [writer.step(block_ms=None) for _ in range(4)] == [500, 500, 200, 0]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(execution_log)).scalar_one() == 1200
