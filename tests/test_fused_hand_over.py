"""A signal heard alone is claimed and put on the Celery queue by one script
(bridge/task_message.py, dedup.claim_and_push). Against a real Redis and, for the task, a real Celery worker."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
import redis
import redis.asyncio as aioredis
from celery import Celery

from bridge.dedup import MessageIdentity, Push, content_hash
from bridge.enqueue import Enqueuer
from bridge.task_message import TaskPushBuilder, fusable
from tests.support.gateway import Gateway, market, now_iso, opportunity, ranking
from tests.support.redis_dbs import redis_db
from tests.support.procs import PrivateRedis, free_port, health
from tests.test_message_identity import run, running
from zero_tasks.core import keys
from zero_tasks.adapters.in_flight import Entry

DB = redis_db(__name__)  # a database of the session's private Redis no other test uses
MESSAGE = {"message_id": "abc:1", "payload": '{"ranking": 1}', "received_at": "2026-12-02T12:00:00+00:00"}


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    yield from private_redis.clean_db(DB)


@pytest.fixture
def app(private_redis: PrivateRedis, r: redis.Redis) -> Celery:
    app = Celery("test-fused", broker=f"redis://127.0.0.1:{private_redis.port}/{DB}")
    app.conf.task_default_queue = "zero_execution"
    return app


def envelope(payload: str | bytes) -> dict[str, Any]:
    """A queued kombu message without its delivery tag (a fresh uuid on every publish)."""
    message = json.loads(payload)
    message["properties"].pop("delivery_tag")
    return message


@pytest.mark.parametrize("payload", ['{"ranking": 1}', '{"ticker": "BRK.B", "why": ["é", "\\u0000", "漢"]}', "x" * 5000])
def test_the_built_task_is_byte_for_byte_what_send_task_queues_bar_the_delivery_tag(app: Celery, r: redis.Redis,
                                                                                    payload: str) -> None:
    message = {**MESSAGE, "payload": payload}
    key, built = TaskPushBuilder(app, "zero.decide").build("SPY:H30:x", [message], "['abc:1']")
    app.send_task("zero.decide", args=[message], task_id="SPY:H30:x", argsrepr="['abc:1']", kwargsrepr="{}")
    (sent,) = r.lrange("zero_execution", 0, -1)
    assert key == "zero_execution"
    assert envelope(built) == envelope(sent)
    tag_built, tag_sent = (json.loads(m)["properties"]["delivery_tag"] for m in (built, sent))
    assert tag_built != tag_sent  # a fresh one per message, as kombu makes
    assert built.replace(tag_built, tag_sent).encode() == sent  # and every other byte the same


def test_building_a_task_queues_nothing(app: Celery, r: redis.Redis) -> None:
    builder = TaskPushBuilder(app, "zero.decide")
    for i in range(3):
        builder.build(f"id-{i}", [MESSAGE], "['abc:1']")
    assert r.llen("zero_execution") == 0


def test_a_task_routed_to_no_single_queue_is_not_built(app: Celery) -> None:
    app.conf.task_queues = ()
    app.conf.task_routes = {"zero.decide": {"exchange": "fan", "exchange_type": "fanout", "routing_key": "x"}}
    with pytest.raises(ValueError, match="routes to 0 queues"):
        TaskPushBuilder(app, "zero.decide")


def celery_with_a_new_per_message_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Celery that puts a per-message field the template does not know about (here: the
    task id in a new header, spelled differently)."""
    from celery.app import amqp

    original = amqp.AMQP.as_task_v2

    def with_a_new_field(self, task_id, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        message = original(self, task_id, name, *args, **kwargs)
        message.headers["trace"] = task_id.upper()
        return message

    monkeypatch.setattr(amqp.AMQP, "as_task_v2", with_a_new_field)


def test_a_template_that_differs_from_what_celery_sends_is_refused(app: Celery,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    celery_with_a_new_per_message_field(monkeypatch)
    with pytest.raises(ValueError, match="template differs"):
        TaskPushBuilder(app, "zero.decide")


def test_an_enqueuer_whose_template_differs_sends_the_usual_way(app: Celery, private_redis: PrivateRedis,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    celery_with_a_new_per_message_field(monkeypatch)
    enqueuer = Enqueuer(app, f"redis://127.0.0.1:{private_redis.port}/{DB}")
    assert enqueuer.push_for("id-1", MESSAGE) is None
    assert enqueuer.hand_over == "send_task (the task template differs from what Celery sends)"
    assert enqueuer.push_for("id-2", MESSAGE) is None  # decided once, not tried per message


def test_only_a_broker_in_the_claims_database_without_key_prefix_is_fusable() -> None:
    url = "redis://127.0.0.1:6379/0"
    assert fusable(url, url, {}) is None
    assert "not the Redis database" in fusable("redis://127.0.0.1:6379/1", url, {})
    assert "global_keyprefix" in fusable(url, url, {"global_keyprefix": "zero:"})


def test_the_enqueuer_builds_nothing_ahead_while_messages_wait_for_the_broker(app: Celery,
                                                                            private_redis: PrivateRedis) -> None:
    """Order holds: while a message is kept for retry, the next one queues behind it."""
    enqueuer = Enqueuer(app, f"redis://127.0.0.1:{private_redis.port}/{DB}")
    assert enqueuer.hand_over == "claim script"
    assert enqueuer.push_for("id-1", MESSAGE) is not None
    enqueuer._pending.append(("id-0", MESSAGE))
    assert enqueuer.push_for("id-1", MESSAGE) is None


def test_an_enqueuer_whose_broker_is_elsewhere_sends_the_usual_way(app: Celery) -> None:
    enqueuer = Enqueuer(app, f"redis://127.0.0.1:{free_port()}/0")
    assert enqueuer.push_for("id-1", MESSAGE) is None
    assert enqueuer.hand_over.startswith("send_task (")


# the claim script --------------------------------------------------------------------
def subscribed(url: str, n: int = 1) -> list[MessageIdentity]:
    """n bridges, all subscribed before anything is claimed: they hear the same messages."""
    identities = [MessageIdentity() for _ in range(n)]
    for identity in identities:
        run(url, identity.subscribing)
    return identities


def claim_and_push(url: str, identity: MessageIdentity, data: bytes, payload: str) -> tuple[str, bool, bool]:
    """The claim script with a task built for the next occurrence of `data`, as the listener calls it."""
    expected = identity.next_id(data)
    push = Push("zero_execution", payload, entry_for(expected))
    return run(url, lambda client: identity.claim_and_push(client, expected, push))


def entry_for(message_id: str) -> Entry:
    return Entry("SPY:H30:2026-11-24T14:30:00", {"message_id": message_id, "received_at": now_iso(), "payload": "{}"})


@pytest.fixture
def url(private_redis: PrivateRedis, r: redis.Redis) -> str:
    return f"redis://127.0.0.1:{private_redis.port}/{DB}"


def test_a_won_claim_queues_the_task_and_marks_the_message_handed_over(url: str, r: redis.Redis) -> None:
    (identity,) = subscribed(url)
    message_id, won, pushed = claim_and_push(url, identity, b"one", "task-1")
    assert (won, pushed) == (True, True)
    assert r.lrange("zero_execution", 0, -1) == [b"task-1"]
    digest, occurrence = message_id.rsplit(":", 1)
    assert r.smembers(keys.BRIDGE_MSG_PREFIX + digest + ":handed") == {occurrence.encode()}
    assert r.zscore(keys.IN_FLIGHT_KEY, message_id) is not None  # in the hand-over ledger, same step
    assert Entry.from_json(r.hget(keys.IN_FLIGHT_TASKS_KEY, message_id)).message_id == message_id


def test_a_claim_another_bridge_won_queues_nothing(url: str, r: redis.Redis) -> None:
    first, second = subscribed(url, 2)
    claim_and_push(url, first, b"one", "task-1")
    _, won, pushed = claim_and_push(url, second, b"one", "task-1 again")
    assert (won, pushed) == (False, False)
    assert r.lrange("zero_execution", 0, -1) == [b"task-1"]
    assert r.zcard(keys.IN_FLIGHT_KEY) == 1  # the winner's entry only


def test_a_claim_won_under_another_occurrence_than_the_task_carries_queues_nothing(url: str, r: redis.Redis) -> None:
    """The bytes were claimed before this bridge subscribed: its task names occurrence 1,
    the claim gives 2. The message is won but left to the usual path, which names it right."""
    (identity,) = subscribed(url)
    data = b"seen before"
    r.hset(keys.BRIDGE_MSG_PREFIX + content_hash(data), "1", 1)  # claimed at t=1 ms, long before
    message_id, won, pushed = claim_and_push(url, identity, data, "task")
    assert message_id.endswith(":2") and (won, pushed) == (True, False)
    assert r.llen("zero_execution") == 0 and r.zcard(keys.IN_FLIGHT_KEY) == 0


# the whole path ----------------------------------------------------------------------
def decide_through_the_claim_script(gw: Gateway, rank: dict[str, Any]) -> dict[str, Any]:
    """Publish one ranking alone; its event, once /health shows its task went through the
    claim script (not the usual send_task path)."""
    before = health(gw.api_port)[1]["bridge"]
    assert before["hand_over"] == "claim script"
    (event,) = gw.decide(rank)
    deadline = time.monotonic() + 5
    while health(gw.api_port)[1]["bridge"]["pushed_by_claim"] <= before["pushed_by_claim"]:
        assert time.monotonic() < deadline, "the task did not go through the claim script"
        time.sleep(0.1)
    return event


@pytest.mark.e2e
def test_a_worker_places_the_order_of_a_task_the_claim_script_queued(gw: Gateway) -> None:
    gw.green()
    event = decide_through_the_claim_script(gw, ranking(opportunity("FUSE")))
    assert event["status"] == "SUBMITTED"
    assert [o["symbol"] for o in gw.orders() if o["client_order_id"] == event["client_order_id"]] == ["FUSE"]


@pytest.mark.e2e
@pytest.mark.parametrize("state", ["kill switch off", "market RED"])
def test_a_task_the_claim_script_queued_still_meets_the_veto(gw: Gateway, state: str) -> None:
    """The claim script only hands a task over: the worker decides it from row 2 on."""
    gw.green(enabled=state != "kill switch off")
    if state == "market RED":
        gw.r.set("key:market_state", market("RED"))
    event = decide_through_the_claim_script(gw, ranking(opportunity("VETO")))
    assert event["status"] == "BLOCKED"
    assert event["why"][0].startswith("execution disabled" if state == "kill switch off" else "market state")
    assert gw.order_posts() == 0 and gw.orders() == []


@pytest.mark.e2e
def test_tasks_the_claim_script_queued_still_meet_the_claim_and_the_cooldown(gw: Gateway) -> None:
    gw.green()
    rank = ranking(opportunity("LIMS"))
    assert decide_through_the_claim_script(gw, rank)["status"] == "SUBMITTED"
    again = decide_through_the_claim_script(gw, rank)  # the same ranking: the same execution_id
    assert (again["status"], again["why"][0].split(":")[0]) == ("SKIPPED", "duplicate")
    later = ranking(opportunity("LIMS"), rank_time=datetime.now(timezone.utc) - timedelta(seconds=5))
    other = decide_through_the_claim_script(gw, later)  # another execution_id, the same ticker
    assert (other["status"], other["why"][0].split(":")[0]) == ("SKIPPED", "cooldown")
    assert [o["symbol"] for o in gw.orders()] == ["LIMS"]


# the listener ------------------------------------------------------------------------
class Fast:
    """A FastHandOver that queues `task` for every message, or fails as told."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.pushed_ids: list[str] = []

    def prepare(self, incoming: tuple[bytes, str, object]) -> Push | None:
        if self.fail:
            raise RuntimeError("a bug while building the task")
        return Push("zero_execution", "task for " + incoming[1], entry_for(incoming[1]))

    def pushed(self, message_id: str) -> None:
        self.pushed_ids.append(message_id)


def hear_one(url: str, fast: Fast) -> list[str]:
    """A Listener with `fast` hears one message; returns what its usual handler got."""
    from bridge.listener import Listener

    handled: list[str] = []

    async def handler(batch: list[tuple[bytes, str, object]]) -> set[str]:
        handled.extend(message_id for _, message_id, _ in batch)
        return {message_id for _, message_id, _ in batch}

    async def scenario(client: aioredis.Redis) -> None:
        stop, task = await running(Listener(url, handler, fast=fast))
        await client.publish(keys.OPPORTUNITY_CHANNEL, b"one ranking")
        for _ in range(200):
            if handled or fast.pushed_ids:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task

    run(url, scenario)
    return handled


def test_a_listener_queues_a_message_heard_alone_through_the_claim_script(url: str, r: redis.Redis) -> None:
    fast = Fast()
    assert hear_one(url, fast) == []
    message_id = f"{content_hash(b'one ranking')}:1"
    assert fast.pushed_ids == [message_id]
    assert r.lrange("zero_execution", 0, -1) == [f"task for {message_id}".encode()]


def test_a_hand_over_that_cannot_be_built_takes_the_usual_path(url: str, r: redis.Redis) -> None:
    fast = Fast(fail=True)
    assert hear_one(url, fast) == [f"{content_hash(b'one ranking')}:1"]
    assert fast.pushed_ids == [] and r.llen("zero_execution") == 0
