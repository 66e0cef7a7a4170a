"""Faults made real: SIGKILLed workers, redelivered tasks, a restarted Redis, a stopped
PostgreSQL, a failing broker, killed bridges. Each test checks what was kept: exactly one
order per execution_id and exactly one decision (event + row) per message.

Run alone with `pytest -m faults`. Times to recovery are printed (pytest -s shows them)
and recorded in docs/guarantees.md.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alpaca_paper_sim import SimServer
from tests.support.gateway import (
    PG_URL,
    Gateway,
    collect,
    drain,
    market,
    opportunity,
    postgres_schema_url,
    ranking,
    symbol,
)
from tests.support.procs import RABBITMQ_URL, PrivateRedis, health, purge_rabbitmq, rabbitmq_available, wait_for
from zero_tasks.core import keys

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

FAST_REDELIVERY = {"VISIBILITY_TIMEOUT_S": "10", "TASK_TIME_LIMIT_S": "6", "BROKER_RETRY_BACKOFF_MAX_S": "1"}
BACKENDS = ["sqlite", "postgres"]
LONE = [f"{broker}-{backend}" for broker in ("redis", "rabbitmq") for backend in BACKENDS]
LONE_ON_REDIS = [p for p in LONE if p.startswith("redis-")]


def audit_url(backend: str, tmp: Path, schema: str) -> str:
    """SQLite in `tmp`, or a PostgreSQL schema of this gateway's own (a gateway drops and
    makes its table at start, which must not touch another running gateway's)."""
    if backend == "postgres":
        return postgres_schema_url(schema)
    return f"sqlite:///{tmp / 'audit.db'}"


@contextmanager
def own_gateway(log_dir: Path, sim: SimServer, database_url: str, workers: int = 1, bridges: int = 1,
                **env: str) -> Iterator[Gateway]:
    """A gateway on a Redis of its own: what a test stops or kills there harms no other test."""
    server = PrivateRedis(log_dir).start()
    gw = Gateway(log_dir, server, sim.url, database_url, workers=workers, bridges=bridges, **env).start()
    try:
        yield gw
    finally:
        gw.stop()
        server.stop()


def report(what: str, seconds: float) -> None:
    print(f"\n[recovery] {what}: {seconds:.1f} s")


@pytest.fixture(scope="module")
def fault_redis(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """Keeps its data over a restart when told to SAVE (a --dir of its own), as a Redis
    with persistence does: the restart test stops it with messages in flight."""
    server = PrivateRedis(log_dir)
    server.proc.argv += ["--dir", str(tmp_path_factory.mktemp("fault-redis"))]
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=LONE)
def lone(request: pytest.FixtureRequest, log_dir: Path, fault_redis: PrivateRedis, sim: SimServer,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One worker, one bridge, fast redelivery; Celery broker Redis or RabbitMQ; audit on
    SQLite or PostgreSQL."""
    broker, backend = request.param.split("-")
    extra = dict(FAST_REDELIVERY)
    if broker == "rabbitmq":
        if not rabbitmq_available():
            pytest.skip(f"RabbitMQ not reachable at {RABBITMQ_URL} (.ci/run starts it)")
        purge_rabbitmq()
        extra["CELERY_BROKER_URL"] = RABBITMQ_URL
    url = audit_url(backend, tmp_path_factory.mktemp(f"lone-{request.param}"), f"zero_lone_{broker}")
    gw = Gateway(log_dir, fault_redis, sim.url, url, workers=1, **extra).start()
    gw.broker_name = broker  # type: ignore[attr-defined]
    yield gw
    gw.stop()


@pytest.fixture
def one(lone: Gateway) -> Gateway:
    return lone.revive()


@pytest.mark.guarantee
def test_worker_killed_while_order_in_flight_gives_one_order(one: Gateway) -> None:
    one.green()
    # The broker takes the order and its answer is still on the way when the worker dies.
    # (A "slow" fault, which holds the request before the broker takes it, raced with
    # RabbitMQ's ~1.1 s redelivery: the re-run could look up before the order existed and
    # then correctly resubmit, so "found" was not what it tested.)
    one.sim("POST", "/_sim/fault", {"mode": "accept_then_slow", "method": "POST", "path": "/v2/orders", "delay": 3.0})
    pubsub = one.subscribe()
    one.publish(ranking(opportunity("SPY")))
    wait_for(lambda: len(one.orders()) == 1, 20, "order accepted, answer in flight")
    one.workers[0].kill()  # SIGKILL to the whole worker: master and pool process
    killed_at = time.monotonic()
    one.restart(one.workers[0])
    (event,) = collect(pubsub, 1, 60, one)
    report(f"worker SIGKILL mid-order, broker={one.broker_name}", time.monotonic() - killed_at)
    assert event["status"] == "SUBMITTED"
    assert "found by client_order_id" in event["why"][0]
    assert one.nothing_more(pubsub) == []
    assert len(one.orders()) == 1 and one.order_posts() == 1
    assert len(one.wait_rows(1)) == 1


@pytest.mark.guarantee
def test_a_message_the_hand_over_ledger_refused_is_not_queued_until_it_takes_it(one: Gateway) -> None:
    """kombu can lose a task between its BRPOP and its unacked write (a partition, a worker
    that dies); the hand-over ledger is what queues it again, so no task goes on the queue
    without its entry. A ledger write Redis refuses (here its entries' hash made a string: a
    real WRONGTYPE, the stand-in for a connection the server closed) keeps the message in the
    bridge; it is queued, and decided once, when the ledger takes it."""
    one.green()
    one.r.set(keys.IN_FLIGHT_TASKS_KEY, "not a hash")
    before = health(one.api_port)[1]["bridge"]["enqueued"]
    pubsub = one.subscribe()
    one.publish(ranking(opportunity("SPY")))
    wait_for(lambda: health(one.api_port)[1]["bridge"]["pending"] == 1, 20, "the message kept by the bridge")
    assert health(one.api_port)[1]["bridge"]["enqueued"] == before  # nothing went on the queue
    assert drain(pubsub) == [] and one.orders() == []
    one.r.delete(keys.IN_FLIGHT_TASKS_KEY)
    (event,) = collect(pubsub, 1, 30, one)
    assert event["status"] == "SUBMITTED", event
    assert one.nothing_more(pubsub) == []
    assert len(one.orders()) == 1 and len(one.wait_rows(1)) == 1
    assert one.r.zcard(keys.IN_FLIGHT_KEY) == 0


@pytest.mark.guarantee
def test_worker_killed_between_broker_accept_and_audit_write(one: Gateway, tmp_path: Path) -> None:
    one.green()
    marker = tmp_path / "fired"
    one.restart(one.workers[0], ZERO_FAILPOINTS=f"after_submit:{marker}")
    one.wait_ready()
    pubsub = one.subscribe()
    one.publish(ranking(opportunity("QQQ")))
    wait_for(lambda: marker.exists() and not one.workers[0].alive(), 30, "failpoint fired")
    killed_at = time.monotonic()
    assert one.rows() == [] and len(one.orders()) == 1  # accepted by the broker, not yet recorded
    one.restart(one.workers[0], ZERO_FAILPOINTS="")
    (event,) = collect(pubsub, 1, 60, one)
    report(f"worker SIGKILL after broker accept, broker={one.broker_name}", time.monotonic() - killed_at)
    assert event["status"] == "SUBMITTED" and event["alpaca_order_id"] == one.orders()[0]["id"]
    assert one.nothing_more(pubsub) == []
    assert len(one.orders()) == 1 and one.order_posts() == 1
    (row,) = one.wait_rows(1)
    assert row["status"] == "SUBMITTED" and row["event_key"] == event["decision_id"]


@pytest.mark.guarantee
def test_a_run_stopped_by_its_soft_time_limit_before_deciding_is_requeued_and_decided_once(
        one: Gateway, tmp_path: Path) -> None:
    """A decide run held at its start until the soft time limit strikes (TASK_TIME_LIMIT_S
    6 s: soft at 4 s) has decided nothing. Celery would reject it without requeueing it:
    gone from the Redis broker's unacked set, dropped by RabbitMQ, back only by the hand-over
    ledger's rescue (HANDOVER_RESCUE_AFTER_S, 600 s here). It goes back on the queue at
    once, and the next run decides it: one event, one row, one order, nothing rescued."""
    one.green()
    marker = tmp_path / "held"
    one.restart(one.workers[0], ZERO_FAILPOINTS=f"decide_start:{marker}:pause")
    try:
        one.wait_ready()
        rescued_before = health(one.api_port)[1]["bridge"]["rescued"]
        pubsub = one.subscribe()
        one.publish(ranking(opportunity("DIA")))
        (event,) = collect(pubsub, 1, 60, one)
        assert marker.exists()  # the first run was held, and stopped by the limit
        assert event["status"] == "SUBMITTED", event
        assert one.nothing_more(pubsub) == []
        assert len(one.orders()) == 1 and len(one.wait_rows(1)) == 1
        assert health(one.api_port)[1]["bridge"]["rescued"] == rescued_before
        assert "soft time limit reached before a decision" in one.workers[0].output()
    finally:
        one.restart(one.workers[0], ZERO_FAILPOINTS="")


@pytest.mark.guarantee
@pytest.mark.parametrize("lone", LONE_ON_REDIS, indirect=True)  # Alpaca's faults do not depend on the Celery broker
@pytest.mark.parametrize("mode", ["500", "503", "429", "slow", "drop"])
def test_broker_failing_every_time_ends_error_and_next_message_is_served(one: Gateway, mode: str) -> None:
    one.green()
    one.sim("POST", "/_sim/fault", {"mode": mode, "count": -1, "method": "POST", "path": "/v2/orders",
                                    "delay": 2.0, "retry_after": 0})
    # a ticker per mode: a slow POST still sleeping in the simulator must not meet the next test
    ticker = symbol("XL", ["500", "503", "429", "slow", "drop"].index(mode))
    (event,) = one.decide(ranking(opportunity(ticker)), timeout=60)
    if mode == "slow":  # the broker accepts after our timeout: found by client_order_id, never twice
        assert event["status"] == "SUBMITTED" and "found by client_order_id" in event["why"][0]
        assert len([o for o in one.orders() if o["symbol"] == event["ticker"]]) == 1
    else:
        assert event["status"] == "ERROR" and event["why"][0].startswith("error: broker unavailable")
        assert [o for o in one.orders() if o["symbol"] == event["ticker"]] == []
    one.sim("DELETE", "/_sim/fault")
    (following,) = one.decide(ranking(opportunity(symbol("NX", ["500", "503", "429", "slow", "drop"].index(mode)))))
    assert following["status"] == "SUBMITTED"
    assert [o["symbol"] for o in one.orders() if o["symbol"].startswith("NX")] == [following["ticker"]]


@pytest.mark.guarantee
def test_redis_restart_fails_closed_then_reconnects_by_itself(one: Gateway) -> None:
    """Redis (kill switch, market state, claims, pub/sub and, on the Redis broker, the
    Celery queue) goes away while the worker holds messages the bridge had heard and
    handed over: one in the middle of its decision (the broker slow to answer row 9), the
    others queued behind it. Nothing can be published to a Redis that is down (ZERO's
    PUBLISH fails too), so these are the messages of that moment. No order leaves while
    Redis is away; once it is back, with its data (SAVEd, as a Redis with persistence
    comes back), each message ends as exactly one decision, and the next one is served.
    On RabbitMQ a task that could not keep its decision goes back on the queue: none waits
    for the hand-over ledger (600 s). On the Redis broker the queue itself was away: a task
    comes back from kombu's unacked set, or, when the worker's hold of it was lost with the
    connection, from the ledger (the test's HANDOVER_RESCUE_AFTER_S, 15 s)."""
    if one.broker_name == "rabbitmq":  # type: ignore[attr-defined]
        redis_goes_away_with_messages_in_flight(one)
        assert health(one.api_port)[1]["bridge"]["rescued"] == 0
        return
    bridge = one.bridges[0]
    usual_env = dict(bridge.env)
    one.restart(bridge, HANDOVER_RESCUE_AFTER_S="15", RATE_LIMIT_MAX_WAIT_S="0")
    one.wait_ready()
    try:
        redis_goes_away_with_messages_in_flight(one)
    finally:
        bridge.stop()
        bridge.env = usual_env
        bridge.start()


def redis_goes_away_with_messages_in_flight(one: Gateway) -> None:
    one.green()
    one.sim("POST", "/_sim/config", {"fill": "manual"})  # the order stays open: its follow-up is held unacked
    (held,) = one.decide(ranking(opportunity("HOLD")))
    assert held["status"] == "SUBMITTED"
    open_orders = lambda: one.sim("GET", "/_sim/stats")["requests"].get("GET /v2/orders", 0)  # noqa: E731
    one.sim("POST", "/_sim/fault", {"mode": "slow", "delay": 3.0, "count": -1, "method": "GET", "path": "/v2/orders"})
    before, posts_before = open_orders(), one.order_posts()
    tickers = ["RDA", "RDB", "RDC"]
    for ticker in tickers:
        one.publish(ranking(opportunity(ticker)))
    wait_for(lambda: open_orders() > before, 30, "the first message's row 9 at the broker")
    one.r.save()
    one.redis_server.stop()
    try:
        status, body = health(one.api_port)
        assert status == 503 and body["status"] == "down"
        time.sleep(5)  # the held row-9 answer comes back meanwhile: the submit must not follow it
        assert one.order_posts() == posts_before  # nothing leaves while Redis is away
    finally:
        one.sim("DELETE", "/_sim/fault")
        one.redis_server.proc.start()
        wait_for(one.r.ping, 10, "redis back")
    back_at = time.monotonic()
    wait_for(lambda: health(one.api_port)[1]["bridge"]["subscribed"], 10, "bridge resubscribed within 10 s")
    wait_for(lambda: one.workers_alive() >= 1, 10, "worker heartbeat within 10 s")
    for ticker in tickers:
        one.wait_rows(1, timeout=60, ticker=ticker)
    report("redis restart -> the held messages decided", time.monotonic() - back_at)
    (event,) = one.decide(ranking(opportunity("DIA")), timeout=10)
    assert event["status"] == "SUBMITTED"
    one.wait_rows(1, ticker="DIA")
    decided = {ticker: [r["status"] for r in one.rows(ticker=ticker)] for ticker in tickers}
    rescued = health(one.api_port)[1]["bridge"]["rescued"]
    print(f"\n[redis restart] held messages decided as {decided}; queued again from the ledger: {rescued}")
    assert all(len(statuses) == 1 for statuses in decided.values()), decided  # one decision each
    ordered = [o["symbol"] for o in one.orders() if o["symbol"] in tickers]
    assert sorted(ordered) == sorted(set(ordered))  # never two orders for one
    assert sorted(ordered) == sorted(t for t, statuses in decided.items() if statuses == ["SUBMITTED"])


@pytest.mark.guarantee
def test_catch_up_decides_a_ranking_published_while_no_bridge_listened(one: Gateway) -> None:
    one.green()
    bridge = one.bridges[0]
    bridge.stop()
    rank = json.dumps(ranking(opportunity("ARKK")))
    one.r.set("key:opportunity_rank", rank, ex=60)
    assert one.r.publish("chan:opportunity_update", rank) == 0  # nobody heard it
    pubsub = one.subscribe()
    one.restart(bridge)
    (event,) = collect(pubsub, 1, 30, one)
    assert event["status"] == "SUBMITTED" and event["ticker"] == "ARKK"
    one.restart(bridge)  # a second start does not decide the stored ranking again
    wait_for(lambda: health(one.api_port)[1]["bridge"]["subscribed"], 30, "bridge back")
    assert one.nothing_more(pubsub) == []
    assert len(one.orders()) == 1


@pytest.mark.guarantee
def test_a_ranking_a_bridge_heard_is_not_decided_again_by_the_catch_up(one: Gateway) -> None:
    """Decided BLOCKED live with the kill switch off; the kill switch turned on; the bridge
    restarted while ZERO still keeps that ranking: no second decision, no order."""
    one.green(enabled=False)
    rank = json.dumps(ranking(opportunity("XBI")))
    pubsub = one.subscribe()
    one.publish(rank)
    one.r.set("key:opportunity_rank", rank, ex=60)  # the very bytes, as ZERO stores them
    (event,) = collect(pubsub, 1, 30, one)
    assert event["status"] == "BLOCKED" and event["why"][0].startswith("execution disabled")
    one.r.set("key:execution_enabled", "true")
    one.restart(one.bridges[0])
    wait_for(lambda: health(one.api_port)[1]["bridge"]["subscribed"], 30, "bridge back")
    assert one.nothing_more(pubsub) == []
    assert one.orders() == []
    assert len(one.wait_rows(1, ticker="XBI")) == 1


# several bridges -------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def crowd(request: pytest.FixtureRequest, log_dir: Path, sim: SimServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Its own Redis: no other gateway's worker may take its tasks."""
    url = audit_url(request.param, tmp_path_factory.mktemp(f"crowd-{request.param}"), "zero_crowd")
    with own_gateway(log_dir, sim, url, workers=2, bridges=3, **FAST_REDELIVERY) as gw:
        yield gw


@pytest.fixture
def many(crowd: Gateway) -> Gateway:
    return crowd.revive()


def waiting_on_the_queue(gw: Gateway) -> int:
    """Clients blocked in BRPOP: idle Celery workers (kombu waits on every queue in one)."""
    return sum(1 for c in gw.r.client_list() if c.get("cmd") == "brpop" and "b" in c.get("flags", ""))


@pytest.mark.guarantee
def test_same_task_delivered_to_two_workers_at_once_gives_one_order(many: Gateway) -> None:
    """A visibility-timeout redelivery at its worst: the same task message in the hands of
    two idle workers at the same instant. The task is the bridge's own; the test holds it,
    waits until both workers are blocked in BRPOP, and pushes two copies in one LPUSH, so
    that Redis hands one to each worker in the same step."""
    many.green()
    for worker in many.workers:
        worker.stop()
    pubsub = many.subscribe()
    many.publish(ranking(opportunity("IWM")))
    popped = many.r.brpop(["zero_execution"], timeout=10)
    assert popped is not None, "the task never reached the queue"
    task = popped[1]
    task_id = json.loads(task)["headers"]["id"]
    for worker in many.workers:
        many.restart(worker)
    many.wait_ready()
    wait_for(lambda: waiting_on_the_queue(many) >= 2, 30, "both workers waiting on the queue")
    assert many.r.lpush("zero_execution", task, task) == 2
    (event,) = collect(pubsub, 1, 30, many)
    received = lambda: [w.output().count(f"zero.decide[{task_id}] received") for w in many.workers]  # noqa: E731
    wait_for(lambda: all(received()), 10, "each worker received its copy")
    assert received() == [1, 1]
    assert event["status"] == "SUBMITTED", event
    assert many.nothing_more(pubsub) == []  # the second copy completes the same decision, silently
    # one order: a copy that finds no order yet may send the same client_order_id again,
    # which the broker refuses (422) and the copy then looks up
    (order,) = many.orders()
    assert order["id"] == event["alpaca_order_id"] and many.order_posts() <= 2
    assert len(many.wait_rows(1)) == 1


@pytest.mark.guarantee
def test_duplicate_storm_three_bridges_two_workers(many: Gateway) -> None:
    """200 distinct rankings, each published 5 times, 50 tickers: at most one order per
    ticker (cooldown), at most MAX_ORDERS_PER_DAY (10) in all, never two for one id."""
    many.green()
    now = datetime.now(UTC)
    tickers = [symbol("T", i) for i in range(50)]
    rankings = []
    for i in range(200):
        ticker = tickers[i % 50]
        probability = 0.95 if i < 150 else 0.5  # each ticker's last ranking is below threshold
        rankings.append(ranking(opportunity(ticker, probability=probability),
                                rank_time=now - timedelta(seconds=i // 50)))
    pubsub = many.subscribe()
    for rank in rankings:
        for _ in range(5):
            many.publish(rank)
    events = collect(pubsub, 1000, 120, many)
    assert many.nothing_more(pubsub) == []  # 3 bridges heard each message; it was decided once
    orders = many.orders()
    assert len(orders) == 10  # the daily cap; without it 50, one per ticker
    assert len({o["symbol"] for o in orders}) == 10 and len({o["client_order_id"] for o in orders}) == 10
    submitted = [e for e in events if e["status"] == "SUBMITTED"]
    assert sorted(e["alpaca_order_id"] for e in submitted) == sorted(o["id"] for o in orders)
    reasons = {e["why"][0].split(":")[0] for e in events if e["status"] != "SUBMITTED"}
    assert reasons <= {"duplicate", "cooldown", "daily cap", "threshold"}
    assert any(e["why"][0].startswith("daily cap") for e in events)
    assert len(many.wait_rows(1000, timeout=60)) == 1000
    assert len({e["decision_id"] for e in events}) == 1000


@pytest.mark.guarantee
def test_bridge_killed_mid_stream_a_second_bridge_loses_and_duplicates_nothing(many: Gateway) -> None:
    many.r.set("key:market_state", market("GREEN"))  # kill switch off: every message BLOCKED, cheap
    victim = many.bridges[0]
    pubsub = many.subscribe()

    def stream() -> None:
        for i in range(150):
            many.r.publish("chan:opportunity_update", json.dumps(ranking(opportunity(symbol("S", i, 3)))))
            time.sleep(0.01)

    sender = threading.Thread(target=stream)
    sender.start()
    time.sleep(0.4)
    victim.kill()
    time.sleep(0.4)
    many.restart(victim)
    sender.join()
    events = collect(pubsub, 150, 60, many)
    assert many.nothing_more(pubsub) == []
    assert sorted(e["ticker"] for e in events) == [symbol("S", i, 3) for i in range(150)]
    assert len(many.wait_rows(150, timeout=30)) == 150


@pytest.mark.guarantee
def test_a_bridge_killed_between_its_claim_and_the_hand_over_loses_nothing(many: Gateway, tmp_path: Path) -> None:
    """The bridge wins a message's claim and dies before deciding or enqueueing it (a
    failpoint, so the crash lands exactly there): another bridge takes it over. The signals
    are below the threshold: BLOCKED by the worker."""
    marker = tmp_path / "bridge-claim-failpoint"
    victim = many.restart(many.bridges[0], ZERO_FAILPOINTS=f"bridge_after_claim:{marker}")
    many.wait_ready()
    many.r.set("key:market_state", market("GREEN"))  # kill switch off: every message BLOCKED
    pubsub = many.subscribe()
    published = []
    for i in range(60):  # until the victim wins a claim (the bridges race for each message)
        ticker = symbol("K", i, 3)
        many.r.publish("chan:opportunity_update", json.dumps(ranking(opportunity(ticker, 0.5))))
        published.append(ticker)
        time.sleep(0.05)
        if marker.exists():
            break
    assert marker.exists(), "the victim bridge never won a claim"
    wait_for(lambda: not victim.alive(), 10, "victim bridge gone")
    events = collect(pubsub, len(published), 30, many)
    assert many.nothing_more(pubsub) == []
    assert sorted(e["ticker"] for e in events) == published
    # the taken-over message went through the same veto: kill switch off, no order
    assert {e["status"] for e in events} == {"BLOCKED"} and many.orders() == []
    assert sorted(row["ticker"] for row in many.wait_rows(len(published), timeout=30)) == published
    taken_over = sum(health(int(b.env["EXECUTION_API_PORT"]))[1]["bridge"]["taken_over"] for b in many.bridges[1:])
    assert taken_over >= 1
    many.restart(victim, ZERO_FAILPOINTS="")


# PostgreSQL outage -----------------------------------------------------------------
def pg_ctl(action: str) -> None:
    version = os.listdir("/etc/postgresql")[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                   capture_output=True, timeout=60)


def postgres_controllable() -> bool:
    return os.geteuid() == 0 and os.path.isdir("/etc/postgresql") and bool(
        subprocess.run(["which", "pg_ctlcluster"], capture_output=True).returncode == 0)


@pytest.mark.guarantee
@pytest.mark.skipif(not postgres_controllable(), reason="needs root and pg_ctlcluster to stop PostgreSQL")
def test_postgres_stopped_60s_under_traffic_loses_no_decision(log_dir: Path, sim: SimServer) -> None:
    url = PG_URL + "?options=-csearch_path%3Dzero_faults"
    server = PrivateRedis(log_dir).start()  # its own Redis: no other gateway's worker may take its tasks
    gw = Gateway(log_dir, server, sim.url, url, workers=2, **FAST_REDELIVERY).start()
    try:
        gw.reset()
        gw.green()
        pubsub = gw.subscribe()
        pg_ctl("stop")
        stopped_at = time.monotonic()
        try:
            sent = 0
            while time.monotonic() - stopped_at < 60:  # traffic during the outage; events keep flowing
                gw.publish(ranking(opportunity(symbol("P", sent), probability=0.95 if sent % 2 else 0.5)))
                sent += 1
                collect(pubsub, 1, 30)  # the event; the gateway cannot settle while its audit is down
                time.sleep(2)
        finally:
            pg_ctl("start")
        back_at = time.monotonic()
        wait_for(lambda: gw.row_count() >= sent, 60, f"{sent} rows within 60 s of PostgreSQL's return",
                 interval=0.5)
        report(f"PostgreSQL back -> all {sent} rows", time.monotonic() - back_at)
        assert len(gw.wait_rows(sent)) == sent
        assert gw.nothing_more(pubsub) == []
        assert len({r["event_key"] for r in gw.rows()}) == sent
    finally:
        gw.stop()
        server.stop()


# A task lost inside the Celery worker ------------------------------------------------
def messages_in(task: bytes) -> int:
    """How many messages a decide task taken off the Redis queue carries (kombu's JSON envelope)."""
    envelope = json.loads(task)
    args = json.loads(base64.b64decode(envelope["body"]))[0]
    return len(args[0]) if envelope["headers"]["task"] == "zero.decide_many" else 1


@pytest.mark.guarantee
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("switch_on_at_rescue", [True, False], ids=["enabled", "kill_switch_off_meanwhile"])
def test_tasks_a_dying_worker_took_off_the_queue_are_queued_again_and_decided_once(
        log_dir: Path, sim: SimServer, tmp_path: Path, switch_on_at_rescue: bool, backend: str) -> None:
    """kombu takes a task off the queue (BRPOP) before it writes it to its unacked hash, so
    a worker whose main process dies in between, or stops with the reply unread
    (celery/celery#4354), loses the task: no redelivery ever comes. Here the test is that
    worker: it pops the tasks and drops them. The bridge queues them again from the
    hand-over ledger once HANDOVER_RESCUE_AFTER_S has passed, and each message is decided
    once. Five rankings published at once, so that the bridge may take them as one batch
    (one decide_many task) as well as one by one; each is queued again alone. A message queued
    again meets the whole decision again: with the kill switch turned off while it waited,
    it ends BLOCKED and nothing is ordered."""
    env = {**FAST_REDELIVERY, "RATE_LIMIT_MAX_WAIT_S": "0", "HANDOVER_RESCUE_AFTER_S": "15"}
    with own_gateway(log_dir, sim, audit_url(backend, tmp_path, "zero_rescue"), **env) as gw:
        gw.reset()
        gw.workers[0].stop()  # nobody takes tasks off the queue but the test
        gw.green()
        pubsub = gw.subscribe()
        tickers = ["DIA", "EEM", "GLD", "TLT", "XLF"]
        pipe = gw.r.pipeline(transaction=False)
        for ticker in tickers:
            pipe.publish("chan:opportunity_update", json.dumps(ranking(opportunity(ticker))))
        pipe.execute()
        taken = 0  # messages in the tasks taken: one decide each, or a decide_many of several
        while taken < len(tickers):
            popped = gw.r.brpop(["zero_execution"], timeout=10)
            assert popped is not None, "the tasks never reached the queue"
            taken += messages_in(popped[1])
        assert taken == len(tickers)
        lost_at = time.monotonic()
        assert health(gw.api_port)[1]["in_flight"] == len(tickers)  # what an operator sees meanwhile
        if not switch_on_at_rescue:
            gw.r.set("key:execution_enabled", "false")
        gw.restart(gw.workers[0])
        gw.wait_ready()
        waiting = gw.quiescence.pending()  # the queue is empty: only the ledger can bring them back
        assert "queues" not in waiting and len(waiting["hand-over ledger"]) == len(tickers), waiting
        assert drain(pubsub) == []
        events = collect(pubsub, len(tickers), 60, gw)
        report("5 tasks lost between BRPOP and kombu's unacked write, queued again and decided",
               time.monotonic() - lost_at)
        assert sorted(e["ticker"] for e in events) == tickers
        if switch_on_at_rescue:
            assert {e["status"] for e in events} == {"SUBMITTED"} and len(gw.orders()) == len(tickers)
        else:
            assert {e["why"][0].split(":")[0] for e in events} == {"execution disabled"}
            assert {e["status"] for e in events} == {"BLOCKED"} and gw.orders() == [] and gw.order_posts() == 0
        assert gw.nothing_more(pubsub) == []
        assert len(gw.wait_rows(len(tickers))) == len(tickers)
        assert health(gw.api_port)[1]["bridge"]["rescued"] == len(tickers)
        assert gw.r.zcard("key:execution_in_flight") == 0 and gw.r.hlen("key:execution_in_flight_tasks") == 0
