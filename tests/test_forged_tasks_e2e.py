"""No path to the broker around the veto: a task on the queue carries no authority of its
own, whoever wrote it (anyone who reaches Redis; Flower's send-task API is refused by the
guard, tests/test_flower.py). Each forgery ends as one audited ERROR decision, with no
broker call, through a real bridge, worker and simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from celery import Celery

from tests.support.gateway import WORKER_KEYS, Gateway, collect, opportunity, ranking
from tests.support.procs import TEST_SIGNING_KEY, wait_for
from zero_tasks.core.intake import Message
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
                                    message_of(ranking(opportunity("IWM"))), datetime.now(UTC)))
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
    send(queue, "zero.place_order", seal(TEST_SIGNING_KEY, "zero.place_order", ticket, datetime.now(UTC)))
    event = only_forged_decision(gw, pubsub, "zero.place_order")
    reason = event["why"][0]
    assert ("not an order-worthy signal" in reason) or ("claim of" in reason), reason


def test_a_batch_s_unsealed_message_is_refused_alone_and_its_sealed_ones_decided_once(
        gw: Gateway, queue: Celery) -> None:
    """A `decide_many` task is no authority of its own: each message in it is opened as a
    `decide` would open it. The forged one (eligible IWM, unsealed) is one ERROR with no
    order; the sealed ones (an order, a refusal, and the order's message again) one
    decision each, one order in all."""
    gw.green()
    spy = seal(TEST_SIGNING_KEY, "zero.decide", message_of(ranking(opportunity("SPY")), "batch-msg:1"),
               datetime.now(UTC))
    low = seal(TEST_SIGNING_KEY, "zero.decide",
               message_of(ranking(opportunity("QQQ", probability=0.5)), "batch-msg:2"), datetime.now(UTC))
    forged = message_of(ranking(opportunity("IWM")), "batch-msg:3")
    pubsub = gw.subscribe()
    send(queue, "zero.decide_many", [spy, forged, low, spy])
    events = collect(pubsub, 3, 30, gw)
    assert gw.nothing_more(pubsub) == []
    by_ticker = {e["ticker"]: e for e in events}
    assert by_ticker["SPY"]["status"] == "SUBMITTED" and by_ticker["QQQ"]["status"] == "BLOCKED"
    (forgery,) = [e for e in events if e["execution_id"].startswith("forged:")]
    assert forgery["status"] == "ERROR" and forgery["why"][0].startswith("error: forged task zero.decide:")
    assert len(gw.wait_rows(3)) == 3
    assert gw.order_posts() == 1 and [o["symbol"] for o in gw.orders()] == ["SPY"]


@pytest.mark.parametrize("argument", [{"not": "a list"}, [], ["x"] * 201], ids=["object", "empty", "too_long"])
def test_a_decide_many_task_that_is_no_batch_is_one_error_and_places_nothing(
        gw: Gateway, queue: Celery, argument: object) -> None:
    gw.green()
    pubsub = gw.subscribe()
    send(queue, "zero.decide_many", argument)
    event = only_forged_decision(gw, pubsub, "zero.decide_many")
    assert "not a list of 1 to 200 messages" in event["why"][0]


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
    replay = seal(TEST_SIGNING_KEY, "zero.decide", message_of(rank, message_id=event["decision_id"]),
                  datetime.now(UTC))
    seen = gw.logs().count("'already decided'")
    send(queue, "zero.decide", replay)
    wait_for(lambda: gw.logs().count("'already decided'") > seen, 30, "the replayed task run by a worker")
    assert gw.nothing_more(pubsub) == []
    assert len(gw.orders()) == 1 and gw.order_posts() == 1


# --- issue 25: seals expire (finding 8), every task sealed (finding 4) --------------------

def sealed_by_the_bridge(body: dict[str, Any], hours_ago: float) -> dict[str, Any]:
    """A decide task as this code base's bridge sealed it `hours_ago` (a copy someone kept).
    Before seals carried their time, the bridge sealed the body alone (the TypeError)."""
    try:
        return seal(TEST_SIGNING_KEY, "zero.decide", body, datetime.now(UTC) - timedelta(hours=hours_ago))
    except TypeError:
        return seal(TEST_SIGNING_KEY, "zero.decide", body)  # type: ignore[call-arg]


def forget_the_day(gw: Gateway) -> None:
    """What 24 hours do to Redis: every claim, outbox entry and cooldown of a decision has
    expired (the workers' heartbeats stay)."""
    doomed = [k for k in gw.r.scan_iter("key:*") if not k.startswith(WORKER_KEYS)]
    gw.r.delete(*doomed)
    gw.keep_session()


def test_a_real_task_replayed_after_its_claims_expired_is_refused_under_a_forgery_key(
        gw: Gateway, queue: Celery) -> None:
    """The finding: a copy of a real decide task, pushed again once its message's keys had
    expired, was decided again (SKIPPED `expired`) under the SUBMITTED decision's id, and the
    audit dropped the row. Its seal has expired by then: one `forged task` ERROR, under a
    key of its own."""
    gw.green()
    pubsub = gw.subscribe()
    rank = ranking(opportunity("IWM"))
    gw.publish(rank)
    (real,) = collect(pubsub, 1, 30, gw)
    assert real["status"] == "SUBMITTED"
    gw.wait_rows(1)
    forget_the_day(gw)
    gw.green()
    old = message_of(rank, message_id=real["decision_id"])
    old["received_at"] = (datetime.now(UTC) - timedelta(hours=21)).isoformat()
    send(queue, "zero.decide", sealed_by_the_bridge(old, hours_ago=21))
    (replayed,) = collect(pubsub, 1, 30, gw)
    assert replayed["decision_id"] != real["decision_id"] and replayed["decision_id"].startswith("forged:"), replayed
    assert replayed["status"] == "ERROR" and "seal expired" in replayed["why"][0], replayed
    assert gw.nothing_more(pubsub) == []
    rows = gw.wait_rows(2)
    assert sorted(r["event_key"] for r in rows) == sorted([real["decision_id"], replayed["decision_id"]])
    assert len(gw.orders()) == 1


def test_a_hand_written_follow_up_changes_no_row_and_spends_no_budget(gw: Gateway, queue: Celery) -> None:
    """The finding: unsealed follow-ups naming a filled order's row and another order that
    was canceled wrote `canceled` on the filled order's row, and their broker lookups spent
    the whole budget. Now each is refused before it reads or writes anything."""
    gw.green()
    pubsub = gw.subscribe()
    gw.publish(ranking(opportunity("IWM")))
    (filled,) = collect(pubsub, 1, 30, gw)
    gw.sim("POST", "/_sim/config", {"fill": "manual"})
    gw.publish(ranking(opportunity("DIA")))
    (kept_open,) = collect(pubsub, 1, 30, gw)
    assert filled["status"] == kept_open["status"] == "SUBMITTED"
    headers = {"APCA-API-KEY-ID": gw.env["ALPACA_API_KEY"], "APCA-API-SECRET-KEY": gw.env["ALPACA_SECRET_KEY"]}
    requests.delete(f"{gw.sim_url}/v2/orders/{kept_open['alpaca_order_id']}", headers=headers,
                    timeout=10).raise_for_status()
    wait_for(lambda: gw.rows(event_key=filled["decision_id"])[0]["order_status"] == "filled", 30,
             "the real follow-up found the order filled")
    lookups = gw.sim("GET", "/_sim/stats")["requests"].get("GET /v2/orders:by_client_order_id", 0)
    forged = [filled["decision_id"], kept_open["client_order_id"], 0]  # the shape workers sent unsealed
    for _ in range(50):
        queue.send_task("zero.follow_order", args=forged, queue="zero_audit")
    (refused,) = collect(pubsub, 1, 30, gw)
    assert refused["status"] == "ERROR" and "forged task zero.follow_order" in refused["why"][0], refused
    wait_for(lambda: gw.r.llen("zero_audit") == 0, 30, "every copy taken")
    assert gw.nothing_more(pubsub) == []
    assert gw.rows(event_key=filled["decision_id"])[0]["order_status"] == "filled"
    now_lookups = gw.sim("GET", "/_sim/stats")["requests"].get("GET /v2/orders:by_client_order_id", 0)
    assert now_lookups - lookups < 5, now_lookups - lookups  # the real chain of DIA at most
