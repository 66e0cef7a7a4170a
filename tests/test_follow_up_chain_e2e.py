"""One follow-up chain per order, one reconcile per period (issue 14, item 1).

A countdown longer than the Redis transport's visibility timeout is put back on the queue
by kombu while a worker still holds it, and each copy schedules the next step. Here the
visibility timeout is 5 s (the tightest the settings allow with a 2 s time limit), so an
order kept open at the simulator (its `manual` fill) lives through several of them; its
follow-ups are counted where they land, as lookups at the simulator's
`GET /v2/orders:by_client_order_id` (a simulator of this module's own: no other gateway's
follow-ups reach it). Two Celery beats started by mistake send the reconcile twice per
period; it runs once per period.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from alpaca_paper_sim import SimServer, open_market
from tests.support.gateway import Gateway, drain, isolated_gateway, opportunity, ranking
from tests.support.procs import (
    CELERY,
    RABBITMQ_URL,
    TEST_SIGNING_KEY,
    Proc,
    purge_rabbitmq,
    rabbitmq_available,
    wait_for,
)
from zero_tasks.core.task_auth import seal

pytestmark = pytest.mark.e2e

SHORT = {"VISIBILITY_TIMEOUT_S": "5", "TASK_TIME_LIMIT_S": "2", "BROKER_RETRY_BACKOFF_MAX_S": "1",
         "RECONCILE_EVERY_S": "10"}
LOOKUP = "GET /v2/orders:by_client_order_id"
DELAYED = {"zero.follow_order", "zero.hop", "zero.place_order", "zero.reconcile"}


@pytest.fixture(scope="module")
def own_sim() -> Iterator[SimServer]:
    server = SimServer(state=open_market()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def short_gw(log_dir: Path, own_sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with isolated_gateway(log_dir, own_sim.url, tmp_path_factory.mktemp("chain"), workers=2, **SHORT) as gw:
        yield gw


@pytest.fixture
def short(short_gw: Gateway) -> Gateway:
    short_gw.revive()
    wait_for(lambda: pending(short_gw.r) == 0, 60, "the previous test's delayed tasks gone")
    short_gw.green()
    short_gw.sim("POST", "/_sim/config", {"fill": "manual"})  # orders stay open, as after the close
    return short_gw


def lookups(gw: Gateway) -> int:
    return gw.sim("GET", "/_sim/stats")["requests"].get(LOOKUP, 0)


def pending(r: redis.Redis) -> int:
    """Delayed tasks anywhere in the Celery broker: queued, or held unacked by a worker."""
    bodies = [*r.lrange("zero_audit", 0, -1), *r.lrange("zero_execution", 0, -1), *r.hvals("unacked")]
    return sum(1 for body in bodies if _task_name(body) in DELAYED)


def _task_name(body: bytes) -> str | None:
    data = json.loads(body)
    message = data[0] if isinstance(data, list) else data
    return (message.get("headers") or {}).get("task")


def client(gw: Gateway) -> Celery:
    return Celery("chain-test", broker=f"redis://127.0.0.1:{gw.redis_server.port}/0")


def submitted(gw: Gateway, ticker: str) -> dict[str, Any]:
    (event,) = gw.decide(ranking(opportunity(ticker)))
    assert event["status"] == "SUBMITTED", event
    return event


def test_an_order_open_past_several_visibility_timeouts_is_followed_by_one_chain(short: Gateway) -> None:
    """Steps 0 to 4 are due 2, 4, 8, 16 and 32 s after the order: the waits of 8 and 16 s
    before steps 3 and 4 are longer than the 5 s visibility timeout, the last one three
    times over. Filled after step 3, the order is looked up exactly once more (step 4
    finds it filled) and the chain ends there."""
    event = submitted(short, "HOLD")
    wait_for(lambda: lookups(short) >= 4, 60, "follow-up steps 0 to 3")
    before_fill = lookups(short)  # step 4 is 16 s away: nothing can come in between
    short.sim("POST", f"/_sim/orders/{event['alpaca_order_id']}/fill")
    wait_for(lambda: short.rows(execution_id=event["execution_id"])[0]["order_status"] == "filled", 60,
             "step 4 finds the order filled")
    wait_for(lambda: pending(short.r) == 0, 60, "no delayed task left: the chain ended")
    assert before_fill == 4
    assert lookups(short) == before_fill + 1
    (row,) = short.rows(execution_id=event["execution_id"])  # the fill, from the lookup that saw it
    filled = next(o for o in short.orders() if o["id"] == event["alpaca_order_id"])
    assert row["filled_avg_price"] == float(filled["filled_avg_price"]) and row["filled_at"] is not None


def test_two_copies_of_one_follow_up_step_delivered_at_once_look_up_once(short: Gateway) -> None:
    event = submitted(short, "TWIN")
    wait_for(lambda: lookups(short) >= 1, 30, "follow-up step 0")
    short.sim("POST", f"/_sim/orders/{event['alpaca_order_id']}/fill")
    wait_for(lambda: short.rows(execution_id=event["execution_id"])[0]["order_status"] == "filled", 30, "filled")
    wait_for(lambda: pending(short.r) == 0, 60, "the chain ended")
    before = lookups(short)
    (row,) = short.rows(execution_id=event["execution_id"])
    app = client(short)
    body = {"event_key": row["event_key"], "client_order_id": row["client_order_id"], "tries": 7}
    step = [seal(TEST_SIGNING_KEY, "zero.follow_order", body, datetime.now(UTC))]
    step_id = f"follow:{row['event_key']}:7"
    for _ in range(2):  # one on each worker, at the same instant
        app.send_task("zero.follow_order", args=step, task_id=step_id, queue="zero_audit")
    wait_for(lambda: pending(short.r) == 0, 30, "both copies taken")
    app.send_task("zero.follow_order", args=step, task_id=step_id, queue="zero_audit")
    wait_for(lambda: pending(short.r) == 0, 30, "a late copy taken")
    assert lookups(short) == before + 1


def test_the_copy_of_a_step_whose_worker_died_still_runs(short: Gateway) -> None:
    """Step 0's lookup is held at the broker and both workers are SIGKILLed meanwhile: the
    step's claim has expired by the time kombu gives its message back, so the copy looks
    the order up and the chain goes on."""
    short.sim("POST", "/_sim/fault", {"mode": "slow", "count": 1, "method": "GET",
                                      "path": "/v2/orders:by_client_order_id", "delay": 20.0})
    event = submitted(short, "DIED")
    before = lookups(short)
    wait_for(lambda: lookups(short) > before, 30, "step 0's lookup held at the broker")
    for worker in short.workers:
        worker.kill()
    for worker in short.workers:
        short.restart(worker)
    wait_for(lambda: short.rows(execution_id=event["execution_id"])[0]["order_status"] == "new", 60,
             "the copy of step 0 looked the order up")
    short.sim("POST", f"/_sim/orders/{event['alpaca_order_id']}/fill")
    wait_for(lambda: short.rows(execution_id=event["execution_id"])[0]["order_status"] == "filled", 60, "filled")


def beat(gw: Gateway, name: str, tmp: Path) -> Proc:
    return Proc(name, [CELERY, "-A", "zero_tasks", "beat", "-s", str(tmp / f"{name}-schedule"), "-l", "INFO"],
                gw.env, gw.log_dir)


def sends(proc: Proc) -> int:
    return len(re.findall(r"Sending due task reconcile-last-24h", proc.output()))


def test_two_beats_started_by_mistake_reconcile_once_per_period(short: Gateway, tmp_path: Path) -> None:
    alerts = short.r.pubsub(ignore_subscribe_messages=True)
    alerts.subscribe("chan:execution_alert")
    beats = [beat(short, f"beat{i}-{os.getpid()}", tmp_path).start() for i in range(2)]
    try:
        wait_for(lambda: min(sends(b) for b in beats) >= 3, 90, "three sends from each beat")
    finally:
        for b in beats:
            b.stop()
    wait_for(lambda: pending(short.r) == 0, 30, "every reconcile sent was taken")
    sent = sum(sends(b) for b in beats)
    short.settle()  # every reconcile run and its alert done
    runs = [e for e in drain(alerts) if e.get("type") == "reconcile"]  # all heard since subscribing
    alerts.close()
    periods = [math.floor(_epoch(e["at"]) / int(SHORT["RECONCILE_EVERY_S"])) for e in runs]
    assert runs, "no reconcile ran"
    assert len(periods) == len(set(periods)), f"two runs in one period: {periods}"
    assert len(runs) < sent


def _epoch(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at).timestamp()


@pytest.fixture
def on_rabbitmq(log_dir: Path, own_sim: SimServer, tmp_path: Path) -> Iterator[Gateway]:
    """Celery's broker on RabbitMQ, so that follow-up steps are delivered while Redis is away."""
    if not rabbitmq_available():
        pytest.skip(f"RabbitMQ not reachable at {RABBITMQ_URL} (.ci/run starts it)")
    purge_rabbitmq()
    with isolated_gateway(log_dir, own_sim.url, tmp_path, CELERY_BROKER_URL=RABBITMQ_URL, VISIBILITY_TIMEOUT_S="10",
                          TASK_TIME_LIMIT_S="6", BROKER_RETRY_BACKOFF_MAX_S="1") as gw:
        gw.reset()
        gw.green()
        gw.sim("POST", "/_sim/config", {"fill": "manual"})
        yield gw


def test_a_follow_up_step_that_meets_redis_away_runs_once_it_is_back_and_the_chain_goes_on(
        on_rabbitmq: Gateway) -> None:
    """Redis is stopped just after the order, for 10 s: step 0 (due 2 s after it) cannot take
    its claim. It goes back on the queue until Redis is back, then runs; the chain goes on and
    writes the fill (before, the step raised and its chain ended there)."""
    gw = on_rabbitmq
    event = submitted(gw, "AWAY")
    (row,) = gw.wait_rows(1)
    gw.redis_server.stop()
    time.sleep(10)
    gw.redis_server.proc.start()
    wait_for(gw.r.ping, 10, "redis back")
    assert f"step follow:{row['event_key']}:0: redis unavailable" in gw.workers[0].output()
    gw.sim("POST", f"/_sim/orders/{event['alpaca_order_id']}/fill")
    wait_for(lambda: gw.rows(execution_id=event["execution_id"])[0]["order_status"] == "filled", 60,
             "a later step finds the order filled")
