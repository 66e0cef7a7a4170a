"""The hand-over ledger (bridge/handover.py) on a real Redis: what is recorded, what
removes it, what a sweep takes. The end-to-end case, a task lost inside a dying worker and
queued again, is tests/test_faults_e2e.py::test_tasks_a_dying_worker_took_off_the_queue_*.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio as aioredis
from pydantic import ValidationError

from bridge import handover as in_flight
from bridge.handover import Entry
from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import redis_db
from tests.test_message_identity import run as run_on
from zero_tasks.adapters import outbox
from zero_tasks.core import keys
from zero_tasks.core.decision import Status
from zero_tasks.core.record import DecisionRecord
from zero_tasks.core.task_auth import SEAL_MAX_AGE_S
from zero_tasks.settings import Settings

DB = redis_db(__name__)  # a database of the session's private Redis no other test uses
T = TypeVar("T")


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    yield from private_redis.clean_db(DB)


@pytest.fixture
def run(private_redis: PrivateRedis, r: redis.Redis) -> Callable[[Callable[[aioredis.Redis], Awaitable[T]]], T]:
    """Runs a coroutine scenario against the test's database."""
    url = f"redis://127.0.0.1:{private_redis.port}/{DB}"
    return lambda scenario: run_on(url, scenario)


def entry(message_id: str, heard: datetime | None = None) -> Entry:
    heard = heard or datetime.now(UTC)
    return Entry(f"SPY:H30:{message_id}", {"message_id": message_id, "received_at": heard.isoformat(),
                                           "payload": '{"ranking": 1}'})


def decision(message_id: str) -> DecisionRecord:
    now = datetime.now(UTC)
    return DecisionRecord(event_key=message_id, time=now, decided_at=now, execution_id="SPY:H30:2026-11-24T14:30:00",
                          ticker="SPY", horizon="H30", probability=0.5, opportunity_score=95, status=Status.BLOCKED,
                          reason="threshold: probability 0.5 < 0.9", why=["threshold: probability 0.5 < 0.9"],
                          market_state_snapshot=None)


def age(r: redis.Redis, message_id: str, seconds: float) -> None:
    """As if it had been handed over `seconds` earlier."""
    r.zincrby(keys.IN_FLIGHT_KEY, -seconds * 1000, message_id)


def test_a_message_is_recorded_with_its_task_before_it_is_queued(r: redis.Redis, run: Any) -> None:
    first, second = entry("m:1"), entry("m:2")
    run(lambda client: in_flight.Ledger(client).record([first, second]))
    assert r.zcard(keys.IN_FLIGHT_KEY) == 2
    assert Entry.from_json(r.hget(keys.IN_FLIGHT_TASKS_KEY, "m:1")) == first  # enough to queue it again


def test_keeping_the_worker_s_decision_takes_the_message_off_the_ledger(r: redis.Redis, run: Any) -> None:
    run(lambda client: in_flight.Ledger(client).record([entry("m:1"), entry("m:2")]))
    outbox.keep_and_announce(r, decision("m:1"))
    assert r.zrange(keys.IN_FLIGHT_KEY, 0, -1) == [b"m:2"] and r.hkeys(keys.IN_FLIGHT_TASKS_KEY) == [b"m:2"]


def test_keeping_a_batch_s_decisions_takes_them_off_the_ledger(r: redis.Redis, run: Any) -> None:
    run(lambda client: in_flight.Ledger(client).record([entry("m:1"), entry("m:2")]))
    outbox.keep_and_announce_many(r, [decision("m:1"), decision("m:2")])
    assert r.zcard(keys.IN_FLIGHT_KEY) == 0 and r.hlen(keys.IN_FLIGHT_TASKS_KEY) == 0


def test_only_what_has_waited_long_enough_is_due(r: redis.Redis, run: Any) -> None:
    run(lambda client: in_flight.Ledger(client).record([entry("m:old"), entry("m:new")]))
    age(r, "m:old", 120)
    due = run(lambda client: in_flight.Ledger(client).due(after_s=60))
    assert [e.message_id for e in due] == ["m:old"]


def test_a_sweep_takes_what_it_returns_so_another_bridge_does_not_queue_it_too(r: redis.Redis, run: Any) -> None:
    run(lambda client: in_flight.Ledger(client).record([entry("m:1")]))
    age(r, "m:1", 120)
    assert len(run(lambda client: in_flight.Ledger(client).due(after_s=60))) == 1
    assert run(lambda client: in_flight.Ledger(client).due(after_s=60)) == []  # taken: due again in 60 s
    age(r, "m:1", 120)
    assert len(run(lambda client: in_flight.Ledger(client).due(after_s=60))) == 1  # still undecided: again


def test_an_entry_whose_task_is_gone_is_dropped_by_the_sweep(r: redis.Redis, run: Any) -> None:
    r.zadd(keys.IN_FLIGHT_KEY, {"m:orphan": 1})
    assert run(lambda client: in_flight.Ledger(client).due(after_s=60)) == []
    assert r.zcard(keys.IN_FLIGHT_KEY) == 0


def test_a_message_whose_seal_is_about_to_expire_is_not_queued_again() -> None:
    """Queued again it would only be refused as a task with an expired seal (task_auth)."""
    now = datetime.now(UTC)
    assert entry("m:1", now - timedelta(hours=25)).too_old(now)
    assert entry("m:1", now - timedelta(seconds=SEAL_MAX_AGE_S)).too_old(now)
    assert not entry("m:1", now - timedelta(seconds=SEAL_MAX_AGE_S - 3600)).too_old(now)


def test_the_rescue_must_wait_out_kombus_redelivery_and_the_retry_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"ALPACA_PAPER": "true", "ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s",
                        "TASK_SIGNING_KEY": "t" * 32,
                        "VISIBILITY_TIMEOUT_S": "90", "BROKER_MAX_RETRIES": "4", "BROKER_RETRY_BACKOFF_MAX_S": "20",
                        "RATE_LIMIT_MAX_WAIT_S": "30"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HANDOVER_RESCUE_AFTER_S", "200")  # = 90 + 4 x 20 + 30: not more
    with pytest.raises(ValidationError, match="HANDOVER_RESCUE_AFTER_S must exceed"):
        Settings()
    monkeypatch.setenv("HANDOVER_RESCUE_AFTER_S", "201")
    assert Settings().handover_rescue_after_s == 201
    monkeypatch.delenv("HANDOVER_RESCUE_AFTER_S")
    assert Settings().handover_rescue_after_s == 600
