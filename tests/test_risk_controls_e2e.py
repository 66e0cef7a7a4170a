"""Risk controls beyond the seed, through the whole path: daily cap, broker rate limit,
circuit breaker, per-ticker block list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from alpaca_paper_sim import SimServer
from tests.support.gateway import Gateway, collect, isolated_gateway, opportunity, ranking, symbol
from tests.support.procs import health, wait_for

pytestmark = pytest.mark.e2e


def test_eleventh_eligible_order_of_the_day_is_blocked(gw: Gateway) -> None:
    gw.green()
    events = gw.decide(*[ranking(opportunity(symbol("D", i))) for i in range(11)])
    statuses = sorted(e["status"] for e in events)
    assert statuses == ["BLOCKED"] + ["SUBMITTED"] * 10
    blocked = next(e for e in events if e["status"] == "BLOCKED")
    assert blocked["why"][0].startswith("daily cap: 10 orders already on trading day")
    assert len(gw.orders()) == 10


def test_blocklisted_ticker_is_blocked_until_its_expiry(gw: Gateway) -> None:
    gw.green()
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    gw.r.set("key:execution_blocklist:TSLA", json.dumps({"reason": "earnings after close", "until": until}))
    (blocked,) = gw.decide(ranking(opportunity("TSLA")))
    assert blocked["status"] == "BLOCKED" and blocked["why"][0].startswith("blocklist: TSLA blocked until")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    gw.r.set("key:execution_blocklist:TSLA", json.dumps({"reason": "earnings", "until": past}))
    later = datetime.now(UTC) + timedelta(seconds=1)
    (allowed,) = gw.decide(ranking(opportunity("TSLA"), rank_time=later))
    assert allowed["status"] == "SUBMITTED"


@pytest.fixture(scope="module")
def strict(log_dir: Path, sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with a tiny broker budget and no broker retries, on its own Redis."""
    with isolated_gateway(log_dir, sim.url, tmp_path_factory.mktemp("risk"), workers=2, BROKER_REQUESTS_PER_MIN="20",
                          EXIT_BROKER_RESERVE="0", RATE_LIMIT_MAX_WAIT_S="0", BROKER_MAX_RETRIES="0",
                          BREAKER_COOLOFF_S="600") as gw:
        yield gw


@pytest.fixture
def tight(strict: Gateway) -> Gateway:
    strict.reset()
    strict.green()
    return strict


def test_burst_beyond_the_broker_rate_limit_loses_nothing(tight: Gateway) -> None:
    """20 broker calls a minute = 4 orders (5 calls each: position, open orders, the day's
    orders and the asset of a symbol new today, read together, then submit); the rest are
    BLOCKED, none lost."""
    events = tight.decide(*[ranking(opportunity(symbol("R", i, 1))) for i in range(7)])
    statuses = sorted(e["status"] for e in events)
    assert statuses == ["BLOCKED"] * 3 + ["SUBMITTED"] * 4
    assert all(e["why"][0].startswith("rate limit") for e in events if e["status"] == "BLOCKED")
    assert len(tight.orders()) == 4
    assert len(tight.wait_rows(7)) == 7


def test_three_broker_failures_open_the_breaker_and_a_probe_closes_it(tight: Gateway) -> None:
    tight.sim("POST", "/_sim/fault", {"mode": "500", "count": -1, "method": "POST", "path": "/v2/orders"})
    alerts = tight.r.pubsub(ignore_subscribe_messages=True)
    alerts.subscribe("chan:execution_alert")
    failures = tight.decide(*[ranking(opportunity(symbol("B", i, 1))) for i in range(3)])
    assert [e["status"] for e in failures] == ["ERROR"] * 3
    (opened,) = collect(alerts, 1, 10)
    assert opened["type"] == "breaker_opened" and opened["failures"] == 3
    tight.sim("DELETE", "/_sim/fault")  # the broker is fine again, but the breaker stays open
    posts = tight.order_posts()
    (blocked,) = tight.decide(ranking(opportunity("BJ")))
    assert blocked["status"] == "BLOCKED" and blocked["why"][0].startswith("circuit open")
    assert tight.order_posts() == posts  # no order leaves while it is open
    assert tight.r.get("key:execution_enabled") == b"true"  # the kill switch is never touched
    body = wait_for(lambda: (b := health(tight.api_port)[1])["status"] == "degraded" and b, 15, "degraded")
    assert body["checks"]["circuit_breaker"]["ok"] is False
    # time machine: the cool-off is over; the next decision probes the broker and closes it
    state = json.loads(tight.r.get("key:execution_breaker"))
    state["until"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    tight.r.set("key:execution_breaker", json.dumps(state))
    (after,) = tight.decide(ranking(opportunity("BK")))
    assert after["status"] == "SUBMITTED"
    (closed,) = collect(alerts, 1, 10)
    assert closed["type"] == "breaker_closed" and closed["by"] == "probe"
    assert tight.r.get("key:execution_breaker") is None


def test_breaker_stays_open_when_the_probe_fails(tight: Gateway) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    tight.r.set("key:execution_breaker", json.dumps({"state": "OPEN", "since": past, "until": past,
                                                     "reason": "test", "failures": 3}))
    tight.sim("POST", "/_sim/fault", {"mode": "503", "count": -1, "path": "/v2/account"})
    try:
        (event,) = tight.decide(ranking(opportunity("BL")))
    finally:
        tight.sim("DELETE", "/_sim/fault")
    assert event["status"] == "BLOCKED" and event["why"][0].startswith("circuit open")
    assert "probe failed" in event["why"][0]
    assert tight.orders() == []


def test_a_burst_while_the_probe_is_due_probes_the_broker_once(tight: Gateway) -> None:
    """Every ranking of a burst (published in one write, so the bridge hears them as one
    batch) finds the open breaker past its cool-off. The first one's probe fails and opens
    it for a new cool-off; the others are refused by it without probing again."""
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    tight.r.set("key:execution_breaker", json.dumps({"state": "OPEN", "since": past, "until": past,
                                                     "reason": "test", "failures": 3}))
    alerts = tight.r.pubsub(ignore_subscribe_messages=True)
    alerts.subscribe("chan:execution_alert")
    tight.sim("POST", "/_sim/fault", {"mode": "503", "count": -1, "path": "/v2/account"})
    pubsub = tight.subscribe()
    try:
        pipe = tight.r.pipeline(transaction=False)
        for i in range(8):
            pipe.publish("chan:opportunity_update", json.dumps(ranking(opportunity(symbol("P", i, 1)))))
        pipe.execute()
        events = collect(pubsub, 8, 20, tight)
    finally:
        tight.sim("DELETE", "/_sim/fault")
    assert all(e["status"] == "BLOCKED" and e["why"][0].startswith("circuit open") for e in events)
    probes = [a for a in collect(alerts, 1, 10) + tight.nothing_more(alerts) if a["type"] == "breaker_probe_failed"]
    assert len(probes) == 1 and tight.orders() == []


# order status follow-up and reconcile ------------------------------------------------
def test_filled_status_reaches_the_audit(gw: Gateway) -> None:
    gw.green()
    gw.sim("POST", "/_sim/config", {"fill": "manual"})
    (event,) = gw.decide(ranking(opportunity("FILL")))
    assert event["status"] == "SUBMITTED"
    wait_for(lambda: gw.rows()[0]["order_status"] == "new", 20, "status 'new' followed up")
    gw.sim("POST", f"/_sim/orders/{event['alpaca_order_id']}/fill")
    wait_for(lambda: gw.rows()[0]["order_status"] == "filled", 30, "status 'filled' followed up")


def cli_env(gw: Gateway) -> dict[str, str]:
    return {**gw.env, "ZERO_ENV_FILE": "/nonexistent"}


def run_cli(gw: Gateway, *args: str) -> Result:
    from zero_ops.cli import main

    result = CliRunner().invoke(main, list(args), env=cli_env(gw))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_reconcile_finds_an_order_behind_the_gateways_back_and_a_row_without_order(gw: Gateway) -> None:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    gw.green()
    (ours,) = gw.decide(ranking(opportunity("OURS")))
    assert ours["status"] == "SUBMITTED"
    client = TradingClient("test-key-id", "test-secret-value", paper=True, url_override=gw.sim_url)
    rogue = client.submit_order(MarketOrderRequest(symbol="ROGUE", qty=1, side=OrderSide.BUY,
                                                   time_in_force=TimeInForce.DAY))
    # an audit row whose order the broker never saw (written straight into the table)
    from zero_tasks.adapters.audit import insert_rows
    ghost = dict(gw.wait_rows(1)[0])
    ghost.update(event_key="ghost-1", execution_id="GHOST:H30:x", ticker="GHOST", client_order_id="zx-GHOST:H30:x",
                 alpaca_order_id="00000000-0000-0000-0000-000000000000")
    ghost.pop("created_at")
    insert_rows(gw.engine, [ghost])
    pubsub = gw.subscribe()
    result = run_cli(gw, "reconcile", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    kinds = {(f["kind"], f["ticker"]) for f in report["findings"]}
    assert kinds == {("unknown order", "ROGUE"), ("missing order", "GHOST")}
    events = collect(pubsub, 2, 10, gw)
    assert {e["status"] for e in events} == {"ERROR"}
    assert all(e["why"][0].startswith("error: reconcile: ") for e in events)
    rows = gw.wait_rows(2, status="ERROR")
    assert {r["ticker"] for r in rows} == {"ROGUE", "GHOST"}
    assert str(rogue.id) in next(r for r in rows if r["ticker"] == "ROGUE")["reason"]
    again = run_cli(gw, "reconcile", "--json")  # a second run reports the same findings, records none again
    assert len(json.loads(again.output)["findings"]) == 2
    assert gw.nothing_more(pubsub) == []
    assert len(gw.rows(status="ERROR")) == 2
    assert len(gw.orders()) == 2  # reconcile never places or cancels anything


def test_operator_closes_the_breaker_and_blocks_a_ticker_from_the_cli(gw: Gateway) -> None:
    gw.green()
    gw.r.set("key:execution_breaker", json.dumps({"state": "OPEN", "since": "x", "until": "2999-01-01T00:00:00+00:00",
                                                  "reason": "test"}))
    (blocked,) = gw.decide(ranking(opportunity("OPX")))
    assert blocked["why"][0].startswith("circuit open")
    assert run_cli(gw, "breaker", "close", "--yes").exit_code == 0
    assert run_cli(gw, "block", "OPY", "--for", "2h", "--reason", "earnings").exit_code == 0
    later = datetime.now(UTC) + timedelta(seconds=1)
    first, second = gw.decide(ranking(opportunity("OPX"), rank_time=later), ranking(opportunity("OPY")))
    by_ticker = {e["ticker"]: e for e in (first, second)}
    assert by_ticker["OPX"]["status"] == "SUBMITTED"
    assert by_ticker["OPY"]["why"][0].startswith("blocklist: OPY blocked until")
    assert gw.r.ttl("key:execution_blocklist:OPY") > 7000
    status = json.loads(run_cli(gw, "status", "--json").output)
    assert status["risk"]["breaker"] is None and "OPY" in status["risk"]["blocklist"]
    assert status["risk"]["orders_today"] == 1
    assert run_cli(gw, "unblock", "OPY").exit_code == 0
    assert gw.r.get("key:execution_blocklist:OPY") is None
