"""The hot path's Redis round trips, counted on a real Redis (MONITOR).

Each round trip here is paid on every order, between the signal and the broker: the first
read of a decision is one (the outbox and the veto's snapshot together), and what follows
an order (cooldown from the order's time, the breaker's failure count) is one. A decision
is kept and announced in one; a batch's first read is one, and its decisions are kept in one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from tests.support.monitor import commands_during
from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import flushed, redis_db
from zero_tasks.adapters import outbox
from zero_tasks.adapters.redis_state import ExecutionLocks, connect, read_hash_fields_and_snapshots
from zero_tasks.adapters.risk import CircuitBreaker
from zero_tasks.core.decision import Code, Status
from zero_tasks.core.record import DecisionRecord

DB = redis_db(__name__)
NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    yield from flushed(private_redis, DB)


def decision(event_key: str) -> DecisionRecord:
    return DecisionRecord(event_key=event_key, time=NOW, decided_at=NOW, status=Status.BLOCKED,
                          reason=f"{Code.DISABLED.value}: off", market_state_snapshot=None,
                          execution_id="SPY:H30:2026-11-24T14:30:00", ticker="SPY", horizon="H30",
                          probability=0.95, opportunity_score=95.0, why=["execution disabled: off"], payload=None)


def test_the_first_read_is_one_round_trip_with_the_outbox_and_the_snapshot(private_redis: PrivateRedis,
                                                                          r: redis.Redis) -> None:
    r.mset({"key:execution_enabled": "true", "key:market_state": '{"state": "GREEN"}',
            "key:execution_blocklist:SPY": "manual"})
    found: list[object] = []
    sent = commands_during(private_redis, DB, lambda: found.extend(outbox.find_with_snapshot(r, "m:1", "SPY")))
    stored, snap = found
    assert stored is None
    assert (snap.execution_enabled, snap.market_state, snap.blocklist) == ("true", '{"state": "GREEN"}', "manual")
    assert len(sent) == 2 and sent[0].startswith("HGET") and sent[1].startswith("MGET"), sent  # pipelined


def test_the_first_read_returns_a_decision_already_kept(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision("m:2"))
    stored, _ = outbox.find_with_snapshot(r, "m:2", "SPY")
    assert stored is not None and stored.event_key == "m:2" and stored.status is Status.BLOCKED


def test_the_first_read_fails_closed_on_a_kill_switch_that_is_not_utf8(r: redis.Redis) -> None:
    r.set("key:execution_enabled", b"\xff\xfe")
    stored, snap = outbox.find_with_snapshot(r, "m:3", "SPY")
    assert stored is None and snap.error and "UnicodeDecodeError" in snap.error


def test_the_first_read_raises_when_redis_is_unreachable() -> None:
    """The caller then cannot know whether the message is decided: the task runs again later."""
    dead = connect("redis://127.0.0.1:1/0")
    with pytest.raises(redis.ConnectionError):
        outbox.find_with_snapshot(dead, "m:4", "SPY")


def test_cooldown_and_breaker_reset_after_an_order_are_one_round_trip(private_redis: PrivateRedis,
                                                                     r: redis.Redis) -> None:
    locks = ExecutionLocks(r, cooldown_s=3600)
    breaker = CircuitBreaker(r, threshold=3, window_s=60, cooloff_s=30)
    r.set("key:execution_breaker_failures", 2)

    def after_order() -> None:
        pipe = r.pipeline()
        locks.confirm_cooldown("SPY", "SPY:H30:x", NOW, pipe)
        breaker.success(pipe)
        pipe.execute()

    sent = commands_during(private_redis, DB, after_order)
    assert sent[0] == "MULTI" and sent[-1] == "EXEC" and len(sent) == 5, sent
    assert r.get("key:execution_cooldown:SPY") == NOW.isoformat()
    assert r.get("key:execution_breaker_failures") is None


def test_a_connection_redis_closed_while_idle_is_reconnected_by_the_next_command(private_redis: PrivateRedis,
                                                                               r: redis.Redis) -> None:
    """What lets the gateway's clients go without a health-check PING before a command."""
    r.set("key:execution_enabled", "true")
    private_redis.client().client_kill_filter(_id=r.client_id())
    time.sleep(0.2)  # idle: the server's close has reached the client
    assert r.get("key:execution_enabled") == "true"


def test_the_gateways_command_clients_send_no_health_check_ping(private_redis: PrivateRedis,
                                                                 r: redis.Redis) -> None:
    """However long a connection was idle (its health-check time is set far in the past)."""
    url = f"redis://127.0.0.1:{private_redis.port}/{DB}"
    sync_client = connect(url)
    sync_client.get("key:execution_enabled")
    conn = sync_client.connection_pool.get_connection()
    conn.next_health_check = 0
    sync_client.connection_pool.release(conn)
    sent = commands_during(private_redis, DB, lambda: sync_client.get("key:execution_enabled"))
    assert sent == ["GET KEY:EXECUTION_ENABLED"], sent


def test_a_decision_kept_alone_is_kept_and_announced_in_one_round_trip(
        private_redis: PrivateRedis, r: redis.Redis) -> None:
    outbox.keep_and_announce_many(r, [decision("m:5")])  # the script loaded
    sent = commands_during(private_redis, DB, lambda: outbox.keep_and_announce_many(r, [decision("m:6")]))
    assert [c.split()[0] for c in sent] == ["EVALSHA"], sent
    assert outbox.find(r, "m:6") is not None


def test_a_batch_of_decisions_is_kept_in_one_round_trip_and_each_message_announced_once(
        private_redis: PrivateRedis, r: redis.Redis) -> None:
    results: list[tuple[DecisionRecord, bool]] = []
    sent = commands_during(private_redis, DB, lambda: results.extend(
        outbox.keep_and_announce_many(r, [decision("m:7"), decision("m:8"), decision("m:7")])))
    assert [published for _, published in results] == [True, True, False]  # m:7 announced once
    assert outbox.find(r, "m:7") is not None and outbox.find(r, "m:8") is not None
    assert [c.split()[0] for c in sent if not c.startswith("SCRIPT")] == ["EVALSHA"] * 3, sent  # one pipeline


def test_a_batch_s_first_read_is_one_round_trip_for_every_message_and_snapshot(private_redis: PrivateRedis,
                                                                             r: redis.Redis) -> None:
    r.mset({"key:execution_enabled": "true", "key:execution_blocklist:QQQ": "manual"})
    outbox.keep_and_announce(r, decision("m:10"))
    found: list[tuple[object, object]] = []
    sent = commands_during(private_redis, DB, lambda: found.extend(read_hash_fields_and_snapshots(
        r, [(outbox.decision_key(k), "record") for k in ("m:9", "m:10", "m:11")], ["SPY", "QQQ", None])))
    (none, spy), (kept, qqq), (invalid, no_snap) = found
    assert none is None and kept is not None and invalid is None and no_snap is None
    assert (spy.execution_enabled, spy.blocklist, qqq.blocklist) == ("true", None, "manual")  # type: ignore[union-attr]
    assert [c.split()[0] for c in sent] == ["HGET", "MGET", "HGET", "MGET", "HGET"], sent  # pipelined
