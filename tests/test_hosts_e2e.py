"""The guarantees on several hosts: partitions and skewed clocks between real namespaces.

Redis, PostgreSQL and the broker simulator on hosts of their own, two worker hosts and two
bridge hosts (tests/support/hosts.py, hosts_gateway.py); Celery on the Redis host or on
RabbitMQ (reached through a proxy on the bridge address). A partition is a link taken
down, or a blackhole route on one host for one other host's address. Every scenario ends
once the gateway is quiet (the single-host suite's probes, tests/support/quiescence.py,
reached on the hosts' addresses, with every order's status follow-up finished) with the
counts: events on chan:trade_update, rows in execution_log, orders at the simulator. While
a host is still cut off nothing is settled (a live worker that cannot answer is pending),
so "exactly" is counted once it is back.

`make test-hosts` runs this file (root needed), its two halves side by side
(scripts/test_hosts.py); the default `make test` leaves it out. Times from a cut to the
decision are printed (`make test-hosts ARGS=-s`) and recorded in docs/deploy.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery
from sqlalchemy import select

from tests.support.gateway import collect, drain, opportunity, ranking
from tests.support.hosts import (
    BRIDGE_A,
    BRIDGE_B,
    BROKER,
    REDIS,
    ROOT_ADDR,
    WORKER_A,
    WORKER_B,
    Host,
    Topology,
    can_make_hosts,
    faketime,
)
from tests.support.hosts_gateway import QUEUES, HostPostgres, HostRedis, HostsGateway, simulator
from tests.support.lifecycle import steps_taken
from tests.support.procs import RABBITMQ_URL, TEST_SIGNING_KEY, Proc, purge_rabbitmq, rabbitmq_available, wait_for
from tests.support.tcp_forward import TcpProxy
from zero_tasks.adapters import lifecycle_store
from zero_tasks.adapters.audit import execution_outcome
from zero_tasks.core import keys
from zero_tasks.core.contract import exit_client_order_id, protect_client_order_id
from zero_tasks.worker.watchdog import EXIT_CODE as WATCHDOG_EXIT

pytestmark = [pytest.mark.e2e, pytest.mark.hosts]

PROXY_PORT = 35672  # on ROOT_ADDR, to RabbitMQ on 127.0.0.1:5672
# HANDOVER_RESCUE_AFTER_S: the least these settings allow (it must outlast the visibility
# timeout, the retries and the rate-limit wait: 42 s). A task Celery loses is then queued
# again by a bridge within a scenario's wait, and `counts` says so.
# WORKER_WATCHDOG_S: a worker left taking nothing exits within a scenario's wait; longer
# than a consumer takes to reconnect after the longest cut (its retries every 30 s at most).
FAST_REDELIVERY = {"VISIBILITY_TIMEOUT_S": "10", "TASK_TIME_LIMIT_S": "6", "BROKER_RETRY_BACKOFF_MAX_S": "1",
                   "BROKER_HEARTBEAT_S": "5", "HANDOVER_RESCUE_AFTER_S": "45", "WORKER_WATCHDOG_S": "60"}
# The position lifecycle's pace where a beat runs it (only the exit scenario starts one).
FAST_LIFECYCLE = {"LIFECYCLE_TICK_S": "1", "LIFECYCLE_LOOK_EVERY_S": "2"}


def report(what: str, seconds: float) -> None:
    print(f"\n[hosts] {what}: {seconds:.1f} s")


def via_proxy(url: str) -> str:
    return url.replace("127.0.0.1:5672", f"{ROOT_ADDR}:{PROXY_PORT}", 1)


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
    # Each half starts as a new deployment: an empty Redis host, and on RabbitMQ empty queues
    # (make test ran on the same vhost: a follow-up hop it left, held by a worker here until
    # its ETA, would keep this gateway from ever being quiet).
    services["redis"].client().flushall()
    if broker_url:
        purge_rabbitmq()
    gw = HostsGateway(topology, log_dir, services["redis"], services["postgres"].url, broker_url,
                      **FAST_REDELIVERY, **FAST_LIFECYCLE)
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


def decided(gw: HostsGateway, pubsub: Any, count: int, timeout: float) -> list[dict[str, Any]]:
    """The first `count` events, with the gateway's state printed when they do not come.
    Nothing is settled here: a host may still be cut off (a worker that cannot answer is
    pending, not quiet), so "exactly" is counted once it is back (`counts`)."""
    try:
        return collect(pubsub, count, timeout)
    except AssertionError:
        print(f"\n[hosts] no decision in {timeout} s: {gw.diagnosis()}")
        raise


def rescued_by(gw: HostsGateway, host: Host) -> int | str:
    """The messages a bridge has queued again since it started (its /health)."""
    try:
        return int(gw.health_of(host)[1]["bridge"]["rescued"])
    except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
        return type(exc).__name__


def counts(gw: HostsGateway, pubsub: Any, expected_events: int) -> tuple[int, int, int]:
    """(events, rows, orders) once the gateway is quiet; a second event would be seen."""
    gw.settle()
    events = collect(pubsub, expected_events, 30, gw) if expected_events else []
    events += drain(pubsub)  # everything published before the gateway went quiet
    if len(events) > expected_events:
        print(f"\n[hosts] unexpected events: {events[expected_events:]}\nrows: {gw.rows()}")
    rescued = {host.name: rescued_by(gw, host) for host in gw.BRIDGE_HOSTS}
    if any(rescued.values()):  # decided all the same, but a task went missing on the way
        print(f"\n[hosts] queued again by the hand-over ledger so far (tasks lost): {rescued}")
    return len(events), gw.row_count(), len(gw.orders())


@pytest.mark.guarantee
def test_a_ranking_is_decided_once_across_hosts(hg: HostsGateway) -> None:
    hg.green()
    pubsub = hg.subscribe()
    hg.publish(ranking(opportunity("SPY")))
    assert counts(hg, pubsub, 1) == (1, 1, 1)


def at_worker_a_only(hg: HostsGateway, **env: str) -> None:
    """Worker B stopped, worker A (re)started with `env`: the next task is A's."""
    hg.worker(WORKER_B).stop()
    hg.restart_with(hg.worker(WORKER_A), **env)
    hg.wait_ready()


# The 5-minute absence outlasts the suite's 300 s pytest-timeout: it has room of its own.
# Each absence its own ticker: a write the cut-off worker gave up on (its cooldown confirm)
# can still be in its kernel's send queue, and reach Redis when the link is back, after the
# next test's clean slate, where it would put the same ticker in cooldown.
AWAY = [pytest.param(30, "SPY", id="back_after_30s"),
        pytest.param(300, "VTI", id="back_after_5min", marks=pytest.mark.timeout(600))]


@pytest.mark.guarantee
@pytest.mark.parametrize(("away_s", "ticker"), AWAY)
def test_worker_host_cut_off_from_redis_after_the_broker_accepted_gives_one_order(hg: HostsGateway,
                                                                                   tmp_path: Path,
                                                                                   away_s: int, ticker: str) -> None:
    """Worker A holds its order (accepted by the broker) when its host loses Redis, before
    the decision is kept; worker B takes the task over once it is safe (visibility timeout
    on Redis; on RabbitMQ when A's task comes back to the queue) and finds the order by its
    client_order_id; A comes back 30 s or 5 minutes later (long past B's decision and many
    visibility timeouts), its copy in hand. One order, one event, one row."""
    hg.green()
    marker = tmp_path / "held"
    at_worker_a_only(hg, ZERO_FAILPOINTS=f"after_submit:{marker}:pause")
    pubsub = hg.subscribe()
    hg.publish(ranking(opportunity(ticker)))
    try:
        wait_for(marker.exists, 30, "worker A holding an accepted order")
        assert len(hg.orders()) == 1 and hg.rows() == []
        hg.topo.block(WORKER_A, REDIS)
        cut_at = time.monotonic()
    finally:
        Path(f"{marker}.go").touch()  # A goes on, towards a Redis it cannot reach
    hg.worker(WORKER_B).start()
    (event,) = decided(hg, pubsub, 1, 120)  # B's, or A's once back (RabbitMQ: A still holds the task)
    report(f"worker host cut off from Redis after accept, decided, broker={hg.broker_name}", time.monotonic() - cut_at)
    assert event["status"] == "SUBMITTED"
    time.sleep(max(0.0, away_s - (time.monotonic() - cut_at)))
    hg.topo.unblock(WORKER_A, REDIS)  # A comes back, its copy still in hand
    assert counts(hg, pubsub, 0) == (0, 1, 1)
    assert hg.order_posts() == 1


@pytest.mark.guarantee
def test_worker_host_cut_off_holding_a_task_the_other_takes_it_and_no_order_twice(hg: HostsGateway,
                                                                                tmp_path: Path) -> None:
    """Worker A has taken a task (nothing decided yet) when its host is cut off from
    everything; B takes it over once it is safe (Redis: the visibility timeout; RabbitMQ:
    when the broker has missed A's heartbeats, BROKER_HEARTBEAT_S) and decides it; A comes
    back and goes on with its copy: nothing more is placed or announced."""
    hg.green()
    marker = tmp_path / "held"
    at_worker_a_only(hg, ZERO_FAILPOINTS=f"decide_start:{marker}:pause")
    try:
        pubsub = hg.subscribe()
        hg.publish(ranking(opportunity("QQQ")))
        wait_for(marker.exists, 30, "worker A holding the task")
        hg.topo.cut(WORKER_A)
        cut_at = time.monotonic()
        hg.worker(WORKER_B).start()
        (event,) = decided(hg, pubsub, 1, 100)  # within the ranking's 120 s age
        report(f"worker host cut off holding a task, taken over, broker={hg.broker_name}", time.monotonic() - cut_at)
        assert event["status"] == "SUBMITTED"
        assert len(hg.orders()) == 1
        hg.topo.mend(WORKER_A)
    finally:
        Path(f"{marker}.go").touch()  # A's copy goes on
    wait_for(lambda: hg.workers_alive() == 2, 60, "worker A beating again")
    assert counts(hg, pubsub, 0) == (0, 1, 1)
    assert hg.order_posts() == 1


@pytest.mark.guarantee
def test_bridge_host_cut_off_rankings_meanwhile_decided_once(hg: HostsGateway) -> None:
    """Bridge A's host cut off; rankings published meanwhile are decided (by bridge B), and
    not again when A comes back (its subscription, its catch-up)."""
    hg.green()
    pubsub = hg.subscribe()
    hg.topo.cut(BRIDGE_A)
    cut_at = time.monotonic()
    tickers = ["AAPL", "MSFT", "NVDA"]
    for ticker in tickers:
        hg.publish(ranking(opportunity(ticker)))
    events = decided(hg, pubsub, len(tickers), 60)
    report(f"bridge host cut off, decided by the other, broker={hg.broker_name}", time.monotonic() - cut_at)
    assert sorted(e["ticker"] for e in events) == sorted(tickers)
    time.sleep(5)
    hg.topo.mend(BRIDGE_A)
    wait_for(lambda: hg.health_of(BRIDGE_A)[1]["bridge"]["subscribed"], 60, "bridge A back")
    assert counts(hg, pubsub, 0) == (0, 3, 3)


# How long the Redis host stays cut off after /health said down: longer than every client's
# socket timeout, so each has given its connections up (where a ranking was once lost: a task
# queued without its hand-over ledger entry, bridge/app.py `_hand_over`).
REDIS_CUT_S = float(os.environ.get("HOSTS_REDIS_CUT_S", "20"))


@pytest.mark.guarantee
def test_redis_host_cut_off_from_everyone_mid_decision_no_order_health_down_and_everything_recovers(
        hg: HostsGateway, tmp_path: Path) -> None:
    """Worker A is in the middle of a decision (held at its start) when the Redis host is cut
    off from everyone, for longer than every client's socket timeout and the task time
    limit; A's decision goes on towards a Redis it cannot reach (once, on the Redis broker, a
    worker left in this state consumed nothing more: its pool process dead, its shutdown
    hung). No order meanwhile, /health down on every bridge. Once Redis is back, each worker
    takes work again (by itself, or exited by its watchdog, code 70, and started again by its
    supervisor: here, the test), the ranking is decided once, and the next one too."""
    hg.green()
    marker = tmp_path / "held"
    at_worker_a_only(hg, ZERO_FAILPOINTS=f"decide_start:{marker}:pause")
    pubsub = hg.subscribe()
    hg.publish(ranking(opportunity("XLF")))
    try:
        wait_for(marker.exists, 30, "worker A in the middle of a decision")
        hg.topo.cut(REDIS)
        cut_at = time.monotonic()
    finally:
        Path(f"{marker}.go").touch()  # A's decision goes on, towards a Redis it cannot reach
    for host in (BRIDGE_A, BRIDGE_B):
        wait_for(lambda h=host: hg.health_of(h)[0] == 503 and hg.health_of(h)[1]["status"] == "down", 30,
                 f"/health down on {host.name}")
    time.sleep(REDIS_CUT_S)
    assert hg.orders() == []  # nothing is ordered without Redis
    hg.topo.mend(REDIS)
    for host in (BRIDGE_A, BRIDGE_B):
        wait_for(lambda h=host: hg.health_of(h)[1]["status"] != "down" and hg.health_of(h)[1]["bridge"]["subscribed"],
                 120, f"/health back on {host.name}")
    hg.worker(WORKER_B).start()
    restarted = every_worker_takes_work(hg, 180)
    report(f"Redis host cut off {REDIS_CUT_S:.0f} s+ mid-decision, every worker taking work, broker={hg.broker_name}, "
           f"started again by their supervisor: {restarted or 'none'}", time.monotonic() - cut_at)
    (held,) = decided(hg, pubsub, 1, 120)
    hg.publish(ranking(opportunity("DIA")))
    (event,) = decided(hg, pubsub, 1, 30)
    assert event["status"] == "SUBMITTED"
    submitted = 1 + (held["status"] == "SUBMITTED")
    assert counts(hg, pubsub, 0) == (0, 2, submitted)
    assert hg.order_posts() == submitted


def every_worker_takes_work(hg: HostsGateway, timeout: float) -> list[str]:
    """Wait until every worker answers through the broker with both queues, starting again
    (as its supervisor would) a worker its watchdog ended; the names of those started again.
    A worker that exits any other way fails the test."""
    restarted: list[str] = []
    app = Celery(broker=hg.celery_broker_url())

    def all_consume() -> bool:
        for proc in hg.workers:
            if proc.popen is not None and proc.popen.poll() is not None:
                assert proc.popen.returncode == WATCHDOG_EXIT, f"{proc.name} exited {proc.popen.returncode}"
                restarted.append(proc.name)
                proc.start()
        replies = app.control.inspect(timeout=2, limit=len(hg.workers)).active_queues() or {}
        consuming = {name for name, queues in replies.items() if {q["name"] for q in queues} >= set(QUEUES)}
        return consuming == {f"{proc.name}@{hg.worker_on[proc.name].name}" for proc in hg.workers}

    wait_for(all_consume, timeout, "every worker taking work", interval=1)
    return restarted


def mirror_status(hg: HostsGateway) -> dict[str, Any]:
    """The account mirror as a bridge's /health shows it."""
    return dict(hg.health_of(BRIDGE_B)[1]["mirror"])


def leading(hg: HostsGateway, mirrors: dict[Host, Proc], not_on: Host | None = None) -> Host:
    """The host of the consumer that leads and is in sync (not `not_on`), once there is one."""
    def found() -> Host | None:
        status = mirror_status(hg)
        if not (status["in_sync"] and status["leader"]):
            return None
        pid = str(status["leader"]).split(":")[1]
        host = next((h for h, p in mirrors.items() if str(p.pid) == pid), None)
        return host if host is not None and host != not_on else None
    return wait_for(found, 60, f"a mirror consumer leading in sync (not on {not_on.name if not_on else '-'})")


def order_by_hand(hg: HostsGateway, symbol: str) -> None:
    """An order placed at the broker outside the gateway (Alpaca's dashboard)."""
    headers = {"APCA-API-KEY-ID": hg.env["ALPACA_API_KEY"], "APCA-API-SECRET-KEY": hg.env["ALPACA_SECRET_KEY"]}
    requests.post(hg.sim_url + "/v2/orders", headers=headers, timeout=10,
                  json={"symbol": symbol, "qty": "1", "side": "buy", "type": "limit", "limit_price": "1",
                        "time_in_force": "day", "client_order_id": f"by-hand-{symbol}"}).raise_for_status()


@pytest.mark.guarantee
@pytest.mark.parametrize("spread", ["redis"], indirect=True)  # the mirror is the same on either broker
def test_mirror_leaders_host_cut_off_the_other_leads_and_row_9_stays_right(hg: HostsGateway) -> None:
    """Two account-mirror consumers, on the two worker hosts. The leader's host is cut off
    from everything: the other takes the lease over and resyncs; an order placed by hand
    meanwhile is in its mirror and stops row 9 for that ticker; a ranking of another ticker
    is ordered once. The old leader, back, does not lead again while the new one holds."""
    mirrors = {host: hg.mirror(host) for host in (WORKER_A, WORKER_B)}
    try:
        for proc in mirrors.values():
            proc.start()
        first = leading(hg, mirrors)
        other = WORKER_B if first == WORKER_A else WORKER_A
        hg.green()
        pubsub = hg.subscribe()
        hg.topo.cut(first)
        cut_at = time.monotonic()
        assert leading(hg, mirrors, not_on=first) == other
        report("mirror leader's host cut off, the other leads in sync", time.monotonic() - cut_at)
        order_by_hand(hg, "XLE")
        wait_for(lambda: hg.r.get(keys.mirror_book_key("XLE")), 30, "the hand-placed order in the new leader's mirror")
        hg.publish(ranking(opportunity("XLE")))
        hg.publish(ranking(opportunity("DIA")))
        events = {e["ticker"]: e for e in decided(hg, pubsub, 2, 60)}
        assert events["XLE"]["status"] == "SKIPPED" and "open order" in events["XLE"]["why"][0], events["XLE"]
        assert events["DIA"]["status"] == "SUBMITTED", events["DIA"]
        rows_by_source = hg.r.hgetall(keys.MIRROR_STATS_KEY)
        assert int(rows_by_source.get(b"row9_mirror", 0)) >= 1  # row 9 answered by the new leader's mirror
        hg.topo.mend(first)
        wait_for(lambda: hg.workers_alive() == 2, 60, "the cut-off host's worker beating again")
        assert counts(hg, pubsub, 0) == (0, 2, 2)  # the hand-placed XLE and the gateway's DIA
        assert leading(hg, mirrors) == other
        assert sorted(o["symbol"] for o in hg.orders()) == ["DIA", "XLE"]
    finally:
        for proc in mirrors.values():
            proc.stop()


@pytest.mark.guarantee
def test_broker_unreachable_from_one_worker_host_each_message_decided_once(hg: HostsGateway) -> None:
    """Worker A cannot reach the broker host; B can. Every message is decided exactly once,
    no order is placed twice, and every order placed is one SUBMITTED decision. Counted once
    A reaches the broker again: until then an order's status follow-up that A took waits."""
    hg.green()
    hg.topo.block(WORKER_A, BROKER)
    pubsub = hg.subscribe()
    tickers = ["XLE", "XLF", "XLK", "XLV"]
    for ticker in tickers:
        hg.publish(ranking(opportunity(ticker)))
    events = decided(hg, pubsub, len(tickers), 120)
    hg.topo.unblock(WORKER_A, BROKER)
    n_events, n_rows, n_orders = counts(hg, pubsub, 0)
    assert n_events == 0 and n_rows == len(tickers)
    submitted = [e for e in events if e["status"] == "SUBMITTED"]
    assert sorted(o["symbol"] for o in hg.orders()) == sorted(e["ticker"] for e in submitted)
    assert n_orders == len(submitted)
    print(f"\n[hosts] broker unreachable from worker A, broker={hg.broker_name}: "
          f"{len(submitted)}/{len(tickers)} SUBMITTED, others {[e['status'] for e in events if e not in submitted]}")


@pytest.mark.guarantee
@pytest.mark.parametrize("skew_s", [30, -30])
def test_worker_host_clock_off_by_30s_judges_time_by_the_redis_host(hg: HostsGateway, skew_s: int) -> None:
    """Worker A's clock 30 s ahead (then behind). A ranking whose rank_time is 100 s before
    (after) the true time is within the 120 s signal-age bound by the true clock and beyond
    it by A's own; A judges it by the Redis host's clock (bound: half a TIME round trip plus
    the monotonic drift over 5 s), so it is SUBMITTED. /health shows A's skew."""
    hg.green()
    at_worker_a_only(hg, **faketime(skew_s))
    try:
        def shown() -> float:
            return hg.health_of(BRIDGE_A)[1]["clock"]["workers_skew_s"]["worker-wa@wa"]
        wait_for(lambda: abs(shown() - skew_s) < 2, 30, "A's skew on /health")
        pubsub = hg.subscribe()
        rank_time = datetime.now(UTC) - timedelta(seconds=100 if skew_s > 0 else -100)
        hg.publish(ranking(opportunity("GLD"), rank_time=rank_time))
        (event,) = collect(pubsub, 1, 60, hg)
        assert event["status"] == "SUBMITTED", event
        assert counts(hg, pubsub, 0) == (0, 1, 1)
    finally:
        hg.restart_with(hg.worker(WORKER_A))


def exit_orders(hg: HostsGateway, execution_id: str) -> list[dict[str, Any]]:
    return [o for o in hg.orders() if o["client_order_id"] == exit_client_order_id(execution_id)]


def due_time(hg: HostsGateway, execution_id: str) -> datetime:
    """The horizon exit's due time, once the lifecycle has counted it on the broker's calendar."""
    def known() -> datetime | None:
        rec = lifecycle_store.load(hg.r, execution_id, TEST_SIGNING_KEY)
        return rec.due_at if rec else None
    return wait_for(known, 60, f"{execution_id}'s due time")


def moves_until(hg: HostsGateway, execution_id: str, done: Callable[[], bool], most: int) -> int:
    """The moves of `execution_id`'s due-set score until `done()` (a step moves it twice: the
    tick takes it with a lease, the step schedules the next look); fails past `most`."""
    for moved in range(most + 1):
        if done():
            return moved
        before = hg.r.zscore(keys.LIFECYCLE_DUE_KEY, execution_id)
        wait_for(lambda b=before: done() or hg.r.zscore(keys.LIFECYCLE_DUE_KEY, execution_id) != b, 30,
                 f"move {moved + 1} of {execution_id}'s lifecycle")
    raise AssertionError(f"not done after {most} moves of {execution_id}'s lifecycle")


@pytest.mark.guarantee
@pytest.mark.parametrize("skew_s", [30, -30])
def test_a_position_on_a_skewed_worker_host_exits_once_at_its_horizon_by_the_brokers_clock(
        hg: HostsGateway, skew_s: int) -> None:
    """Worker A alone, its host's clock 30 s ahead (then behind); the one beat on B's host
    (under libfaketime beat's own `time.sleep` fails with EINVAL and beat exits).
    An H30 position is bought and protected; the broker's clock is stopped 25 s before the
    horizon: three lifecycle steps sell nothing. Stopped 1 s past it, the share is sold once
    within three steps (the bound: the step under way, the cancel of what is left of the
    protect, the sale; LIFECYCLE_LOOK_EVERY_S apart). The lifecycle reads the broker's clock
    and schedules its steps (and their hops) on the Redis host's, so A's own clock moves
    neither the exit nor its steps."""
    hg.green()
    at_worker_a_only(hg, **faketime(skew_s))
    beat = hg.beat(WORKER_B).start()
    try:
        hg.sim("POST", "/_sim/prices", {"IWM": 50.0})
        pubsub = hg.subscribe()
        hg.publish(ranking(opportunity("IWM")))
        (entry,) = collect(pubsub, 1, 60)  # the entry alone: its protect follows the fill
        assert entry["status"] == "SUBMITTED", entry
        execution_id = entry["execution_id"]
        due = due_time(hg, execution_id)
        wait_for(lambda: [o for o in hg.orders() if o["client_order_id"] == protect_client_order_id(execution_id)],
                 60, "the protect OCO")
        hg.sim("POST", "/_sim/clock", {"now": (due - timedelta(seconds=25)).isoformat()})
        steps_taken(hg, execution_id, 3)
        assert exit_orders(hg, execution_id) == []  # not before its time by the broker's clock
        hg.sim("POST", "/_sim/clock", {"now": (due + timedelta(seconds=1)).isoformat()})
        moves = moves_until(hg, execution_id, lambda: bool(exit_orders(hg, execution_id)), 6)
        wait_for(lambda: hg.r.zcard(keys.LIFECYCLE_DUE_KEY) == 0, 60, "the lifecycle finished")
        events = collect(pubsub, 2, 30, hg)  # and not one more
        assert [(e["intent"], e["status"], e["exit_reason"]) for e in events] == [
            ("protect", "SUBMITTED", "target_stop"), ("exit", "SUBMITTED", "horizon")], events
        # rows: the entry, its protect, its exit; orders: those three and the protect's stop leg
        assert counts(hg, pubsub, 0) == (0, 3, 4)
        placed = [o["client_order_id"] for o in hg.orders()]
        ours = (entry["client_order_id"], protect_client_order_id(execution_id), exit_client_order_id(execution_id))
        assert [placed.count(cid) for cid in ours] == [1, 1, 1], placed
        (sell,) = exit_orders(hg, execution_id)
        assert sell["side"] == "sell" and float(sell["qty"]) == 1
        with hg.engine.connect() as conn:
            outcomes = conn.execute(select(execution_outcome.c.outcome, execution_outcome.c.exit_via)
                                    .where(execution_outcome.c.execution_id == execution_id)).all()
        assert [tuple(o) for o in outcomes] == [("EXPIRED", "horizon")]
        print(f"\n[hosts] exit at the horizon, worker clock {skew_s:+d} s, broker={hg.broker_name}: "
              f"sold {moves} due-set moves after the due time")
    finally:
        beat.stop()
        hg.restart_with(hg.worker(WORKER_A))
