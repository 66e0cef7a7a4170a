"""Issue 25, a red-team pass: each finding that did not hold, through a real bridge, worker
and simulator (the operator CLI's are in test_ops_cli.py, /health's in test_health_e2e.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from alpaca_paper_sim import SimServer
from tests.support.gateway import Gateway, collect, isolated_gateway, opportunity, ranking
from tests.support.procs import ROOT, TEST_SIGNING_KEY, health, wait_for
from zero_tasks.adapters.risk import trading_day
from zero_tasks.core.session import TradingSession
from zero_tasks.secrets import MASK

pytestmark = pytest.mark.e2e


def why_ranking(ticker: str, line: str) -> dict[str, Any]:
    return ranking(opportunity(ticker, why=[line]))


# --- finding 5: the scrubber is no oracle ------------------------------------------------

def test_a_why_line_ending_in_part_of_a_secret_comes_back_unchanged_right_guess_or_wrong(gw: Gateway) -> None:
    """Guessing a secret's next character would need the masked and the unmasked answer to
    differ; only a whole secret is masked, so a right and a wrong guess look alike."""
    guesses = {"ORCA": TEST_SIGNING_KEY[:6], "ORCB": TEST_SIGNING_KEY[:12], "ORCC": TEST_SIGNING_KEY[:-1],
               "ORCD": "test-tXsk", "ORCE": TEST_SIGNING_KEY[:6] + "X"}
    events = gw.decide(*(why_ranking(t, f"echoed {g}") for t, g in guesses.items()))
    by_ticker = {e["ticker"]: e for e in events}
    for ticker, guess in guesses.items():
        assert by_ticker[ticker]["why"][1:] == [f"echoed {guess}"], by_ticker[ticker]


def test_a_whole_secret_is_masked_in_the_event_and_in_the_stored_payload(gw: Gateway) -> None:
    [event] = gw.decide(why_ranking("ORCF", f"echoed {TEST_SIGNING_KEY} here"))
    assert event["why"][1:] == [f"echoed {MASK} here"]
    [row] = gw.wait_rows(1, ticker="ORCF")
    stored = json.dumps(row["payload"])
    assert TEST_SIGNING_KEY not in stored and f"echoed {MASK} here" in stored, stored


# --- finding 2: a forged trading session ----------------------------------------------------

SATURDAY_NOON = "2026-11-28T17:00:00+00:00"  # the simulator's market is closed


def forged_open_session(**extra: Any) -> str:
    now = datetime.now(UTC)
    body = json.loads(TradingSession(True, now - timedelta(hours=1), datetime(2030, 1, 1, tzinfo=UTC), None,
                                     now).to_json())
    return json.dumps({**body, **extra})


@pytest.mark.parametrize("forged", [forged_open_session(),
                                    forged_open_session(sealed_at=datetime.now(UTC).isoformat(), seal="0" * 64)],
                         ids=["unsealed", "sealed_with_another_key"])
def test_a_forged_open_session_neither_opens_the_market_nor_shows_open(gw: Gateway, forged: str) -> None:
    """The finding: with the broker saying closed, SET key:execution_session to an open
    session until 2030 gave SUBMITTED, and /health showed the market open."""
    gw.market_hours(SATURDAY_NOON)
    gw.r.set("key:execution_session", forged)
    gw.green()
    assert health(gw.api_port)[1]["trading_session"] is None  # refused: shown as not known
    [event] = gw.decide(ranking(opportunity("FAKE")))
    assert event["status"] == "BLOCKED" and "market closed" in event["why"][0], event
    assert gw.order_posts() == 0
    assert health(gw.api_port)[1]["trading_session"]["is_open"] is False  # the broker's own answer, kept sealed


# --- finding 3: the daily cap is the broker's count too -------------------------------------

def entries(gw: Gateway, tickers: list[str]) -> list[dict[str, Any]]:
    return gw.decide(*(ranking(opportunity(t)) for t in tickers), timeout=60)


def test_deleting_the_redis_day_count_does_not_lift_the_daily_cap(gw: Gateway) -> None:
    """The finding: after 10 orders, DEL key:execution_daily_orders:<day> allowed an 11th.
    The broker's own list of the day's `zx-` orders says 10: BLOCKED `daily cap`."""
    gw.green()
    placed = entries(gw, [f"CAP{c}" for c in "ABCDEFGHIJ"])
    assert [e["status"] for e in placed] == ["SUBMITTED"] * 10, placed
    for key in gw.r.scan_iter("key:execution_daily_orders:*"):
        gw.r.delete(key)
    [eleventh] = gw.decide(ranking(opportunity("CAPK")))
    assert eleventh["status"] == "BLOCKED", eleventh
    assert eleventh["why"][0].startswith("daily cap: 10 entry orders at the broker"), eleventh
    assert len(gw.orders()) == 10


def test_exit_orders_at_the_broker_do_not_count_toward_the_daily_cap(gw: Gateway) -> None:
    """Only entries count: exits (issue 28's `zp-`/`zs-` client_order_ids) and orders the
    gateway did not place are left out of the broker's count."""
    headers = {"APCA-API-KEY-ID": gw.env["ALPACA_API_KEY"], "APCA-API-SECRET-KEY": gw.env["ALPACA_SECRET_KEY"]}
    for i, prefix in enumerate(["zp-", "zs-", "manual-"] * 4):
        order = {"symbol": f"EXT{chr(65 + i)}", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day",
                 "client_order_id": f"{prefix}{i}"}
        requests.post(f"{gw.sim_url}/v2/orders", json=order, headers=headers, timeout=10).raise_for_status()
    gw.green()
    placed = entries(gw, [f"ENT{c}" for c in "ABCDEFGHIJ"])
    assert [e["status"] for e in placed] == ["SUBMITTED"] * 10, placed


# --- finding 7: giant messages ----------------------------------------------------------------

GIANT = b"{" + b" " * (10 * 1024 * 1024) + b"}"  # 10 MB: ten times MAX_PAYLOAD_BYTES


@pytest.fixture(scope="module")
def flooded(log_dir: Path, sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway on a Redis of its own: its pub/sub limits are changed here."""
    with isolated_gateway(log_dir, sim.url, tmp_path_factory.mktemp("flood")) as gw:
        yield gw


def compose_pubsub_limit() -> str:
    command = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())["services"]["redis"]["command"]
    assert "--client-output-buffer-limit" in command, "compose's Redis keeps the 32 MB default"
    return command[command.index("--client-output-buffer-limit") + 1]


def test_six_giant_messages_within_composes_pubsub_limit_each_get_a_decision(flooded: Gateway) -> None:
    """The finding: six 10 MB messages overflowed Redis's default pub/sub output buffer, the
    bridge was disconnected, and neither they nor a good ranking right after got a decision.
    With compose's limit every one is decided: the giants SKIPPED, the ranking as usual."""
    flooded.reset()
    flooded.r.config_set("client-output-buffer-limit", compose_pubsub_limit())
    pubsub = flooded.subscribe()
    for _ in range(6):
        flooded.r.publish("chan:opportunity_update", GIANT)
    flooded.publish(ranking(opportunity("GOOD")))
    events = collect(pubsub, 7, 60, flooded)
    assert sorted(e["status"] for e in events) == ["BLOCKED"] + ["SKIPPED"] * 6, events
    assert all("invalid payload" in e["why"][0] for e in events if e["status"] == "SKIPPED")
    assert health(flooded.api_port)[1]["bridge"]["subscription_drops"] == 0


def test_a_subscription_dropped_by_a_flood_is_counted_shown_and_caught_up(flooded: Gateway) -> None:
    """Past any limit Redis drops the subscriber: the drop is counted on /health and /metrics,
    and the ranking ZERO keeps in key:opportunity_rank is decided by the catch-up."""
    flooded.reset()
    flooded.r.config_set("client-output-buffer-limit", "pubsub 1mb 512kb 1")
    try:
        pubsub = flooded.subscribe()
        for _ in range(6):
            flooded.r.publish("chan:opportunity_update", GIANT)
        kept = json.dumps(ranking(opportunity("KEPT")))
        flooded.r.set("key:opportunity_rank", kept, ex=60)  # as ZERO does, after the PUBLISH
        flooded.r.publish("chan:opportunity_update", kept)
        body = wait_for(lambda: (b := health(flooded.api_port)[1])["bridge"]["subscription_drops"] >= 1 and b, 30,
                        "the drop counted")
        assert body["bridge"]["reconnects"] >= 1
        wait_for(lambda: health(flooded.api_port)[1]["bridge"]["subscribed"], 30, "subscribed again")
        heard: list[dict[str, Any]] = []
        while not any(e["ticker"] == "KEPT" for e in heard) and len(heard) < 8:  # giants heard before the drop first
            heard += collect(pubsub, 1, 30, flooded)
        assert [e["ticker"] for e in heard].count("KEPT") == 1, heard
        text = requests.get(f"http://127.0.0.1:{flooded.api_port}/metrics", timeout=10).text
        assert any(line.startswith("zero_bridge_subscription_drops_total ") and float(line.split()[1]) >= 1
                   for line in text.splitlines()), text[:2000]
    finally:
        flooded.r.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")


# --- finding 6: tradable US equities only, as the broker says --------------------------------

def asset_reads(gw: Gateway, symbol: str) -> int:
    return gw.sim("GET", "/_sim/stats")["requests"].get(f"GET /v2/assets/{symbol}", 0)


@pytest.mark.parametrize("ticker, why", [
    ("BTCUSD", "class crypto"),
    ("HTBX", "not tradable"),
    ("OLDCO", "status inactive"),
    ("ZZZZQ", "unknown to the broker"),
], ids=["crypto_pair", "not_tradable", "inactive", "unknown"])
def test_a_symbol_the_broker_does_not_trade_as_a_us_equity_is_skipped_without_an_order(
        gw: Gateway, ticker: str, why: str) -> None:
    """The finding: a BTCUSD ranking was SUBMITTED; on Alpaca such symbols come back 4xx,
    and three of them from upstream would open the breaker."""
    gw.sim("POST", "/_sim/assets", {"symbol": "HTBX", "tradable": False})
    gw.sim("POST", "/_sim/assets", {"symbol": "OLDCO", "status": "inactive"})
    gw.sim("POST", "/_sim/config", {"synthetic_assets": False})
    gw.green()
    [event] = gw.decide(ranking(opportunity(ticker)))
    assert event["status"] == "SKIPPED", event
    assert event["why"][0].startswith(f"invalid payload: {ticker} is not a tradable US equity ("), event
    assert why in event["why"][0], event
    assert gw.order_posts() == 0
    assert gw.r.get("key:execution_breaker_failures") in (None, b"0")


def test_three_untradable_rankings_do_not_open_the_breaker_and_the_verdict_is_kept_for_the_day(gw: Gateway) -> None:
    gw.sim("POST", "/_sim/config", {"synthetic_assets": False})
    gw.green()
    now = datetime.now(UTC)
    events = gw.decide(*(ranking(opportunity("ZZZZQ"), rank_time=now + timedelta(seconds=i)) for i in range(3)))
    assert [e["status"] for e in events] == ["SKIPPED"] * 3
    assert asset_reads(gw, "ZZZZQ") == 1  # asked once, with row 9; then kept in Redis for the trading day
    [good] = gw.decide(ranking(opportunity("SPY")))
    assert good["status"] == "SUBMITTED", good
    assert gw.r.get("key:execution_breaker") is None


def test_a_broker_refusal_about_the_asset_itself_is_skipped_and_not_counted_toward_the_breaker(gw: Gateway) -> None:
    """A verdict forged in Redis ("tradable") reaches the broker, which refuses the symbol:
    that 4xx is the symbol's, SKIPPED like the verdict would have been, not a broker failure."""
    gw.sim("POST", "/_sim/config", {"synthetic_assets": False})
    gw.green()
    gw.r.hset(f"key:execution_assets:{trading_day(datetime.now(UTC))}", "ZZZZQ",
              json.dumps({"symbol": "ZZZZQ", "tradable": True, "detail": "forged"}))
    [event] = gw.decide(ranking(opportunity("ZZZZQ")))
    assert event["status"] == "SKIPPED", event
    assert "not a tradable US equity (the broker refused it: 422" in event["why"][0], event
    assert gw.r.get("key:execution_breaker_failures") in (None, b"0")
