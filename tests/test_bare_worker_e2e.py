"""A bare `celery -A zero_tasks worker` runs everything the gateway needs (issue 14, item 2).

No `-Q`: the worker consumes every queue celeryconfig declares, so an order's follow-up
(zero_audit) and the reconcile (zero_audit, sent by a beat) run beside the decisions
(zero_execution). The split into a `-Q zero_execution` and a `-Q zero_audit` worker keeps
working: between them they run the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from alpaca_paper_sim import SimServer, open_market
from tests.support.gateway import Gateway, isolated_gateway, opportunity, ranking
from tests.support.procs import CELERY, Proc, health, wait_for

pytestmark = pytest.mark.e2e

ENV = {"RECONCILE_EVERY_S": "10"}


@pytest.fixture(scope="module")
def own_sim() -> Iterator[SimServer]:
    server = SimServer(state=open_market()).start()
    yield server
    server.stop()


@pytest.fixture
def no_worker(log_dir: Path, own_sim: SimServer, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway whose test starts the workers itself."""
    own_sim.state.reset()
    with isolated_gateway(log_dir, own_sim.url, tmp_path, workers=0, **ENV) as gw:
        gw.green()
        gw.sim("POST", "/_sim/config", {"fill": "manual"})  # the order stays open: it is followed up
        yield gw


def worker(gw: Gateway, name: str, *options: str) -> Proc:
    proc = Proc(name, [CELERY, "-A", "zero_tasks", "worker", *options], gw.env, gw.log_dir)
    gw.workers.append(proc)  # stopped with the gateway
    return proc.start()


def beat(gw: Gateway, tmp: Path) -> Proc:
    proc = Proc(f"beat-{gw.api_port}", [CELERY, "-A", "zero_tasks", "beat", "-s", str(tmp / "schedule")],
                gw.env, gw.log_dir)
    gw.workers.append(proc)
    return proc.start()


def runs_everything(gw: Gateway, tmp: Path) -> None:
    """A decision, its follow-up and a reconcile, each seen where it lands."""
    wait_for(lambda: gw.workers_alive() >= 1, 60, "a worker's heartbeat")
    alerts = gw.r.pubsub(ignore_subscribe_messages=True)
    alerts.subscribe("chan:execution_alert")
    (event,) = gw.decide(ranking(opportunity("BARE")), timeout=60)
    assert event["status"] == "SUBMITTED"
    wait_for(lambda: gw.rows(execution_id=event["execution_id"])[0]["order_status"] == "new", 60,
             "the order followed up (zero_audit)")
    beat(gw, tmp)
    wait_for(lambda: any(_is_reconcile(alerts.get_message(timeout=1.0)) for _ in range(5)), 60,
             "a reconcile run (zero_audit)")
    alerts.close()
    bridge = health(gw.api_port)[1]["bridge"]
    assert bridge["enqueued"] >= 1 and bridge["pending"] == 0  # the decision came through the worker queue


def _is_reconcile(message: dict | None) -> bool:
    return bool(message and message["type"] == "message" and b'"type": "reconcile"' in message["data"])


def test_a_bare_worker_consumes_every_queue_of_the_gateway(no_worker: Gateway, tmp_path: Path) -> None:
    worker(no_worker, f"bare-{os.getpid()}")  # exactly `celery -A zero_tasks worker`
    runs_everything(no_worker, tmp_path)


def test_a_worker_per_queue_runs_the_same_between_them(no_worker: Gateway, tmp_path: Path) -> None:
    worker(no_worker, f"exec-{os.getpid()}", "-Q", "zero_execution", "-n", f"exec-{os.getpid()}@%h", "-c", "1")
    worker(no_worker, f"audit-{os.getpid()}", "-Q", "zero_audit", "-n", f"audit-{os.getpid()}@%h", "-c", "1")
    runs_everything(no_worker, tmp_path)
