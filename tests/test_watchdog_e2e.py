"""A worker that takes no more work exits for its supervisor (zero_tasks/worker/watchdog.py).

Each fault is real, on a real worker: a pool process stopped (SIGSTOP) under a warm
shutdown, which then never ends; a consumer cancelled on one of its queues; the Redis broker
stopped for longer than the watchdog's limit. The first two end with the worker gone (exit
70), counted out of /health, and the message of that moment decided once by the worker its
supervisor starts again; the third must not end the worker at all.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from alpaca_paper_sim import SimServer
from tests.support.gateway import Gateway, collect, isolated_gateway, opportunity, ranking
from tests.support.procs import RABBITMQ_URL, Proc, children_of, ended, purge_rabbitmq, rabbitmq_available, wait_for
from zero_tasks.core import keys
from zero_tasks.worker.watchdog import EXIT_CODE

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

# The watchdog's limit, short: a stuck shutdown ends 6 + 10 s after it began, a deaf consumer
# 10 s after the broker first took the question it did not answer.
FAST = {"WORKER_WATCHDOG_S": "10", "TASK_TIME_LIMIT_S": "6", "VISIBILITY_TIMEOUT_S": "10",
        "BROKER_RETRY_BACKOFF_MAX_S": "1"}


@pytest.fixture(params=["redis", "rabbitmq"])
def watched(request: pytest.FixtureRequest, log_dir: Path, sim: SimServer,
            tmp_path: Path) -> Iterator[Gateway]:
    """One worker, one bridge, on a Redis of its own; Celery broker Redis or RabbitMQ."""
    env = dict(FAST)
    if request.param == "rabbitmq":
        if not rabbitmq_available():
            pytest.skip(f"RabbitMQ not reachable at {RABBITMQ_URL} (.ci/run starts it)")
        purge_rabbitmq()
        env["CELERY_BROKER_URL"] = RABBITMQ_URL
    with isolated_gateway(log_dir, sim.url, tmp_path, **env) as gw:
        gw.reset()
        yield gw


def worker_name(gw: Gateway) -> str:
    (name,) = gw.r.zrange(keys.WORKERS_KEY, 0, -1)
    return name.decode()


def exit_code(worker: Proc, timeout: float) -> int:
    assert worker.popen is not None
    wait_for(lambda: not worker.alive(), timeout, "the worker's exit")
    return worker.popen.returncode


@pytest.mark.guarantee
def test_a_worker_whose_shutdown_hangs_leaves_health_at_once_and_exits_for_its_supervisor(
        watched: Gateway) -> None:
    worker = watched.workers[0]
    (child,) = children_of(worker.pid)
    os.kill(child, signal.SIGSTOP)  # a pool process that will never finish: the warm shutdown waits on it
    os.kill(worker.pid, signal.SIGTERM)
    # counted out while it still hangs (before, its heartbeat went on beating for as long as it hung)
    wait_for(lambda: watched.workers_alive() == 0, 15, "the hung worker counted out of /health")
    assert worker.alive(), "the worker ended before its shutdown was judged stuck"
    assert exit_code(worker, 60) == EXIT_CODE
    wait_for(lambda: ended(child), 10, "its stopped pool process killed")
    assert "takes no more work: its shutdown has not finished" in worker.output()
    pubsub = watched.subscribe()
    watched.green()
    watched.restart(worker)  # its supervisor
    watched.wait_ready()
    (event,) = watched.decide(ranking(opportunity("SPY")))
    assert event["status"] == "SUBMITTED"
    watched.settle()
    assert len(collect(pubsub, 1, 5, watched)) == 1 and watched.nothing_more(pubsub) == []
    assert len(watched.orders()) == 1


@pytest.mark.guarantee
def test_a_worker_that_no_longer_consumes_its_queue_exits_and_its_message_is_decided_once(
        watched: Gateway) -> None:
    worker = watched.workers[0]
    app = Celery(broker=watched.celery_broker_url())
    app.control.cancel_consumer("zero_execution", destination=[worker_name(watched)], reply=True, timeout=5)
    watched.green()
    pubsub = watched.subscribe()
    watched.publish(ranking(opportunity("SPY")))  # waits on the queue nobody consumes
    assert exit_code(worker, 60) == EXIT_CODE
    assert "takes no more work: its consumer has not taken its queues" in worker.output()
    assert watched.workers_alive() == 0 and watched.row_count() == 0
    watched.restart(worker)  # its supervisor
    (event,) = collect(pubsub, 1, 60, watched)
    assert event["status"] == "SUBMITTED"
    watched.settle()
    assert watched.nothing_more(pubsub) == []
    assert len(watched.orders()) == 1 and watched.row_count() == 1


@pytest.fixture
def outlasting(log_dir: Path, sim: SimServer, tmp_path: Path) -> Iterator[Gateway]:
    """On the Redis broker, with a watchdog limit (20 s) shorter than the outage the test makes."""
    with isolated_gateway(log_dir, sim.url, tmp_path, **{**FAST, "WORKER_WATCHDOG_S": "20"}) as gw:
        gw.reset()
        yield gw


@pytest.mark.guarantee
def test_a_broker_outage_longer_than_the_watchdog_limit_does_not_end_the_worker(outlasting: Gateway) -> None:
    worker = outlasting.workers[0]
    pid = worker.pid
    outlasting.redis_server.stop()  # the Celery broker, the claims and the heartbeats: 25 s away
    time.sleep(25)
    outlasting.redis_server.proc.start()
    wait_for(outlasting.r.ping, 10, "redis back")
    outlasting.wait_ready()
    outlasting.keep_session()
    outlasting.green()
    (event,) = outlasting.decide(ranking(opportunity("SPY")), timeout=60)
    assert event["status"] == "SUBMITTED"
    # the consumer reconnects within its own retry interval, inside the limit: no exit then or after
    time.sleep(25)
    assert worker.alive() and worker.pid == pid
    assert "takes no more work" not in worker.output()
