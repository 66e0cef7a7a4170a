"""The Redis claim/cooldown scripts and the audit writer, against real Redis and databases."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select, text

from tests.support.gateway import PG_URL, sqlalchemy_url
from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import redis_db
from zero_tasks.adapters.audit import (
    OrderFate,
    ensure_schema,
    execution_log,
    insert_rows,
    make_engine,
    update_order_status,
)
from zero_tasks.adapters.redis_state import ExecutionLocks, connect
from zero_tasks.adapters.risk import BrokerRateLimit, RateLimited
from zero_tasks.core.checks.admission import Claim

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


@pytest.fixture
def r(private_redis: PrivateRedis) -> redis.Redis:
    """This module's Redis database, emptied: what the scripts wrote, read back directly."""
    client = connect(f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__)}")
    client.flushdb()
    return client


@pytest.fixture
def locks(r: redis.Redis) -> ExecutionLocks:
    return ExecutionLocks(r, cooldown_s=3600)


DAILY = "key:execution_daily_orders:2026-11-24"


def admit(locks: ExecutionLocks, execution_id: str, message_id: str, ticker: str = "SPY", cap: int = 10):
    return locks.admit(execution_id, message_id, ticker, NOW, DAILY, cap, NOW)


def test_claim_first_sight_then_reentry_then_taken(locks: ExecutionLocks) -> None:
    assert admit(locks, "SPY:H30:x", "m1").claim is Claim.CLAIMED
    assert admit(locks, "SPY:H30:x", "m1").claim is Claim.REENTERED
    taken = admit(locks, "SPY:H30:x", "m2")
    assert taken.claim is Claim.TAKEN and taken.refused == "duplicate"


def test_claim_expires_after_24_hours(locks: ExecutionLocks, r: redis.Redis) -> None:
    admit(locks, "SPY:H30:x", "m1")
    assert 86000 < r.ttl("key:execution_seen:SPY:H30:x") <= 86400


def test_release_claim_only_by_its_owner(locks: ExecutionLocks) -> None:
    admit(locks, "id", "m1", ticker="A")
    locks.release_claim("id", "m2")
    assert admit(locks, "id", "m3", ticker="A").claim is Claim.TAKEN
    locks.release_claim("id", "m1")
    assert admit(locks, "id", "m3", ticker="A").claim is Claim.CLAIMED


def test_cooldown_is_held_by_one_execution_id_under_a_concurrent_race(locks: ExecutionLocks, r: redis.Redis) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(16)

    def contend(i: int) -> None:
        barrier.wait()
        if admit(locks, f"SPY:H30:{i}", f"m{i}").refused is None:
            winners.append(str(i))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert r.get("key:execution_cooldown:SPY") == NOW.isoformat()  # the contract's ISO value
    assert 3500 < r.ttl("key:execution_cooldown:SPY") <= 3600
    assert r.hlen(DAILY) == 1  # only the winner holds a slot of the day


def test_cooldown_refusal_names_the_last_order_time(locks: ExecutionLocks) -> None:
    admit(locks, "SPY:H30:a", "m1")
    refused = admit(locks, "SPY:H30:b", "m2")
    assert (refused.claim, refused.refused, refused.cooldown_since) == (Claim.CLAIMED, "cooldown", NOW.isoformat())


def test_cooldown_release_by_owner_only(locks: ExecutionLocks) -> None:
    assert admit(locks, "a", "m1").refused is None
    assert admit(locks, "a", "m1").refused is None  # re-entry of the same id
    locks.release_cooldown("SPY", "b")
    assert admit(locks, "b", "m2").refused == "cooldown"
    locks.release_cooldown("SPY", "a")
    assert admit(locks, "b", "m2").refused is None  # the same message again: its claim re-entered


def test_daily_cap_refusal_gives_back_the_claim_and_the_cooldown(locks: ExecutionLocks, r: redis.Redis) -> None:
    assert admit(locks, "A:H30:1", "m1", ticker="A", cap=1).refused is None
    refused = admit(locks, "B:H30:1", "m2", ticker="B", cap=1)
    assert refused.refused == "daily cap"
    assert r.get("key:execution_seen:B:H30:1") is None
    assert r.get("key:execution_cooldown:B") is None
    assert r.hlen(DAILY) == 1
    assert admit(locks, "A:H30:1", "m1", ticker="A", cap=1).refused is None  # its own slot is kept


RATE = "key:execution_broker_rate"


def test_an_admitted_order_takes_its_broker_calls_in_the_same_step(locks: ExecutionLocks, r: redis.Redis) -> None:
    budget = BrokerRateLimit(r, per_minute=5)
    admitted = locks.admit("A:H30:1", "m1", "A", NOW, DAILY, 10, NOW, budget=budget, slots=3)
    assert (admitted.refused, admitted.prepaid) == (None, 3)
    assert r.zcard(RATE) == 3


def test_a_refused_admission_takes_no_broker_calls(locks: ExecutionLocks, r: redis.Redis) -> None:
    budget = BrokerRateLimit(r, per_minute=5)
    locks.admit("A:H30:1", "m1", "A", NOW, DAILY, 10, NOW, budget=budget, slots=3)
    duplicate = locks.admit("A:H30:1", "m2", "A", NOW, DAILY, 10, NOW, budget=budget, slots=3)
    cooldown = locks.admit("A:H30:2", "m3", "A", NOW, DAILY, 10, NOW, budget=budget, slots=3)
    capped = locks.admit("B:H30:1", "m4", "B", NOW, DAILY, 1, NOW, budget=budget, slots=3)
    assert [a.refused for a in (duplicate, cooldown, capped)] == ["duplicate", "cooldown", "daily cap"]
    assert [a.prepaid for a in (duplicate, cooldown, capped)] == [0, 0, 0]
    assert r.zcard(RATE) == 3


def test_admission_with_the_budget_spent_admits_but_takes_nothing(locks: ExecutionLocks, r: redis.Redis) -> None:
    budget = BrokerRateLimit(r, per_minute=4)
    budget.acquire("other", 2)
    admitted = locks.admit("A:H30:1", "m1", "A", NOW, DAILY, 10, NOW, budget=budget, slots=3)
    assert (admitted.refused, admitted.prepaid) == (None, 0)  # the order task asks again, and waits
    assert r.zcard(RATE) == 2
    with pytest.raises(RateLimited):
        budget.acquire("placement", 3)


def row(event_key: str = "e1") -> dict:
    return {"time": NOW, "execution_id": "SPY:H30:x", "ticker": "SPY", "horizon": "H30", "probability": 0.95,
            "opportunity_score": 95.0, "status": "BLOCKED", "alpaca_order_id": None,
            "why": ["execution disabled: x"], "market_state_snapshot": {"state": "GREEN"},
            "event_key": event_key, "reason": "execution disabled: x", "client_order_id": None,
            "submitted_at": None, "decided_at": NOW, "latency_ms": 1.0, "payload": {"ticker": "SPY"}}


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    else:
        base = sqlalchemy_url(os.environ.get("TEST_POSTGRES_URL", PG_URL))
        with make_engine(base).begin() as conn:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS audit_unit"))
            conn.execute(text("DROP TABLE IF EXISTS audit_unit.execution_log, "
                              "audit_unit.zero_execution_schema_version"))
        eng = make_engine(base + "?options=-csearch_path%3Daudit_unit")
    ensure_schema(eng)
    ensure_schema(eng)  # idempotent
    yield eng
    eng.dispose()


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(execution_log)).scalar_one()


def test_retried_audit_write_never_doubles_a_row(engine) -> None:
    assert insert_rows(engine, [row("e1")]) == 1
    assert insert_rows(engine, [row("e1")]) == 0
    assert count(engine) == 1


def test_execution_id_is_not_unique_a_blocked_row_does_not_stop_a_submitted_one(engine) -> None:
    insert_rows(engine, [row("e1")])
    submitted = row("e2") | {"status": "SUBMITTED", "alpaca_order_id": "abc"}
    assert insert_rows(engine, [submitted]) == 1
    assert count(engine) == 2


def test_json_columns_round_trip(engine) -> None:
    insert_rows(engine, [row("e1")])
    with engine.connect() as conn:
        stored = conn.execute(select(execution_log)).one()._mapping
    assert stored["why"] == ["execution disabled: x"] and stored["market_state_snapshot"] == {"state": "GREEN"}
    assert stored["created_at"] is not None


def test_schema_is_versioned_and_order_status_can_be_recorded(engine) -> None:
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM zero_execution_schema_version")).scalar_one()
    assert version == "0005"
    insert_rows(engine, [row("e1") | {"status": "SUBMITTED", "alpaca_order_id": "o1"}])
    assert update_order_status(engine, "e1", OrderFate("filled"), NOW) is True
    assert update_order_status(engine, "nope", OrderFate("filled"), NOW) is False
    with engine.connect() as conn:
        stored = conn.execute(select(execution_log)).one()._mapping
    assert stored["order_status"] == "filled"


def test_a_table_made_before_migrations_is_adopted(tmp_path: Path) -> None:
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, Table
    eng = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    legacy = MetaData()
    Table("execution_log", legacy, *[Column(c.name, c.type) for c in execution_log.columns
                                     if c.name not in ("order_status", "order_status_at")],
          PrimaryKeyConstraint("event_key", "time"))
    legacy.create_all(eng)
    ensure_schema(eng)
    insert_rows(eng, [row("e1")])
    assert count(eng) == 1


def fill_columns(engine, event_key: str) -> tuple[object, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(execution_log.c.order_status, execution_log.c.filled_avg_price,
                                         execution_log.c.filled_at)
                                  .where(execution_log.c.event_key == event_key)).one())


def test_a_fill_is_written_on_the_submitted_row_and_a_later_status_without_one_keeps_it(engine) -> None:
    insert_rows(engine, [row("e1") | {"status": "SUBMITTED", "alpaca_order_id": "o1"}])
    filled_at = "2026-11-24T15:00:01.5Z"
    assert update_order_status(engine, "e1", OrderFate("filled", "101.25", filled_at), NOW)
    status, price, when = fill_columns(engine, "e1")
    assert (status, price) == ("filled", 101.25)
    assert when.replace(tzinfo=UTC) == datetime(2026, 11, 24, 15, 0, 1, 500000, tzinfo=UTC)
    assert update_order_status(engine, "e1", OrderFate("filled"), NOW)  # the reconcile's word: a status only
    assert fill_columns(engine, "e1")[1] == 101.25


@pytest.mark.parametrize("price, at", [("not a number", "yesterday"), ("nan", "2026-11-24T15:00:01"),
                                       ("-1", None), (None, None)])
def test_an_unreadable_fill_is_left_out_not_written(engine, price: str | None, at: str | None) -> None:
    """A price that is no positive number, a time without its offset: not written."""
    insert_rows(engine, [row("e1") | {"status": "SUBMITTED", "alpaca_order_id": "o1"}])
    assert update_order_status(engine, "e1", OrderFate("filled", price, at), NOW)
    assert fill_columns(engine, "e1") == ("filled", None, None)
