"""The guarantees on several hosts: partitions and skewed clocks between real namespaces.

Redis, PostgreSQL and the broker simulator on hosts of their own, two worker hosts and two
bridge hosts (tests/support/hosts.py, hosts_gateway.py); Celery on the Redis host or on
RabbitMQ (reached through a proxy on the bridge address). A partition is a link taken
down, or a blackhole route on one host for one other host's address. Every scenario ends
once the gateway is quiet (queues empty, no task active, reserved or scheduled, audit
stream written, in-flight ledger empty) with the counts: events on chan:trade_update,
rows in execution_log, orders at the simulator.

`make test-hosts` runs this file (root needed); the default `make test` leaves it out.
Times from a cut to the decision are printed (pytest -s) and recorded in docs/deploy.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from tests.support.gateway import collect, opportunity, quiet, ranking
from tests.support.hosts import (
    BRIDGE_A,
    BRIDGE_B,
    BROKER,
    REDIS,
    ROOT_ADDR,
    WORKER_A,
    WORKER_B,
    Topology,
    can_make_hosts,
)
from tests.support.hosts_gateway import HostPostgres, HostRedis, HostsGateway, simulator
from tests.support.procs import wait_for
from tests.support.tcp_forward import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.hosts]

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
PROXY_PORT = 35672  # on ROOT_ADDR, to RabbitMQ on 127.0.0.1:5672
FAST_REDELIVERY = {"VISIBILITY_TIMEOUT_S": "10", "TASK_TIME_LIMIT_S": "6", "BROKER_RETRY_BACKOFF_MAX_S": "1"}


def report(what: str, seconds: float) -> None:
    print(f"\n[hosts] {what}: {seconds:.1f} s")


def via_proxy(url: str) -> str:
    return url.replace("127.0.0.1:5672", f"{ROOT_ADDR}:{PROXY_PORT}", 1)


def rabbitmq_available() -> bool:
    try:
        with Connection(RABBITMQ_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    why = can_make_hosts()
    if why:
        pytest.skip(why)
    topo = Topology().up()
    yield topo
    topo.down()


@pytest.fixture(scope="module")
def services(topology: Topology, log_dir: Path) -> Iterator[dict[str, Any]]:
    """Redis, PostgreSQL and the simulator on their hosts; the RabbitMQ proxy."""
    redis_host = HostRedis(topology, log_dir).start()
    postgres = HostPostgres(topology, log_dir).start()
    sim = simulator(topology, log_dir).start()
    proxy = TcpProxy((ROOT_ADDR, PROXY_PORT), ("127.0.0.1", 5672)).start()
    try:
        yield {"redis": redis_host, "postgres": postgres, "sim": sim, "proxy": proxy}
    finally:
        proxy.stop()
        sim.stop()
        postgres.stop()
        redis_host.stop()


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def spread(request: pytest.FixtureRequest, topology: Topology, services: dict[str, Any],
           log_dir: Path) -> Iterator[HostsGateway]:
    broker_url = None
    if request.param == "rabbitmq":
        if not rabbitmq_available():
            pytest.skip(f"RabbitMQ not reachable at {RABBITMQ_URL} (.ci/run starts it)")
        broker_url = via_proxy(RABBITMQ_URL)
    gw = HostsGateway(topology, log_dir, services["redis"], services["postgres"].url, broker_url,
                      **FAST_REDELIVERY)
    gw.broker_name = request.param  # type: ignore[attr-defined]
    wait_for(lambda: gw.sim("GET", "/_sim/stats") is not None, 30, "simulator on the broker host")
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def hg(spread: HostsGateway) -> Iterator[HostsGateway]:
    spread.revive()
    yield spread
    for host in (WORKER_A, WORKER_B, BRIDGE_A, BRIDGE_B, REDIS, BROKER):
        spread.topo.mend(host)
        for other in (REDIS, BROKER):
            spread.topo.unblock(host, other)
        spread.topo.unblock(host, ROOT_ADDR)


def counts(gw: HostsGateway, pubsub: Any, expected_events: int) -> tuple[int, int, int]:
    """(events, rows, orders) once the gateway is quiet; a second event would be seen."""
    gw.wait_quiet()
    events = collect(pubsub, expected_events, 30, gw) if expected_events else []
    events += quiet(pubsub, 2.0)
    return len(events), gw.row_count(), len(gw.orders())


@pytest.mark.guarantee
def test_a_ranking_is_decided_once_across_hosts(hg: HostsGateway) -> None:
    hg.green()
    pubsub = hg.subscribe()
    hg.publish(ranking(opportunity("SPY")))
    assert counts(hg, pubsub, 1) == (1, 1, 1)
