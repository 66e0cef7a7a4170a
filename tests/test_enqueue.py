"""The bridge's hand-over: a message it won goes to the worker through Celery's `send_task`
and is marked handed over once it is on the queue; the enqueuer keeps what it cannot hand
to the Celery broker, and never drops a message silently when that backlog is full."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import pytest
import redis as redis_sync
import redis.asyncio as aioredis
from celery import Celery

from bridge.dedup import content_hash, take_over
from bridge.handover import Enqueuer, Entry
from bridge.listener import Listener
from tests.support.bridge_redis import run
from tests.support.monitor import commands_during
from tests.support.procs import PrivateRedis, free_port
from tests.support.redis_dbs import redis_db
from tests.test_message_identity import running
from zero_tasks.core import keys


def unreachable_app() -> Celery:
    app = Celery("test", broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.broker_connection_timeout = 0.2
    return app


def test_unreachable_broker_keeps_messages_pending(caplog) -> None:
    enqueuer = Enqueuer(unreachable_app(), max_pending=5)
    results = asyncio.run(_submit_all(enqueuer, 3))
    assert results == [False, False, False]
    assert enqueuer.pending == 3 and enqueuer.enqueued == 0 and enqueuer.dropped == 0


def test_full_backlog_drops_the_oldest_with_an_error(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bridge.enqueue")
    enqueuer = Enqueuer(unreachable_app(), max_pending=2)
    asyncio.run(_submit_all(enqueuer, 3))
    assert enqueuer.pending == 2 and enqueuer.dropped == 1
    assert any("dropped undecided" in r.getMessage() and "m0" in r.getMessage() for r in caplog.records)


async def _submit_all(enqueuer: Enqueuer, n: int) -> list[bool]:
    return [await enqueuer.submit([Entry(f"id-{i}", {"message_id": f"m{i}"})]) for i in range(n)]


def test_reachable_broker_takes_messages_inline_in_order(private_redis) -> None:
    import json

    import redis

    app = Celery("test", broker=f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__)}")
    redis.Redis(port=private_redis.port, db=redis_db(__name__)).flushdb()
    enqueuer = Enqueuer(app)
    assert asyncio.run(_submit_all(enqueuer, 3)) == [True, True, True]
    assert enqueuer.pending == 0 and enqueuer.enqueued == 3 and enqueuer.failures == 0
    queued = redis.Redis(port=private_redis.port, db=redis_db(__name__)).lrange("celery", 0, -1)
    assert [json.loads(m)["headers"]["id"] for m in reversed(queued)] == ["id-0", "id-1", "id-2"]


def test_a_batch_heard_together_goes_as_one_decide_many_task_with_every_message_in_order(private_redis) -> None:
    db = redis_db(__name__)
    redis_sync.Redis(port=private_redis.port, db=db).flushdb()
    enqueuer = Enqueuer(Celery("test", broker=f"redis://127.0.0.1:{private_redis.port}/{db}"))
    batch = [Entry(f"id-{i}", {"message_id": f"m{i}"}) for i in range(3)]
    assert asyncio.run(enqueuer.submit(batch)) is True
    assert enqueuer.enqueued == 3 and enqueuer.pending == 0
    (queued,) = redis_sync.Redis(port=private_redis.port, db=db).lrange("celery", 0, -1)
    task = json.loads(queued)
    assert (task["headers"]["task"], task["headers"]["id"]) == ("zero.decide_many", "batch:m0+3")
    body = json.loads(base64.b64decode(task["body"]))
    assert body[0] == [[{"message_id": "m0"}, {"message_id": "m1"}, {"message_id": "m2"}]]


def test_a_warm_up_against_an_unreachable_broker_only_warns(caplog) -> None:
    enqueuer = Enqueuer(unreachable_app())
    enqueuer.connect()
    assert any("warm-up" in r.getMessage() for r in caplog.records)
    assert enqueuer.failures == 0 and enqueuer.pending == 0  # the first message tries again


def test_after_the_warm_up_the_first_send_is_the_queue_write_alone(private_redis: PrivateRedis) -> None:
    """The first signal after a start costs what the next ones do: the decide queue's
    declaration (kombu's binding, once per connection) is made by the warm-up, not by it."""
    db = redis_db(__name__, 1)
    app = Celery("test", broker=f"redis://127.0.0.1:{private_redis.port}/{db}")
    enqueuer = Enqueuer(app)
    private_redis.client(db=db).flushdb()
    warm_up = commands_during(private_redis, db, enqueuer.connect)
    first = commands_during(private_redis, db, lambda: enqueuer.submit([Entry("id-1", {"message_id": "m1"})]))
    second = commands_during(private_redis, db, lambda: enqueuer.submit([Entry("id-2", {"message_id": "m2"})]))
    assert any(c.startswith("SADD") and "_KOMBU.BINDING.CELERY" in c for c in warm_up)  # the queue declared
    assert [c.split()[0] for c in first] == [c.split()[0] for c in second] == ["LPUSH"]


@pytest.mark.parametrize("handed_over", [True, False])
def test_a_listener_marks_a_message_it_won_handed_over_only_once_its_handler_handed_it_over(
        private_redis: PrivateRedis, handed_over: bool) -> None:
    """Handed over: no other bridge takes it over. Not (say, kept while the Celery broker is
    away): another bridge may take it over, and it is not lost if this one dies."""
    db = private_redis.client(db=redis_db(__name__))
    db.flushdb()
    url = f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__)}"
    message_id = f"{content_hash(b'one ranking')}:1"
    handled: list[str] = []

    async def handler(batch: list[tuple[bytes, str, object]]) -> set[str]:
        handled.extend(mid for _, mid, _ in batch)
        return {mid for _, mid, _ in batch} if handed_over else set()

    async def scenario(client: aioredis.Redis) -> list[bool]:
        stop, task = await running(Listener(url, handler))
        await client.publish(keys.OPPORTUNITY_CHANNEL, b"one ranking")
        for _ in range(200):
            if handled:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
        return await take_over(client, [message_id])

    assert run(url, scenario) == [not handed_over]
    assert handled == [message_id]
    db.flushdb()


def quiet_app(private_redis: PrivateRedis, db: int, health_check_s: int = 1) -> Celery:
    app = Celery("test", broker=f"redis://127.0.0.1:{private_redis.port}/{db}")
    app.conf.broker_transport_options = {"health_check_interval": health_check_s}
    return app


def idle_past_its_health_check(private_redis: PrivateRedis, db: int) -> Enqueuer:
    """An enqueuer whose queue connection sent a task, then stayed idle past its 1 s check."""
    enqueuer = Enqueuer(quiet_app(private_redis, db))
    asyncio.run(enqueuer.submit([Entry("id-1", {"message_id": "m1"})]))
    time.sleep(1.5)
    return enqueuer


def test_a_queue_connection_idle_past_its_health_check_pings_before_the_next_write(
        private_redis: PrivateRedis) -> None:
    """kombu's behaviour, the reason for the keep-warm below."""
    db = redis_db(__name__, 1)
    enqueuer = idle_past_its_health_check(private_redis, db)
    sent = commands_during(private_redis, db, lambda: enqueuer.submit([Entry("id-2", {"message_id": "m2"})]))
    assert [c.split()[0] for c in sent] == ["PING", "LPUSH"]


def test_after_a_keep_warm_the_next_write_after_a_quiet_spell_is_the_queue_write_alone(
        private_redis: PrivateRedis) -> None:
    db = redis_db(__name__, 1)
    enqueuer = idle_past_its_health_check(private_redis, db)
    warm = commands_during(private_redis, db, enqueuer.keep_warm)
    sent = commands_during(private_redis, db, lambda: enqueuer.submit([Entry("id-2", {"message_id": "m2"})]))
    assert "PING" in [c.split()[0] for c in warm]  # the check is paid here, off the signal's path
    assert [c.split()[0] for c in sent] == ["LPUSH"]


def test_keep_warm_is_due_after_half_the_health_check_interval_while_nothing_is_kept(
        private_redis: PrivateRedis) -> None:
    enqueuer = Enqueuer(quiet_app(private_redis, redis_db(__name__, 1), health_check_s=10))
    start = time.monotonic()
    assert enqueuer.keep_warm_every_s == 5.0
    assert not enqueuer.due_to_keep_warm(start + 4.0)
    assert enqueuer.due_to_keep_warm(start + 5.0)


def test_keep_warm_is_never_due_while_a_message_is_kept() -> None:
    enqueuer = Enqueuer(unreachable_app())
    asyncio.run(_submit_all(enqueuer, 1))
    assert enqueuer.pending == 1
    assert not enqueuer.due_to_keep_warm(time.monotonic() + 3600)


def test_keep_warm_is_never_due_on_an_amqp_broker() -> None:
    enqueuer = Enqueuer(Celery("test", broker=f"amqp://guest:guest@127.0.0.1:{free_port()}//"))
    assert enqueuer.keep_warm_every_s is None
    assert not enqueuer.due_to_keep_warm(time.monotonic() + 3600)


def test_a_failed_keep_warm_warns_once_and_the_next_message_is_kept_not_lost(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.enqueue")
    enqueuer = Enqueuer(unreachable_app())

    async def scenario() -> bool:
        await enqueuer.keep_warm()
        await enqueuer.keep_warm()
        return await enqueuer.submit([Entry("id-1", {"message_id": "m1"})])

    assert asyncio.run(scenario()) is False
    assert sum("failed its keep-warm" in r.getMessage() for r in caplog.records) == 1
    assert enqueuer.pending == 1 and enqueuer.dropped == 0
