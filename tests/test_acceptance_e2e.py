"""The seed's acceptance criteria and the broker retry rules, through the whole path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from alpaca_paper_sim import SimServer
from tests.support.gateway import (
    YESTERDAY_S,
    Gateway,
    collect,
    isolated_gateway,
    market,
    now_iso,
    opportunity,
    ranking,
)
from tests.support.procs import wait_for
from zero_tasks.core.pipeline import AT_SUBMIT

pytestmark = [pytest.mark.e2e, pytest.mark.guarantee]


@pytest.mark.parametrize("kill_switch", [None, "false", "TRUE", "garbage"])
def test_kill_switch_not_true_means_no_order_ever(gw: Gateway, kill_switch: str | None) -> None:
    gw.r.set("key:market_state", market("GREEN"))
    if kill_switch is not None:
        gw.r.set("key:execution_enabled", kill_switch)
    events = gw.decide(*[ranking(opportunity(t)) for t in ("SPY", "QQQ", "IWM")])
    assert {e["status"] for e in events} == {"BLOCKED"}
    assert gw.order_posts() == 0 and gw.orders() == []


@pytest.mark.parametrize("state",
                         [market("RED"), market("YELLOW"), None, market("GREEN", age_s=YESTERDAY_S), "{garbage"])
def test_market_not_fresh_green_means_no_order(gw: Gateway, state: str | None) -> None:
    gw.r.set("key:execution_enabled", "true")
    if state is not None:
        gw.r.set("key:market_state", state)
    events = gw.decide(*[ranking(opportunity(t)) for t in ("SPY", "QQQ")])
    assert {e["status"] for e in events} == {"BLOCKED"}
    assert all(e["why"][0].startswith("market state") for e in events)
    assert gw.order_posts() == 0


def test_same_ranking_published_five_times_with_two_workers_gives_one_order(gw: Gateway) -> None:
    assert len([w for w in gw.workers if w.alive()]) == 2
    gw.green()
    rank = ranking(opportunity("SPY"))
    events = gw.decide(*[rank] * 5)
    statuses = sorted(e["status"] for e in events)
    assert statuses == ["SKIPPED"] * 4 + ["SUBMITTED"]
    assert [e["why"][0].split(":")[0] for e in events if e["status"] == "SKIPPED"] == ["duplicate"] * 4
    assert len(gw.orders()) == 1
    assert len(gw.wait_rows(5)) == 5
    assert {e["execution_id"] for e in events} == {events[0]["execution_id"]}


def test_every_message_is_one_row_and_one_event(gw: Gateway) -> None:
    gw.green()
    old = datetime.now(UTC) - timedelta(minutes=5)
    messages = [
        ranking(opportunity("SPY")), ranking(opportunity("SPY")),  # submitted, then duplicate
        ranking(opportunity("QQQ", probability=0.5)), ranking(opportunity("DIA"), rank_time=old),
        b"\x00\xff not json", json.dumps(ranking(opportunities=[])), ranking(opportunity("IWM")),
    ]
    pubsub = gw.subscribe()
    for message in messages:
        gw.publish(message)
    events = collect(pubsub, len(messages), 20, gw)
    assert gw.nothing_more(pubsub) == []  # nothing more than one event per message
    rows = gw.wait_rows(len(messages))
    assert len(rows) == len(messages)
    assert sorted(r["event_key"] for r in rows) == sorted(e["decision_id"] for e in events)
    assert sorted(e["status"] for e in events) == sorted(
        ["SUBMITTED", "SKIPPED", "BLOCKED", "SKIPPED", "SKIPPED", "SKIPPED", "SUBMITTED"])


def test_cooldown_race_two_ids_one_ticker_concurrently_gives_one_order(gw: Gateway) -> None:
    gw.green()
    now = datetime.now(UTC)
    a = ranking(opportunity("AAPL"), rank_time=now)
    b = ranking(opportunity("AAPL", horizon="H2H"), rank_time=now, horizon="H2H")
    events = gw.decide(a, b)
    assert len({e["execution_id"] for e in events}) == 2
    assert sorted(e["status"] for e in events) == ["SKIPPED", "SUBMITTED"]
    skipped = next(e for e in events if e["status"] == "SKIPPED")
    assert skipped["why"][0].startswith("cooldown")
    assert len(gw.orders()) == 1


@pytest.mark.parametrize("fault", ["500", "503", "429", "drop"])
def test_broker_transient_then_success_gives_one_order(gw: Gateway, fault: str) -> None:
    gw.green()
    gw.sim("POST", "/_sim/fault", {"mode": fault, "method": "POST", "path": "/v2/orders", "retry_after": 0})
    (event,) = gw.decide(ranking(opportunity("XOM")))
    assert event["status"] == "SUBMITTED"
    assert gw.order_posts() == 2  # the failed POST and one resubmit after a lookup
    assert len(gw.orders()) == 1


@pytest.mark.parametrize("fault", ["accept_then_500", "accept_then_drop"])
def test_order_accepted_but_answer_lost_is_found_not_resubmitted(gw: Gateway, fault: str) -> None:
    gw.green()
    gw.sim("POST", "/_sim/fault", {"mode": fault, "method": "POST", "path": "/v2/orders"})
    (event,) = gw.decide(ranking(opportunity("CVX")))
    assert event["status"] == "SUBMITTED"
    assert "found by client_order_id" in event["why"][0]
    assert gw.order_posts() == 1
    (order,) = gw.orders()
    assert event["alpaca_order_id"] == order["id"]


def test_reused_client_order_id_422_is_treated_as_already_placed(gw: Gateway) -> None:
    gw.green()
    rank = ranking(opportunity("KO"))
    exec_id = f"KO:H30:{datetime.fromisoformat(rank['rank_time']):%Y-%m-%dT%H:%M:%S}"
    client = TradingClient("test-key-id", "test-secret-value", paper=True, url_override=gw.sim_url)
    gw.sim("POST", "/_sim/config", {"fill": "manual"})
    placed = client.submit_order(MarketOrderRequest(symbol="KO", qty=1, side=OrderSide.BUY,
                                                    time_in_force=TimeInForce.DAY, client_order_id="zx-" + exec_id))
    gw.sim("POST", f"/_sim/orders/{placed.id}/cancel")  # not an open order, so only the 422 path applies
    (event,) = gw.decide(rank)
    assert event["status"] == "SUBMITTED" and "422" in event["why"][0]
    assert event["alpaca_order_id"] == str(placed.id)
    assert len(gw.orders()) == 1


def test_slow_broker_beyond_timeout_is_retried_without_a_second_order(gw: Gateway) -> None:
    gw.green()
    gw.sim("POST", "/_sim/fault", {"mode": "accept_then_slow", "method": "POST", "path": "/v2/orders", "delay": 2.5})
    (event,) = gw.decide(ranking(opportunity("PEP")))
    assert event["status"] == "SUBMITTED"
    assert len(gw.orders()) == 1


def test_kill_switch_turned_off_between_broker_retries_stops_the_order(gw: Gateway) -> None:
    """The retry path (zero.place_order) reads the kill switch again before it submits."""
    from tests.support.procs import wait_for

    gw.green()
    rank = ranking(opportunity("KSW"))
    exec_id = f"KSW:H30:{datetime.fromisoformat(rank['rank_time']):%Y-%m-%dT%H:%M:%S}"
    gw.sim("POST", "/_sim/fault", {"mode": "503", "method": "POST", "path": "/v2/orders"})
    # the retry's lookup of this order (only this one: an earlier test's order follow-up may
    # look up its own order meanwhile) answers after 3 s, past the client timeout: the switch
    # is off long before the next retry can submit, even on a loaded machine
    gw.sim("POST", "/_sim/fault", {"mode": "slow", "delay": 3.0, "method": "GET",
                                   "path": "/v2/orders:by_client_order_id",
                                   "query": {"client_order_id": "zx-" + exec_id}})
    pubsub = gw.subscribe()
    gw.publish(rank)
    wait_for(lambda: gw.order_posts() >= 1, 60, "the first POST refused")
    gw.r.set("key:execution_enabled", "false")
    assert gw.order_posts() == 1, "the retry submitted before the switch could be turned off"
    (event,) = collect(pubsub, 1, 30, gw)
    assert event["status"] == "BLOCKED" and event["why"][0].startswith("execution disabled: at submit")
    assert gw.order_posts() == 1 and gw.orders() == []
    assert gw.r.get("key:execution_seen:" + event["execution_id"]) is None  # no order: the id is given back


@pytest.mark.parametrize("turn, reason", [
    (("key:execution_enabled", "false"), "execution disabled: at submit"),
    (("key:market_state", market("RED")), "market state: at submit"),
    (("key:stand_down_reason", json.dumps({"reason": "FOMC", "scope": "GLOBAL", "expires_at": now_iso(86400)})),
     "stand-down: at submit"),
    (("key:stand_down_reason", json.dumps({"reason": "halt", "scope": "TICKER", "ticker": "KSS"})),
     "stand-down: at submit"),
    (("key:execution_blocklist:KSS", json.dumps({"until": now_iso(86400), "reason": "earnings"})),
     "blocklist: at submit"),
    (("key:execution_breaker", json.dumps({"since": now_iso(), "reason": "operator"})), "circuit open: at submit"),
], ids=["kill_switch_off", "market_red", "stand_down_global", "stand_down_ticker", "blocklist", "breaker"])
def test_veto_turning_while_the_broker_is_slow_to_answer_row_9_stops_the_order(
        gw: Gateway, turn: tuple[str, str], reason: str) -> None:
    """The re-read before submit is asked early (while row 9's reads travel), but a slow
    broker makes it stale: it is read again, and the kill switch turned off, or the market
    turned RED, meanwhile holds."""
    from tests.support.procs import wait_for

    gw.green()
    open_orders = lambda: gw.sim("GET", "/_sim/stats")["requests"].get("GET /v2/orders", 0)  # noqa: E731
    gw.sim("POST", "/_sim/fault", {"mode": "slow", "delay": 1.0, "method": "GET", "path": "/v2/orders",
                                   "query": {"symbols": "KSS"}})
    before = open_orders()
    pubsub = gw.subscribe()
    gw.publish(ranking(opportunity("KSS")))
    wait_for(lambda: open_orders() > before, 30, "row 9's open-orders read at the broker")
    gw.r.set(*turn)
    (event,) = collect(pubsub, 1, 30, gw)
    assert event["status"] == "BLOCKED" and event["why"][0].startswith(reason)
    assert gw.order_posts() == 0 and gw.orders() == []
    assert gw.r.get("key:execution_seen:" + event["execution_id"]) is None  # reservations given back
    assert gw.r.get("key:execution_cooldown:KSS") is None


def test_the_bridge_decides_nothing_every_message_goes_to_the_worker(gw: Gateway) -> None:
    """Refusals too, and unreadable bytes: the bridge hands every message over, and the
    worker keeps the table's order (the kill switch, row 2, wins over the threshold, row 5)."""
    from tests.support.procs import health

    before = health(gw.api_port)[1]["bridge"]
    assert "decided" not in before
    gw.r.set("key:market_state", market("GREEN"))  # kill switch unset: BLOCKED
    events = gw.decide(ranking(opportunity("QQQ", probability=0.5)), b"\xff not json")
    by_status = {e["status"]: e for e in events}
    assert sorted(by_status) == ["BLOCKED", "SKIPPED"]
    assert by_status["BLOCKED"]["why"][0].startswith("execution disabled")
    after = health(gw.api_port)[1]["bridge"]
    assert after["enqueued"] - before["enqueued"] == 2
    assert len(gw.wait_rows(2)) == 2


def test_an_eligible_signal_goes_to_the_worker_and_is_ordered(gw: Gateway) -> None:
    from tests.support.procs import health

    before = health(gw.api_port)[1]["bridge"]
    gw.green()
    (event,) = gw.decide(ranking(opportunity("SPY")))
    assert event["status"] == "SUBMITTED"
    after = health(gw.api_port)[1]["bridge"]
    assert after["enqueued"] - before["enqueued"] == 1


def test_the_kill_switch_turned_off_while_a_burst_is_at_the_broker_stops_its_later_orders(
        log_dir: Path, sim: SimServer, tmp_path: Path) -> None:
    """Two eligible rankings heard together (one batch, or two tasks one after the other on
    a single worker process): while the first one's order is at the broker (its answer held
    1 s), the operator turns the kill switch off. The second is BLOCKED by the veto before
    its claim: it is judged on a snapshot read after the first order's round, never on the
    batch's first read (row 9a's read at the submit would catch it here, but not where the
    account mirror answers row 9 from that first read)."""
    with isolated_gateway(log_dir, sim.url, tmp_path, workers=1) as gw:
        gw.reset()
        gw.green()
        posts = gw.order_posts()
        gw.sim("POST", "/_sim/fault", {"mode": "accept_then_slow", "count": 1, "method": "POST",
                                       "path": "/v2/orders", "delay": 1.0})
        pubsub = gw.subscribe()
        pipe = gw.r.pipeline(transaction=False)
        for ticker in ("KSWA", "KSWB"):
            pipe.publish("chan:opportunity_update", json.dumps(ranking(opportunity(ticker))))
        pipe.execute()
        wait_for(lambda: gw.order_posts() > posts, 10, "the first order at the broker")
        gw.r.set("key:execution_enabled", "false")
        by_ticker = {e["ticker"]: e for e in collect(pubsub, 2, 30, gw)}
        assert by_ticker["KSWA"]["status"] == "SUBMITTED"
        assert by_ticker["KSWB"]["status"] == "BLOCKED"
        why = by_ticker["KSWB"]["why"][0]
        assert why.startswith("execution disabled") and AT_SUBMIT not in why, why  # refused before its claim
        assert gw.order_posts() == posts + 1 and [o["symbol"] for o in gw.orders()] == ["KSWA"]


def test_audit_writers_run_in_the_pool_processes_not_in_the_worker_main_process(gw: Gateway) -> None:
    """The main process dispatches tasks; a writer there would slow every order (and it forks)."""
    import re

    from tests.support.procs import wait_for

    def started() -> set[int]:
        return {int(pid) for w in gw.workers for pid in re.findall(r"audit writer [^ :]+:(\d+) started", w.output())}

    pids = wait_for(lambda: started() if len(started()) >= len(gw.workers) else None, 20,
                    "a writer in every pool process (-c 1 each)")
    assert pids.isdisjoint({w.pid for w in gw.workers})
