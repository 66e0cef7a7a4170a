"""No path to the broker around the veto: a task on the queue carries no authority of its
own, whoever wrote it (anyone who reaches Redis; Flower's send-task API is refused by the
guard, tests/test_flower.py). Each forgery ends as one audited ERROR decision, with no
broker call, through a real bridge, worker and simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery

from tests.support.gateway import Gateway, collect, opportunity, ranking
from tests.support.procs import TEST_SIGNING_KEY, wait_for
from zero_tasks.core.message import Message
from zero_tasks.core.task_auth import seal

pytestmark = [pytest.mark.e2e, pytest.mark.guarantee]


@pytest.fixture
def queue(gw: Gateway) -> Iterator[Celery]:
    """Writes tasks straight onto the worker queue, as anyone who reaches Redis can."""
    app = Celery("forger", broker=f"redis://127.0.0.1:{gw.redis_server.port}/0")
    yield app
    app.close()


def message_of(rank: dict[str, Any], message_id: str = "forged-msg:1") -> dict[str, Any]:
    import json

    return Message(message_id, datetime.now(UTC), json.dumps(rank)).to_task()


def old_short_qqq() -> dict[str, Any]:
    """A 3-day-old SHORT ranking at probability 0.01: nothing the veto would ever let through."""
    return ranking(opportunity("QQQ", probability=0.01, direction="SHORT"),
                   rank_time=datetime.now(UTC) - timedelta(days=3))


def send(app: Celery, task: str, argument: object) -> None:
    app.send_task(task, args=[argument], queue="zero_execution")


def only_forged_decision(gw: Gateway, pubsub: Any, task: str) -> dict[str, Any]:
    (event,) = collect(pubsub, 1, 30, gw)
    assert event["status"] == "ERROR" and event["why"][0].startswith(f"error: forged task {task}"), event
    assert event["execution_id"].startswith("forged:")
    assert gw.nothing_more(pubsub) == []
    (row,) = gw.wait_rows(1)
    assert row["status"] == "ERROR" and row["event_key"] == event["decision_id"]
    assert gw.order_posts() == 0 and gw.orders() == []
    return event


def test_an_unsealed_order_task_naming_another_ticker_places_nothing(gw: Gateway, queue: Celery) -> None:
    """The reported attack: a hand-made ticket for IWM around a payload for QQQ, budgets 'prepaid'."""
    gw.green()
    ticket = {"message": message_of(old_short_qqq()), "execution_id": "IWM:H30:2026-11-24T14:30:00",
              "ticker": "IWM", "reentered": False, "broker_attempt": 0, "waited_s": 0.0, "in_decide": True,
              "prepaid": 3}
    pubsub = gw.subscribe()
    send(queue, "zero.place_order", ticket)
    event = only_forged_decision(gw, pubsub, "zero.place_order")
    assert "seal" in event["why"][0]


def test_an_unsealed_decide_task_with_an_eligible_ranking_places_nothing(gw: Gateway, queue: Celery) -> None:
    gw.green()
    pubsub = gw.subscribe()
    send(queue, "zero.decide", message_of(ranking(opportunity("IWM"))))
    only_forged_decision(gw, pubsub, "zero.decide")


def test_a_task_sealed_with_another_key_places_nothing(gw: Gateway, queue: Celery) -> None:
    gw.green()
    pubsub = gw.subscribe()
    send(queue, "zero.decide", seal("not-the-gateways-key-" + "x" * 20, "zero.decide",
                                    message_of(ranking(opportunity("IWM")))))
    only_forged_decision(gw, pubsub, "zero.decide")


@pytest.mark.parametrize("rank", [old_short_qqq(), ranking(opportunity("IWM"))],
                         ids=["vetoed_payload", "eligible_payload"])
def test_a_sealed_order_task_for_a_message_that_never_passed_the_table_places_nothing(
        gw: Gateway, queue: Celery, rank: dict[str, Any]) -> None:
    """Even with the key (a leaked worker environment), an order task must hold its own
    message's claim, cooldown reservation and day's slot; the ticker, execution_id and
    budgets named by the task are ignored."""
    gw.green()
    ticket = {"message": message_of(rank), "ticker": "SPY", "execution_id": "SPY:H30:x", "prepaid": 3,
              "in_decide": True, "reentered": False, "broker_attempt": 0, "waited_s": 0.0}
    pubsub = gw.subscribe()
    send(queue, "zero.place_order", seal(TEST_SIGNING_KEY, "zero.place_order", ticket))
    event = only_forged_decision(gw, pubsub, "zero.place_order")
    reason = event["why"][0]
    assert ("not an order-worthy signal" in reason) or ("claim of" in reason), reason


def test_the_same_forgery_sent_twice_is_one_decision(gw: Gateway, queue: Celery) -> None:
    gw.green()
    pubsub = gw.subscribe()
    forged = message_of(ranking(opportunity("IWM")))
    send(queue, "zero.decide", forged)
    send(queue, "zero.decide", forged)
    only_forged_decision(gw, pubsub, "zero.decide")


def test_a_forgery_never_takes_the_place_of_a_real_messages_decision(gw: Gateway, queue: Celery) -> None:
    """A forged task naming a real message's id is decided under a key of its own; the
    real message is still decided (and ordered) once."""
    gw.green()
    pubsub = gw.subscribe()
    rank = ranking(opportunity("IWM"))
    send(queue, "zero.decide", message_of(rank, message_id="will-collide"))
    (forged,) = collect(pubsub, 1, 30, gw)
    assert forged["status"] == "ERROR"
    gw.publish(rank)
    (real,) = collect(pubsub, 1, 30, gw)
    assert real["status"] == "SUBMITTED" and real["decision_id"] != forged["decision_id"]
    assert len(gw.orders()) == 1


def test_a_real_decide_task_replayed_onto_the_queue_is_not_decided_again(gw: Gateway, queue: Celery) -> None:
    """Someone with Redis access pushes a genuine, sealed task again (a copy of one the
    bridge queued): the message is already decided, so nothing new is published or ordered."""
    gw.green()
    pubsub = gw.subscribe()
    rank = ranking(opportunity("IWM"))
    gw.publish(rank)
    (event,) = collect(pubsub, 1, 30, gw)
    assert event["status"] == "SUBMITTED"
    replay = seal(TEST_SIGNING_KEY, "zero.decide", message_of(rank, message_id=event["decision_id"]))
    seen = gw.logs().count("'already decided'")
    send(queue, "zero.decide", replay)
    wait_for(lambda: gw.logs().count("'already decided'") > seen, 30, "the replayed task run by a worker")
    assert gw.nothing_more(pubsub) == []
    assert len(gw.orders()) == 1 and gw.order_posts() == 1
