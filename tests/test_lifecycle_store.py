"""The lifecycle's durable schedule in Redis: seeded with the SUBMITTED entry's decision in
the same script, leased by the tick, nudged by the account mirror; the outcome kept and
announced once. A Redis server of this module's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis
from pydantic import SecretStr

from tests.support.procs import TEST_SIGNING_KEY, PrivateRedis
from tests.support.redis_dbs import flushed
from zero_tasks.adapters import lifecycle_store as store
from zero_tasks.adapters import outbox
from zero_tasks.adapters.audit import ensure_schema, insert_outcomes, insert_rows, make_engine, outcome_row
from zero_tasks.adapters.reconcile_job import reseed, unfinished_entries
from zero_tasks.adapters.risk import BrokerRateLimit, RateLimited
from zero_tasks.core import keys
from zero_tasks.core.contract import client_order_id, exit_client_order_id, protect_client_order_id
from zero_tasks.core.decision import Status
from zero_tasks.core.lifecycle.outcome import outcome_of
from zero_tasks.core.lifecycle.seed import seed_of
from zero_tasks.core.lifecycle.state import Facts, OrderFacts, PositionFacts
from zero_tasks.core.record import DecisionRecord

EXEC = "SPY:H30:2026-12-07T15:00:00"
KEY = TEST_SIGNING_KEY
AT = datetime(2026, 12, 7, 15, 0, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(log_dir: Path) -> Iterator[PrivateRedis]:
    srv = PrivateRedis(log_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def r(server: PrivateRedis) -> Iterator[redis.Redis]:
    yield from flushed(server, 0)


def decision(status: Status = Status.SUBMITTED, event_key: str = "msg:1", **over: Any) -> DecisionRecord:
    values: dict[str, Any] = {
        "event_key": event_key, "time": AT, "decided_at": AT, "execution_id": EXEC, "ticker": "SPY",
        "horizon": "H30", "probability": 0.95, "opportunity_score": 95.0, "status": status,
        "reason": f"{status.value.lower()}: x", "why": ["x"], "market_state_snapshot": None,
        "client_order_id": client_order_id(EXEC), "payload": {"ticker": "SPY", "target_atr": 1.5, "stop_atr": 0.75}}
    return DecisionRecord(**{**values, **over})


def test_a_submitted_entry_is_kept_with_its_lifecycle_due_at_once(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision(), KEY)
    rec = store.load(r, EXEC, KEY)
    assert rec is not None and (rec.ticker, rec.target_atr, rec.stop_atr) == ("SPY", 1.5, 0.75)
    assert rec.rank_time == datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert r.zscore(keys.LIFECYCLE_DUE_KEY, EXEC) == 0


@pytest.mark.parametrize("status", [Status.BLOCKED, Status.SKIPPED, Status.REJECTED, Status.ERROR])
def test_no_lifecycle_for_an_entry_that_placed_nothing(r: redis.Redis, status: Status) -> None:
    outbox.keep_and_announce(r, decision(status), KEY)
    assert store.load(r, EXEC, KEY) is None and r.zcard(keys.LIFECYCLE_DUE_KEY) == 0


def test_an_exit_decision_seeds_nothing(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision(event_key=f"{EXEC}#exit", intent="exit", side="sell",
                                         exit_reason="horizon"), KEY)
    assert store.load(r, EXEC, KEY) is None


def test_a_lifecycle_under_way_is_never_seeded_over(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision(), KEY)
    rec = store.load(r, EXEC, KEY)
    assert rec is not None
    store.save(r, rec.but(exit_deferred=True), KEY)
    store.schedule(r, EXEC, AT + timedelta(hours=1))
    outbox.keep_and_announce(r, decision(event_key="msg:2"), KEY)  # another message, same execution_id
    again = store.load(r, EXEC, KEY)
    assert again is not None and again.exit_deferred
    assert r.zscore(keys.LIFECYCLE_DUE_KEY, EXEC) == (AT + timedelta(hours=1)).timestamp() * 1000


def test_the_tick_leases_what_it_takes_so_a_second_tick_sends_nothing(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision(), KEY)
    now = datetime.now(UTC)
    assert store.take_due(r, now, lease_ms=60_000) == [EXEC]
    assert store.take_due(r, now, lease_ms=60_000) == []
    assert store.take_due(r, now + timedelta(seconds=61), lease_ms=60_000) == [EXEC]  # its step died: due again


def test_nothing_is_due_before_its_time(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision(), KEY)
    now = datetime.now(UTC)
    store.schedule(r, EXEC, now + timedelta(seconds=30))
    assert store.take_due(r, now, lease_ms=1000) == []
    assert store.take_due(r, now + timedelta(seconds=30), lease_ms=1000) == [EXEC]


@pytest.mark.parametrize("cid", [client_order_id(EXEC), protect_client_order_id(EXEC), exit_client_order_id(EXEC)])
def test_a_nudge_by_any_of_the_executions_client_order_ids_makes_its_step_due_now(r: redis.Redis, cid: str) -> None:
    outbox.keep_and_announce(r, decision(), KEY)
    store.schedule(r, EXEC, datetime.now(UTC) + timedelta(hours=1))
    store.nudge(r, cid)
    assert store.take_due(r, datetime.now(UTC), lease_ms=1000) == [EXEC]


@pytest.mark.parametrize("cid", ["zx-QQQ:H30:2026-12-07T15:00:00", "someone-elses-order", "zp-" + "a" * 64])
def test_a_nudge_never_creates_a_schedule(r: redis.Redis, cid: str) -> None:
    store.nudge(r, cid)
    assert r.zcard(keys.LIFECYCLE_DUE_KEY) == 0


def test_a_finished_lifecycle_leaves_the_schedule_and_is_kept_a_week(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision(), KEY)
    rec = store.load(r, EXEC, KEY)
    assert rec is not None
    store.finish(r, rec.but(finished="outcome PASS via target"), KEY)
    assert r.zcard(keys.LIFECYCLE_DUE_KEY) == 0
    assert 0 < r.ttl(keys.lifecycle_key(EXEC)) <= keys.LIFECYCLE_DONE_TTL_SECONDS


def outcome() -> Any:
    rec = seed_of(decision())
    assert rec is not None
    entry = OrderFacts("e", "filled", 1, 512.31, AT)
    target = OrderFacts("t", "filled", 1, 513.57, AT + timedelta(minutes=21))
    return outcome_of(rec, Facts(entry, PositionFacts(), target, OrderFacts("s", "canceled", 0)), AT)


def test_an_outcome_is_kept_published_and_queued_for_its_table_once(r: redis.Redis) -> None:
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.OUTCOME_CHANNEL)
    assert outbox.keep_outcome(r, outcome()) is True
    assert outbox.keep_outcome(r, outcome()) is False  # a step run again: nothing more
    entries = r.xrange(outbox.AUDIT_STREAM)
    assert [list(fields) for _, fields in entries] == [["outcome"]]
    messages = []
    for _ in range(20):
        message = pubsub.get_message(timeout=0.1)
        if message:
            messages.append(json.loads(message["data"]))
    assert [(m["execution_id"], m["outcome"], m["realized_pnl"]) for m in messages] == [(EXEC, "PASS", 1.26)]


def test_the_reconcile_reseeds_an_entry_whose_lifecycle_redis_lost(r: redis.Redis) -> None:
    rec = seed_of(decision())
    assert rec is not None
    rt = cast(Any, SimpleNamespace(redis=r, settings=SimpleNamespace(task_signing_key=SecretStr(KEY))))
    assert reseed(rt, [rec], lambda _: False) == 1
    assert store.load(r, EXEC, KEY) == rec and r.zscore(keys.LIFECYCLE_DUE_KEY, EXEC) == 0
    assert reseed(rt, [rec], lambda _: False) == 0  # there now: never seeded over


def test_a_bridge_keeping_a_decision_without_the_signing_key_seeds_nothing(r: redis.Redis) -> None:
    outbox.keep_and_announce(r, decision())
    assert r.exists(keys.lifecycle_key(EXEC)) == 0


@pytest.mark.parametrize("tamper", ["unsealed", "altered", "other key"])
def test_a_lifecycle_record_the_gateway_did_not_seal_is_refused(r: redis.Redis, tamper: str) -> None:
    outbox.keep_and_announce(r, decision(), KEY)
    rec = store.load(r, EXEC, KEY)
    assert rec is not None
    early = rec.but(due_at=AT)
    if tamper == "unsealed":
        r.hdel(keys.lifecycle_key(EXEC), "seal")
    elif tamper == "altered":
        r.hset(keys.lifecycle_key(EXEC), "record", early.to_json())
    else:
        store.save(r, early, "another-gateways-key-" + "x" * 20)
    with pytest.raises(store.ForgedRecord):
        store.load(r, EXEC, KEY)


def test_exits_go_ahead_of_entries_in_the_broker_budget(r: redis.Redis) -> None:
    budget = BrokerRateLimit(r, per_minute=8, reserve=2)
    for _ in range(6):
        budget.acquire("placement")
    with pytest.raises(RateLimited):
        budget.acquire("placement")  # the entries' share is spent
    budget.acquire("exit-sell", 2, exit_order=True)  # the reserve is the exits'
    with pytest.raises(RateLimited):
        budget.acquire("exit-sell", exit_order=True)


def test_the_reconcile_reseeds_only_submitted_entries_without_an_outcome(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    ensure_schema(engine)
    now = datetime.now(UTC)
    open_one, closed, blocked, old = (f"{t}:H30:{(now - timedelta(hours=h)).strftime('%Y-%m-%dT%H:%M:%S')}"
                                      for t, h in (("SPY", 1), ("QQQ", 2), ("IWM", 3), ("DIA", 24 * 6)))
    rows = [decision(event_key=f"m:{e}", execution_id=e, time=now - timedelta(hours=1),
                     client_order_id=client_order_id(e)).to_row() for e in (open_one, closed)]
    rows.append(decision(Status.BLOCKED, event_key="m:b", execution_id=blocked, client_order_id=None).to_row())
    rows.append(decision(event_key="m:o", execution_id=old, time=now - timedelta(days=6),
                         client_order_id=client_order_id(old)).to_row())
    rows.append(decision(event_key=f"{open_one}#protect", execution_id=open_one, intent="protect", side="sell",
                         client_order_id=protect_client_order_id(open_one)).to_row())
    insert_rows(engine, rows)
    done = seed_of(decision(execution_id=closed))
    assert done is not None
    entry = OrderFacts("e", "filled", 1, 100.0, now - timedelta(hours=1))
    result = outcome_of(done, Facts(entry, PositionFacts(), OrderFacts("t", "filled", 1, 101.0, now)), now)
    assert not isinstance(result, str)
    insert_outcomes(engine, [outcome_row(json.dumps(result.to_message()))])
    rt = cast(Any, SimpleNamespace(engine=engine))
    assert [rec.execution_id for rec in unfinished_entries(rt, now)] == [open_one]
