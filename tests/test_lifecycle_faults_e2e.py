"""The position lifecycle under faults, through the real processes (issue 28, item 5):
the broker failing the protect and the horizon sell, Redis restarted or emptied while a
position is held, the other EXIT_POLICY values, and no ATR.

Same set-up as tests/test_position_lifecycle_e2e.py (a bridge, a worker, a Celery beat,
the simulator's moving prices and clock), but on a Redis that keeps its data over a
restart (append-only file, as compose runs it). Every test counts once the gateway has
settled: one protect, at most one horizon sell, one outcome row and one
chan:execution_outcome message per execution; never a sale beyond what the entry bought.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from click.testing import CliRunner

from alpaca_paper_sim import SimServer, open_market
from tests.support.gateway import Gateway, collect, drain, opportunity, ranking
from tests.support.lifecycle import steps_taken
from tests.support.procs import CELERY, PrivateRedis, Proc, wait_for
from tests.support.quiescence import lifecycle_due
from tests.test_position_lifecycle_e2e import (
    DUE_SET,
    exit_events,
    next_outcome,
    orders_with,
    outcome_rows,
    outcomes,
    prices_of,
    protect_of,
    settle,
)
from zero_ops.cli import main as zero_ops
from zero_tasks.core.contract import client_order_id, exit_client_order_id, protect_client_order_id
from zero_tasks.core.lifecycle.atr import DATA_TRIES

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


@pytest.fixture(scope="module")
def fsim() -> Iterator[SimServer]:
    server = SimServer(state=open_market()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fgw(log_dir: Path, fsim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("lifecycle-faults")
    server = PrivateRedis(log_dir)
    server.proc.argv += ["--dir", str(tmp), "--appendonly", "yes", "--appendfsync", "always"]
    server.start()
    gw = Gateway(log_dir, server, fsim.url, f"sqlite:///{tmp / 'audit.db'}", workers=1, LIFECYCLE_TICK_S="1",
                 LIFECYCLE_LOOK_EVERY_S="2", TASK_TIME_LIMIT_S="10").start()
    beat = Proc(f"beat-{gw.api_port}", [CELERY, "-A", "zero_tasks", "beat", "-s", str(tmp / "beat-schedule"),
                                       "-l", "INFO"], gw.env, log_dir).start()
    gw.beat = beat  # type: ignore[attr-defined]
    gw.quiescence.add("lifecycle", lambda: lifecycle_due(gw.r))
    try:
        yield gw
    finally:
        beat.stop()
        gw.stop()
        server.stop()


@pytest.fixture
def gw(fgw: Gateway) -> Iterator[Gateway]:
    if not fgw.beat.alive():  # type: ignore[attr-defined]
        fgw.beat.start()  # type: ignore[attr-defined]
    fgw.revive()
    fgw.green()
    yield fgw
    fgw.sim("DELETE", "/_sim/fault")


def beat(gw: Gateway) -> Proc:
    proc: Proc = gw.beat  # type: ignore[attr-defined]
    return proc


def headers(gw: Gateway) -> dict[str, str]:
    return {"APCA-API-KEY-ID": gw.env["ALPACA_API_KEY"], "APCA-API-SECRET-KEY": gw.env["ALPACA_SECRET_KEY"]}


def held(gw: Gateway, ticker: str) -> float:
    positions = requests.get(f"{gw.sim_url}/v2/positions", headers=headers(gw), timeout=10).json()
    return sum(float(p["qty"]) for p in positions if p["symbol"] == ticker)


def buy(gw: Gateway, ticker: str, price: float) -> dict[str, Any]:
    """A rank-1 LONG bought at `price` and filled: its SUBMITTED entry event (whatever the
    lifecycle does next is the caller's to count)."""
    gw.sim("POST", "/_sim/prices", {ticker: price})
    pubsub = gw.subscribe()
    try:
        gw.publish(ranking(opportunity(ticker)))
        (entry,) = collect(pubsub, 1, 30)
    finally:
        pubsub.close()
    assert entry["status"] == "SUBMITTED" and entry["intent"] == "entry", entry
    wait_for(lambda: orders_with(gw, client_order_id(entry["execution_id"]))[0]["status"] == "filled", 30,
             "the entry filled")
    return entry


def protected(gw: Gateway, ticker: str, price: float) -> dict[str, Any]:
    """Bought and protected (one OCO), the gateway settled."""
    entry = buy(gw, ticker, price)
    protect_of(gw, entry["execution_id"])
    gw.settle()
    return entry


def assert_one_of_each(gw: Gateway, entry: dict[str, Any], *, protect: int = 1, sells: int = 1) -> None:
    """Counted after settle(): `protect` OCOs and protect SUBMITTED decisions, `sells`
    horizon sells and exit SUBMITTED decisions, one outcome row, no short."""
    exec_id = entry["execution_id"]
    assert len(orders_with(gw, protect_client_order_id(exec_id))) == protect
    assert len(orders_with(gw, exit_client_order_id(exec_id))) == sells
    events = exit_events(gw, exec_id)
    assert len([r for r in events if r["intent"] == "protect" and r["status"] == "SUBMITTED"]) == protect, events
    assert len([r for r in events if r["intent"] == "exit" and r["status"] == "SUBMITTED"]) == sells, events
    assert len(outcome_rows(gw, exec_id)) == 1
    assert held(gw, entry["ticker"]) == 0  # flat: sold once, never short


FAULTS = ["500", "503", "slow", "drop", "accept_then_drop", "429"]


def fault(mode: str) -> dict[str, Any]:
    """One failure of the next POST /v2/orders: the gateway's timeout (BROKER_TIMEOUT_S 1.5)
    runs out before a `slow` answer (3 s)."""
    return {"mode": mode, "count": 1, "method": "POST", "path": "/v2/orders", "delay": 3.0, "retry_after": 0}


@pytest.mark.guarantee
@pytest.mark.parametrize("mode", FAULTS)
def test_a_protect_post_the_broker_fails_is_looked_up_and_placed_once(gw: Gateway, mode: str) -> None:
    """The lifecycle's tick held (beat stopped) until the entry filled, so the fault meets
    the protect's POST and nothing else."""
    beat(gw).stop()
    entry = buy(gw, "SPY", 100.0)
    gw.sim("POST", "/_sim/fault", fault(mode))
    pubsub = outcomes(gw)
    beat(gw).start()
    limit, _ = prices_of(protect_of(gw, entry["execution_id"]))
    gw.settle()
    gw.sim("POST", "/_sim/prices", {"SPY": limit})
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"]) == ("PASS", "target")
    settle(gw)
    assert_one_of_each(gw, entry, sells=0)
    assert drain(pubsub, timeout=1) == []  # one chan:execution_outcome message


@pytest.mark.guarantee
@pytest.mark.parametrize("mode", FAULTS)
def test_a_horizon_sell_the_broker_fails_is_looked_up_and_sent_once(gw: Gateway, mode: str) -> None:
    entry = protected(gw, "QQQ", 200.0)
    pubsub = outcomes(gw)
    gw.sim("POST", "/_sim/fault", fault(mode))
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    out = next_outcome(pubsub, timeout=90)
    assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    assert_one_of_each(gw, entry)
    assert drain(pubsub, timeout=1) == []


def test_a_horizon_sell_the_broker_refuses_is_recorded_once_and_not_sent_again(gw: Gateway) -> None:
    """A 403 to every sell: one REJECTED exit decision, no second sale, no loop of POSTs; the
    position is the operator's, and once they sell it, its outcome is recorded (manual)."""
    pubsub = outcomes(gw)
    entry = protected(gw, "IWM", 50.0)
    gw.sim("POST", "/_sim/fault", {"mode": "403", "count": -1, "method": "POST", "path": "/v2/orders"})
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    exec_id = entry["execution_id"]
    wait_for(lambda: any(r["status"] == "REJECTED" for r in exit_events(gw, exec_id)), 30, "the refusal")
    posts = gw.order_posts()
    steps_taken(gw, exec_id, 2, timeout=90)  # the hand-over, then a slow look
    assert gw.order_posts() == posts  # refused once, not asked again every step
    rejected = [r for r in exit_events(gw, exec_id) if r["status"] == "REJECTED"]
    assert len(rejected) == 1 and rejected[0]["intent"] == "exit", rejected
    assert orders_with(gw, exit_client_order_id(exec_id)) == []
    assert held(gw, "IWM") == 1
    gw.sim("DELETE", "/_sim/fault")
    sold = requests.post(f"{gw.sim_url}/v2/orders", headers=headers(gw), timeout=10, json={
        "symbol": "IWM", "qty": "1", "side": "sell", "type": "market", "time_in_force": "day",
        "client_order_id": "by-hand-iwm"})
    assert sold.status_code < 300, sold.text
    out = next_outcome(pubsub, timeout=120)
    assert (out["execution_id"], out["outcome"], out["exit_via"]) == (exec_id, None, "manual")
    settle(gw)
    assert len(outcome_rows(gw, exec_id)) == 1 and held(gw, "IWM") == 0


@pytest.mark.guarantee
@pytest.mark.parametrize("when", ["protected", "at the horizon"])
def test_redis_restarted_with_its_data_the_lifecycle_resumes_and_sells_once(gw: Gateway, when: str) -> None:
    entry = protected(gw, "DIA", 300.0)
    pubsub_client = redis.Redis(port=gw.redis_server.port)
    if when == "at the horizon":
        gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
        wait_for(lambda: orders_with(gw, protect_client_order_id(entry["execution_id"]))[0]["status"] == "canceled"
                 or orders_with(gw, exit_client_order_id(entry["execution_id"])), 30, "the horizon exit begun")
    gw.redis_server.stop()
    gw.redis_server.proc.start()
    wait_for(gw.r.ping, 10, "redis back")
    pubsub_client.close()
    pubsub = outcomes(gw)
    if when == "protected":
        gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    if not outcome_rows(gw, entry["execution_id"]):
        out = next_outcome(pubsub, timeout=120)
        assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    assert_one_of_each(gw, entry)


@pytest.mark.guarantee
def test_redis_data_lost_the_reconcile_reseeds_the_lifecycle_and_it_sells_once(gw: Gateway) -> None:
    entry = protected(gw, "XLK", 150.0)
    gw.r.flushall()
    gw.keep_session()
    gw.green()
    wait_for(lambda: gw.workers_alive() >= 1, 30, "the worker's heartbeat back")
    assert gw.r.zcard(DUE_SET) == 0  # the schedule is gone with the data
    result = CliRunner().invoke(zero_ops, ["reconcile", "--json"], env=gw.env)
    assert result.exit_code == 0, result.output
    assert gw.r.zscore(DUE_SET, entry["execution_id"]) is not None  # reseeded from the audit
    pubsub = outcomes(gw)
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    out = next_outcome(pubsub, timeout=120)
    assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    assert_one_of_each(gw, entry)


@pytest.fixture
def policy(gw: Gateway, request: pytest.FixtureRequest) -> Iterator[str]:
    gw.restart(gw.workers[0], EXIT_POLICY=request.param)
    gw.wait_ready()
    yield request.param
    gw.restart(gw.workers[0], EXIT_POLICY="zero")
    gw.wait_ready()


@pytest.mark.parametrize("policy", ["horizon"], indirect=True)
def test_exit_policy_horizon_places_no_protect_and_sells_once_at_the_horizon(gw: Gateway, policy: str) -> None:
    pubsub = outcomes(gw)
    updates = gw.subscribe()
    entry = buy(gw, "XLF", 40.0)
    steps_taken(gw, entry["execution_id"], 2)
    assert orders_with(gw, protect_client_order_id(entry["execution_id"])) == []
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    assert_one_of_each(gw, entry, protect=0)
    assert [(e["intent"], e["status"]) for e in drain(updates)] == [("entry", "SUBMITTED"), ("exit", "SUBMITTED")]


@pytest.mark.parametrize("policy", ["hold"], indirect=True)
def test_exit_policy_hold_never_sells(gw: Gateway, policy: str) -> None:
    updates = gw.subscribe()
    entry = buy(gw, "XLE", 80.0)
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    settle(gw)
    exec_id = entry["execution_id"]
    assert orders_with(gw, protect_client_order_id(exec_id)) == []
    assert orders_with(gw, exit_client_order_id(exec_id)) == []
    assert outcome_rows(gw, exec_id) == []
    assert held(gw, "XLE") == 1
    assert [(e["intent"], e["status"]) for e in drain(updates)] == [("entry", "SUBMITTED")]


def test_a_market_data_blip_delays_the_protect_and_costs_it_nothing(gw: Gateway) -> None:
    """The first two reads of the bars get a 503: the protect waits for the next looks and
    is placed with the ATR the third read gives; one protect decision, SUBMITTED."""
    gw.sim("POST", "/_sim/fault", {"mode": "503", "count": 2, "method": "GET", "path": "/v2/stocks"})
    entry = buy(gw, "XLB", 90.0)
    exec_id = entry["execution_id"]
    wait_for(lambda: any(r["intent"] == "protect" for r in exit_events(gw, exec_id)), 30, "the protect decision")
    steps_taken(gw, exec_id, 2)
    (protect,) = [r for r in exit_events(gw, exec_id) if r["intent"] == "protect"]
    assert protect["status"] == "SUBMITTED", protect
    assert len(orders_with(gw, protect_client_order_id(exec_id))) == 1


def test_the_protect_and_the_horizon_exit_are_each_deferred_once(gw: Gateway) -> None:
    """The protect falls due with the kill switch off (the market data held its ATR back
    until then), and later the horizon exit too: one BLOCKED `exit deferred` each, no more
    however many steps pass; once the switch is on, the horizon exit alone."""
    gw.sim("POST", "/_sim/fault", {"mode": "503", "count": -1, "method": "GET", "path": "/v2/stocks"})
    pubsub = outcomes(gw)
    entry = buy(gw, "XLU", 70.0)
    exec_id = entry["execution_id"]
    gw.r.set("key:execution_enabled", "false")
    gw.sim("DELETE", "/_sim/fault")

    def deferred() -> list[tuple[str, str]]:
        return [(r["intent"], r["exit_reason"]) for r in exit_events(gw, exec_id) if r["status"] == "BLOCKED"]

    wait_for(lambda: deferred() == [("protect", "target_stop")], 30, "the protect's deferral")
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    wait_for(lambda: len(deferred()) == 2, 30, "the horizon exit's deferral")
    steps_taken(gw, exec_id, 3)  # three more steps with the switch still off
    assert deferred() == [("protect", "target_stop"), ("exit", "horizon")]
    gw.r.set("key:execution_enabled", "true")
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    assert_one_of_each(gw, entry, protect=0)
    assert len(deferred()) == 2


def test_an_atr_still_unknown_at_the_horizon_is_said_before_the_sale(gw: Gateway) -> None:
    """The market data does not answer, and the horizon comes before its reads are spent:
    the protect is decided then (one SKIPPED, saying so), and the horizon exit alone."""
    gw.sim("POST", "/_sim/fault", {"mode": "503", "count": -1, "method": "GET", "path": "/v2/stocks"})
    pubsub = outcomes(gw)
    entry = buy(gw, "XLC", 60.0)
    exec_id = entry["execution_id"]
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    out = next_outcome(pubsub)
    assert (out["execution_id"], out["outcome"], out["exit_via"]) == (exec_id, "EXPIRED", "horizon")
    settle(gw)
    (skipped,) = [r for r in exit_events(gw, exec_id) if r["intent"] == "protect"]
    assert skipped["status"] == "SKIPPED", skipped
    assert "ATR not known by the horizon" in skipped["reason"], skipped
    assert_one_of_each(gw, entry, protect=0)


def test_no_atr_places_no_oco_says_so_and_sells_at_the_horizon(gw: Gateway) -> None:
    """The market data fails for the ticker's bars at every read: after DATA_TRIES reads,
    no ATR, so no protect (one SKIPPED decision saying why), and the horizon exit alone."""
    gw.sim("POST", "/_sim/fault", {"mode": "500", "count": -1, "method": "GET", "path": "/v2/stocks"})
    pubsub = outcomes(gw)
    entry = buy(gw, "XLV", 120.0)
    exec_id = entry["execution_id"]
    wait_for(lambda: any(r["intent"] == "protect" for r in exit_events(gw, exec_id)), 30, "the protect decision")
    gw.sim("DELETE", "/_sim/fault")
    steps_taken(gw, exec_id, 2)
    (skipped,) = [r for r in exit_events(gw, exec_id) if r["intent"] == "protect"]
    assert skipped["status"] == "SKIPPED", skipped
    assert f"market data unavailable after {DATA_TRIES} tries" in skipped["reason"], skipped
    assert "horizon exit alone" in skipped["reason"], skipped
    assert orders_with(gw, protect_client_order_id(exec_id)) == []
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    assert_one_of_each(gw, entry, protect=0)
