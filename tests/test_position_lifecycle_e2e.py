"""The position lifecycle through the real processes: a bridge, a worker, a Celery beat
and the simulator's moving prices and clock.

The lifecycle keeps the broker's time (worker/lifecycle.py), so moving the simulator's
clock on moves a position to its horizon; prices are pinned through the simulator's admin
API to make a leg of the protect fill. "Exactly one" is counted once the system is quiet:
the lifecycle finished (nothing left in the due set) and a few more ticks gone by.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import select

from alpaca_paper_sim import SimServer, open_market
from tests.support.gateway import Gateway, collect, drain, isolated_gateway, market, opportunity, ranking
from tests.support.lifecycle import steps_taken
from tests.support.procs import CELERY, Proc, wait_for
from tests.support.quiescence import lifecycle_due
from tests.support.zero_models import accepted_by_zero
from zero_tasks.adapters.audit import execution_outcome
from zero_tasks.core.contract import exit_client_order_id, protect_client_order_id

pytestmark = [pytest.mark.e2e]

DUE_SET = "key:execution_lifecycle_due"


@pytest.fixture(scope="module")
def lifecycle_sim() -> Iterator[SimServer]:
    """A simulator of this module's own: its clock is moved on here."""
    server = SimServer(state=open_market()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lgw(log_dir: Path, lifecycle_sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    # TASK_TIME_LIMIT_S: a step's claim and lease run out sooner after the SIGKILL test's kill
    with isolated_gateway(log_dir, lifecycle_sim.url, tmp, workers=1, LIFECYCLE_TICK_S="1",
                          LIFECYCLE_LOOK_EVERY_S="2", TASK_TIME_LIMIT_S="10") as gw:
        beat = Proc(f"beat-{gw.api_port}", [CELERY, "-A", "zero_tasks", "beat", "-s", str(tmp / "beat-schedule"),
                                           "-l", "INFO"], gw.env, log_dir).start()
        gw.quiescence.add("lifecycle", lambda: lifecycle_due(gw.r))
        try:
            yield gw
        finally:
            beat.stop()


@pytest.fixture
def gw(lgw: Gateway) -> Gateway:
    lgw.revive()
    lgw.green()
    return lgw


def outcomes(gw: Gateway) -> redis.client.PubSub:
    pubsub = gw.r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("chan:execution_outcome")
    wait_for(lambda: pubsub.get_message(timeout=0.1) is None and pubsub.subscribed, 5, "subscription")
    return pubsub


def next_outcome(pubsub: redis.client.PubSub, timeout: float = 60) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            found.append(json.loads(message["data"]))
        return bool(found)

    wait_for(arrived, timeout, "an execution outcome")
    return found[0]


def enter(gw: Gateway, ticker: str, price: float) -> dict[str, Any]:
    """A rank-1 LONG bought at `price`: its SUBMITTED entry event. Once the gateway has
    settled, the entry's fill has been protected: exactly one more event, its protect."""
    gw.sim("POST", "/_sim/prices", {ticker: price})
    pubsub = gw.subscribe()
    try:
        gw.publish(ranking(opportunity(ticker)))
        (entry,) = collect(pubsub, 1, 30)  # the entry alone: its protect follows the fill
        gw.settle()
        after = drain(pubsub)
    finally:
        pubsub.close()
    assert entry["status"] == "SUBMITTED", entry
    assert entry["intent"] == "entry" and entry["side"] == "buy"
    assert [(e["execution_id"], e["intent"], e["status"]) for e in after] == [
        (entry["execution_id"], "protect", "SUBMITTED")], after
    return entry


def orders_with(gw: Gateway, client_order_id: str) -> list[dict[str, Any]]:
    return [o for o in gw.orders() if o["client_order_id"] == client_order_id]


def protect_of(gw: Gateway, execution_id: str) -> dict[str, Any]:
    """The protect OCO once the lifecycle has placed it (its legs nested)."""
    cid = protect_client_order_id(execution_id)
    wait_for(lambda: orders_with(gw, cid), 30, "the protect OCO")
    (oco,) = orders_with(gw, cid)
    return oco


def prices_of(oco: dict[str, Any]) -> tuple[float, float]:
    legs = [oco, *(oco.get("legs") or [])]
    limit = next(float(o["limit_price"]) for o in legs if o["type"] == "limit")
    stop = next(float(o["stop_price"]) for o in legs if o["type"] == "stop")
    return limit, stop


def settle(gw: Gateway) -> None:
    """The lifecycle finished (nothing left in the due set) and the gateway settled: what a
    test counts afterwards can no longer grow."""
    wait_for(lambda: gw.r.zcard(DUE_SET) == 0, 30, "the lifecycle finished")
    gw.settle()


def outcome_rows(gw: Gateway, execution_id: str) -> list[dict[str, Any]]:
    with gw.engine.connect() as conn:
        query = select(execution_outcome).where(execution_outcome.c.execution_id == execution_id)
        return [dict(r._mapping) for r in conn.execute(query)]


def exit_events(gw: Gateway, execution_id: str) -> list[dict[str, Any]]:
    return [r for r in gw.rows(execution_id=execution_id) if r["intent"] in ("protect", "exit")]


def test_target_first_is_pass_with_pnl_limit_minus_fill(gw: Gateway) -> None:
    pubsub = outcomes(gw)
    entry = enter(gw, "SPY", 100.0)
    limit, stop = prices_of(protect_of(gw, entry["execution_id"]))
    assert stop < 100.0 < limit
    gw.sim("POST", "/_sim/prices", {"SPY": limit})  # touches the limit: the leg fills there
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"], out["entry_price"]) == ("PASS", "target", 100.0)
    assert out["realized_pnl"] == pytest.approx(limit - 100.0, abs=1e-6)
    settle(gw)
    assert len(outcome_rows(gw, entry["execution_id"])) == 1
    (protect,) = [r for r in exit_events(gw, entry["execution_id"]) if r["status"] == "SUBMITTED"]
    assert (protect["intent"], protect["side"], protect["exit_reason"]) == ("protect", "sell", "target_stop")
    assert orders_with(gw, exit_client_order_id(entry["execution_id"])) == []


def test_stop_first_is_fail(gw: Gateway) -> None:
    pubsub = outcomes(gw)
    entry = enter(gw, "QQQ", 200.0)
    _, stop = prices_of(protect_of(gw, entry["execution_id"]))
    gw.sim("POST", "/_sim/prices", {"QQQ": stop - 0.05})
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"]) == ("FAIL", "stop")
    assert out["realized_pnl"] < 0
    settle(gw)
    assert len(outcome_rows(gw, entry["execution_id"])) == 1


def test_neither_leg_is_expired_at_the_horizon(gw: Gateway) -> None:
    pubsub = outcomes(gw)
    updates = gw.subscribe()
    entry = enter(gw, "IWM", 50.0)
    protect_of(gw, entry["execution_id"])
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    (sell,) = orders_with(gw, exit_client_order_id(entry["execution_id"]))
    assert sell["side"] == "sell" and float(sell["qty"]) == 1
    (oco,) = orders_with(gw, protect_client_order_id(entry["execution_id"]))
    assert oco["status"] == "canceled"
    exits = [r for r in exit_events(gw, entry["execution_id"]) if r["intent"] == "exit"]
    assert [(r["status"], r["side"], r["exit_reason"]) for r in exits] == [("SUBMITTED", "sell", "horizon")]
    events = drain(updates)  # every event of this execution, as published (settled above)
    assert [(e["intent"], e["side"], e["exit_reason"]) for e in events] == [
        ("entry", "buy", None), ("protect", "sell", "target_stop"), ("exit", "sell", "horizon")]
    for event in events:
        assert accepted_by_zero(event).execution_id == entry["execution_id"]


@pytest.mark.parametrize("shut, reopen, why", [
    (("key:execution_enabled", "false"), ("key:execution_enabled", "true"), "execution disabled"),
    (("key:market_state", market("RED")), ("key:market_state", market("GREEN")), "market state: RED"),
], ids=["kill switch off", "market RED"])
def test_a_horizon_exit_the_gate_forbids_is_deferred_once_then_leaves_when_allowed(
        gw: Gateway, shut: tuple[str, str], reopen: tuple[str, str], why: str) -> None:
    pubsub = outcomes(gw)
    entry = enter(gw, "DIA", 300.0)
    protect_of(gw, entry["execution_id"])
    gw.r.set(*shut)
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    wait_for(lambda: any(r["status"] == "BLOCKED" for r in exit_events(gw, entry["execution_id"])), 30,
             "the deferral")
    steps_taken(gw, entry["execution_id"], 3)  # three more steps with the gate still shut
    deferred = [r for r in exit_events(gw, entry["execution_id"]) if r["status"] == "BLOCKED"]
    assert len(deferred) == 1
    assert deferred[0]["reason"].startswith(f"exit deferred: horizon exit: {why}"), deferred[0]["reason"]
    assert (deferred[0]["intent"], deferred[0]["side"], deferred[0]["exit_reason"]) == ("exit", "sell", "horizon")
    assert orders_with(gw, exit_client_order_id(entry["execution_id"])) == []
    (oco,) = orders_with(gw, protect_client_order_id(entry["execution_id"]))
    assert oco["status"] != "canceled"  # nothing done while the gate is shut, the cancel included
    gw.r.set(*reopen)
    out = next_outcome(pubsub)
    assert out["outcome"] == "EXPIRED"
    settle(gw)
    assert len(orders_with(gw, exit_client_order_id(entry["execution_id"]))) == 1


@pytest.mark.guarantee
@pytest.mark.parametrize("failpoint", ["after_exit_cancel", "after_exit_submit"])
def test_a_worker_killed_between_the_cancel_and_the_sell_sells_once(gw: Gateway, tmp_path: Path,
                                                                     failpoint: str) -> None:
    """Killed after the cancel (no sell yet), or after the broker took the sell (not yet
    recorded): either way one sell, one SUBMITTED exit decision, one outcome."""
    marker = tmp_path / "fired"
    gw.restart(gw.workers[0], ZERO_FAILPOINTS=f"{failpoint}:{marker}")
    gw.wait_ready()
    pubsub = outcomes(gw)
    entry = enter(gw, "XLK", 150.0)
    protect_of(gw, entry["execution_id"])
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    wait_for(lambda: marker.exists() and not gw.workers[0].alive(), 60, f"the failpoint {failpoint}")
    (oco,) = orders_with(gw, protect_client_order_id(entry["execution_id"]))
    sold = orders_with(gw, exit_client_order_id(entry["execution_id"]))
    assert oco["status"] == "canceled" and len(sold) == (failpoint == "after_exit_submit")
    gw.restart(gw.workers[0], ZERO_FAILPOINTS="")
    out = next_outcome(pubsub, timeout=120)
    assert (out["outcome"], out["exit_via"]) == ("EXPIRED", "horizon")
    settle(gw)
    assert len(orders_with(gw, exit_client_order_id(entry["execution_id"]))) == 1
    exits = [r for r in exit_events(gw, entry["execution_id"]) if r["intent"] == "exit"]
    assert [r["status"] for r in exits] == ["SUBMITTED"]


def test_a_share_sold_by_hand_is_not_sold_again_and_nothing_goes_short(gw: Gateway) -> None:
    pubsub = outcomes(gw)
    entry = enter(gw, "XLF", 40.0)
    oco = protect_of(gw, entry["execution_id"])
    headers = {"APCA-API-KEY-ID": gw.env["ALPACA_API_KEY"], "APCA-API-SECRET-KEY": gw.env["ALPACA_SECRET_KEY"]}
    import requests

    assert requests.delete(f"{gw.sim_url}/v2/orders/{oco['id']}", headers=headers, timeout=10).status_code < 300
    sold = requests.post(f"{gw.sim_url}/v2/orders", headers=headers, timeout=10, json={
        "symbol": "XLF", "qty": "1", "side": "sell", "type": "market", "time_in_force": "day",
        "client_order_id": "by-hand-1"})
    assert sold.status_code < 300, sold.text
    out = next_outcome(pubsub)
    assert (out["outcome"], out["exit_via"]) == (None, "manual")
    gw.sim("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
    settle(gw)
    assert orders_with(gw, exit_client_order_id(entry["execution_id"])) == []
    positions = requests.get(f"{gw.sim_url}/v2/positions", headers=headers, timeout=10).json()
    assert [p for p in positions if p["symbol"] == "XLF"] == []


def test_a_forged_lifecycle_task_calls_no_broker(gw: Gateway) -> None:
    app = Celery("forger", broker=f"redis://127.0.0.1:{gw.redis_server.port}/0")
    try:
        pubsub = gw.subscribe()
        posts = gw.order_posts()
        app.send_task("zero.lifecycle_step", args=[{"execution_id": "SPY:H30:2026-12-07T15:00:00"}],
                      queue="zero_execution")
        (event,) = collect(pubsub, 1, 30, gw)
        assert event["status"] == "ERROR" and event["why"][0].startswith("error: forged task zero.lifecycle_step")
        assert gw.order_posts() == posts and gw.orders() == []
    finally:
        app.close()


def test_the_ticker_trades_again_after_the_exit_and_the_cooldown(gw: Gateway) -> None:
    pubsub = outcomes(gw)
    entry = enter(gw, "XLE", 80.0)
    limit, _ = prices_of(protect_of(gw, entry["execution_id"]))
    gw.sim("POST", "/_sim/prices", {"XLE": limit + 0.05})
    assert next_outcome(pubsub)["outcome"] == "PASS"
    settle(gw)
    gw.r.delete("key:execution_cooldown:XLE")  # the 60 minutes gone by
    again = enter(gw, "XLE", 81.0)
    assert again["execution_id"] != entry["execution_id"]


@pytest.mark.guarantee
def test_a_hand_written_lifecycle_record_sells_nothing(gw: Gateway) -> None:
    """A Redis key has no authority: a record moved to an early horizon by hand, unsealed,
    is refused (one ERROR decision, off the schedule), and nothing is canceled or sold."""
    entry = enter(gw, "XLV", 120.0)
    exec_id = entry["execution_id"]
    protect_of(gw, exec_id)
    key = f"key:execution_lifecycle:{exec_id}"
    record = json.loads(gw.r.hget(key, "record"))
    record["due_at"] = "2000-01-01T00:00:00+00:00"
    pubsub = gw.subscribe()
    gw.r.hset(key, "record", json.dumps(record))
    gw.r.zadd(DUE_SET, {exec_id: 0})
    (event,) = collect(pubsub, 1, 30, gw)
    assert event["status"] == "ERROR" and event["why"][0].startswith("error: forged task lifecycle record"), event
    settle(gw)
    assert orders_with(gw, exit_client_order_id(exec_id)) == []
    (oco,) = orders_with(gw, protect_client_order_id(exec_id))
    assert oco["status"] != "canceled"
