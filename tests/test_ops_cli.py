"""The operator's CLI (`python -m zero_ops`) against a real Redis and a real PostgreSQL.

Redis: a redis-server of this module's own, DB 7 flushed before each test. The session's
`private_redis` is not used because the end-to-end gateways of the suite keep a bridge
subscribed to chan:opportunity_update on it (pub/sub ignores DB numbers), which would
answer `publish-sample` and make "nobody listens" untestable.
PostgreSQL: the schema `ops_cli_test`, reached through `search_path` in DATABASE_URL, so
public.execution_log (used by the other tests) is never touched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from alpaca_paper_sim import SimServer
from tests.support.gateway import PG_URL, sqlalchemy_url
from tests.support.procs import PYTHON, ROOT, TEST_SIGNING_KEY, PrivateRedis, free_port, wait_for
from zero_ops.cli import main
from zero_ops.status import REPORT_FIELDS
from zero_tasks.adapters import registry
from zero_tasks.adapters.audit import ensure_schema, insert_rows, make_engine
from zero_tasks.adapters.redis_state import store_session
from zero_tasks.core import keys
from zero_tasks.core.contract import MarketState, TradeUpdate
from zero_tasks.core.intake import Signal, parse_payload
from zero_tasks.core.mirror import IN_SYNC, OUT_OF_SYNC, SyncRecord, seal_record
from zero_tasks.core.session import TradingSession
from zero_tasks.settings import Settings

REDIS_DB = 7
SCHEMA = "ops_cli_test"
KEY = "test-key-id"  # the pair the shared simulator lets in; never printed all the same
SECRET = "test-secret-value"
DB_PASSWORD = "ops-db-password-never-printed"
BROKER_PASSWORD = "ops-broker-password-never-printed"
SECRETS = (KEY, SECRET, DB_PASSWORD, BROKER_PASSWORD)
TRADE = "chan:trade_update"
OPPORTUNITY = "chan:opportunity_update"


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ops_redis(log_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(log_dir).start()
    yield server
    server.stop()


@pytest.fixture
def r(ops_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=ops_redis.port, db=REDIS_DB, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


def with_search_path(url: str) -> str:
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{SCHEMA}"


@pytest.fixture(scope="module")
def pg_url() -> str:
    """DATABASE_URL of the ops_cli_test schema, with execution_log created in it (not in public)."""
    base = os.environ.get("TEST_POSTGRES_URL", PG_URL)
    admin = make_engine(sqlalchemy_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {SCHEMA}.execution_log, {SCHEMA}.zero_execution_schema_version"))
    url = with_search_path(base)
    engine = make_engine(sqlalchemy_url(url))
    ensure_schema(engine)
    with admin.connect() as conn:
        where = conn.execute(text("SELECT table_schema FROM information_schema.tables "
                                  f"WHERE table_name = 'execution_log' AND table_schema = '{SCHEMA}'")).scalar()
    assert where == SCHEMA
    admin.dispose()
    engine.dispose()
    return url


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlalchemy_url(pg_url))
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {SCHEMA}.execution_log"))
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'execution_log.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    yield url, engine
    engine.dispose()


@pytest.fixture
def env(ops_redis: PrivateRedis, sim: SimServer, pg_url: str, r: redis.Redis) -> dict[str, str | None]:
    """The settings environment of one CLI invocation; every other setting unset (defaults)."""
    values: dict[str, str | None] = {name.upper(): None for name in Settings.model_fields}
    values.update({"ALPACA_PAPER": "true", "ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET,
                   "ALPACA_BASE_URL": sim.url, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(ops_redis.port),
                   "REDIS_DB": str(REDIS_DB), "DATABASE_URL": pg_url, "TASK_SIGNING_KEY": TEST_SIGNING_KEY,
                   "ZERO_ENV_FILE": "/nonexistent/devstack.env"})  # a developer's var/devstack.env must not leak in
    return values


# --- helpers ----------------------------------------------------------------------------

def cli(env: dict[str, str | None], *args: str, input: str | None = None, **over: str | None) -> Result:
    """Run the CLI in-process; a Python exception (a traceback to the operator) fails the test."""
    result = CliRunner().invoke(main, list(args), input=input, env={**env, **over})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    return result


def now_utc(delta_s: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=delta_s)


def market_json(state: str = "GREEN", age_s: float = 0) -> str:
    return json.dumps({"schema_version": "1.0", "timestamp": now_utc(-age_s).isoformat(), "state": state,
                       "reason": "calm tape"})


def trade_update(status: str, ticker: str = "SPY", exec_id: str | None = None, why: str | None = None) -> str:
    return TradeUpdate(timestamp=now_utc(), execution_id=exec_id or f"{ticker}:H30:2026-11-24T14:30:00",
                       ticker=ticker, horizon="H30", probability=0.95, opportunity_score=95, status=status,
                       why=[why or f"{status.lower()}: test"], submitted_at=now_utc()).model_dump_json()


def row(ticker: str, status: str, minutes_ago: float, order_id: str | None = None) -> dict[str, Any]:
    when = now_utc(-60 * minutes_ago)
    return {"time": when, "execution_id": f"{ticker}:H30:{when:%Y-%m-%dT%H:%M:%S}", "ticker": ticker,
            "horizon": "H30", "probability": 0.95, "opportunity_score": 95, "status": status,
            "alpaca_order_id": order_id, "why": [f"{status.lower()}: test {ticker}"],
            "market_state_snapshot": {"state": "GREEN"}, "event_key": f"ops-{uuid.uuid4()}",
            "reason": f"{status.lower()}: test {ticker} {minutes_ago}m", "decided_at": when}


def insert(engine: Engine, *rows: dict[str, Any]) -> None:
    for item in rows:
        assert insert_rows(engine, [item]) == 1


def after_subscribed(r: redis.Redis, channel: str, action: Callable[[], None]) -> threading.Thread:
    """Run `action` in a thread once somebody (the CLI under test) is subscribed to `channel`."""
    def run() -> None:
        wait_for(lambda: r.pubsub_numsub(channel)[0][1] >= 1, 10, f"a subscriber on {channel}")
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def listener(r: redis.Redis, channel: str) -> redis.client.PubSub:
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    wait_for(lambda: r.pubsub_numsub(channel)[0][1] >= 1, 5, f"test subscribed to {channel}")
    return pubsub


def table_lines(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


# --- enable / disable -------------------------------------------------------------------

def test_enable_writes_exactly_true_after_confirmation(env: dict[str, str | None], r: redis.Redis,
                                                       sim: SimServer) -> None:
    r.set("key:market_state", market_json("GREEN", age_s=12))
    r.set("key:execution_enabled", "false")
    before = {k: r.get(k) for k in r.keys("*")}
    result = cli(env, "enable", input="y\n")
    assert result.exit_code == 0, result.output
    assert r.get("key:execution_enabled") == "true"
    assert {k: r.get(k) for k in r.keys("*")} == {**before, "key:execution_enabled": "true"}
    shown = result.output
    assert "paper" in shown and sim.url in shown and "simulator" in shown
    assert "GREEN" in shown and "written 12s ago" in shown
    assert "ACTIVE" in shown and "buying power" in shown
    assert "[y/N]" in shown and "was 'false'" in shown


def test_enable_aborts_without_confirmation(env: dict[str, str | None], r: redis.Redis) -> None:
    result = cli(env, "enable", input="n\n")
    assert result.exit_code == 1
    assert "Aborted" in result.output
    assert r.get("key:execution_enabled") is None


def test_enable_yes_skips_the_prompt(env: dict[str, str | None], r: redis.Redis) -> None:
    result = cli(env, "enable", "--yes")
    assert result.exit_code == 0, result.output
    assert "[y/N]" not in result.output
    assert r.get("key:execution_enabled") == "true"


def test_enable_shows_an_unreachable_broker_and_still_allows_confirming(env: dict[str, str | None],
                                                                        r: redis.Redis) -> None:
    result = cli(env, "enable", input="y\n", ALPACA_BASE_URL=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 0, result.output
    assert "broker unreachable" in result.output
    assert "key:market_state is not set" in result.output
    assert r.get("key:execution_enabled") == "true"


def test_disable_is_immediate(env: dict[str, str | None], r: redis.Redis) -> None:
    r.set("key:execution_enabled", "true")
    with socket.socket() as broker:  # a broker that takes connections and never answers
        broker.bind(("127.0.0.1", 0))
        broker.listen(8)
        broker.setblocking(False)
        result = cli(env, "disable", ALPACA_BASE_URL=f"http://127.0.0.1:{broker.getsockname()[1]}")
        with pytest.raises(BlockingIOError):  # nobody connected: the broker was never asked
            broker.accept()
    assert result.exit_code == 0, result.output
    assert r.get("key:execution_enabled") == "false"
    assert "was 'true'" in result.output and "[y/N]" not in result.output
    r.delete("key:execution_enabled")
    assert "was missing" in cli(env, "disable").output


# --- status -----------------------------------------------------------------------------

def test_status_shows_cooldowns_and_skips_owner_keys(env: dict[str, str | None], r: redis.Redis) -> None:
    since = now_utc(-600).isoformat()
    r.set("key:execution_cooldown:SPY", since, ex=3000)
    r.set("key:execution_cooldown:SPY:owner", "SPY:H30:2026-11-24T14:30:00", ex=3000)
    r.set("key:execution_cooldown:QQQ", since, ex=1200)
    result = cli(env, "status")
    assert result.exit_code == 0, result.output
    cooldown_lines = [line for line in result.output.splitlines() if " since " in line]
    assert len(cooldown_lines) == 2
    assert any("SPY since " + since in line and "left" in line for line in cooldown_lines)
    assert "owner" not in result.output
    report = json.loads(cli(env, "status", "--json").stdout)
    assert [c["ticker"] for c in report["cooldowns"]] == ["QQQ", "SPY"]
    assert 1100 < report["cooldowns"][0]["ttl_s"] <= 1200 and report["cooldowns"][1]["since"] == since


def test_status_json_has_every_field(env: dict[str, str | None], r: redis.Redis, pg: Engine) -> None:
    """Also the one run as a real process: `python -m zero_ops status --json`."""
    r.set("key:execution_enabled", "true")
    r.set("key:market_state", market_json("GREEN", age_s=400))
    store_session(r, TradingSession(True, now_utc(-3600), now_utc(3500), None, now_utc(-60)), now_utc(-60),
                  key=TEST_SIGNING_KEY)
    r.set("key:stand_down_reason", json.dumps({"schema_version": "1.0", "reason": "FOMC in 10 min",
                                               "scope": "GLOBAL", "expires_at": now_utc(600).isoformat()}))
    beat = r.pipeline()
    beat.set("key:execution_worker:w1@host", json.dumps({"hostname": "w1@host", "pid": 4242, "concurrency": 2,
                                                         "started": time.time()}), ex=15)
    registry.register(beat, keys.WORKERS_KEY, "w1@host", time.time())  # as the heartbeat does
    beat.execute()
    r.rpush("zero_execution", "a", "b")
    r.rpush("zero_audit", "c")
    insert(pg, row("SPY", "SUBMITTED", 1, order_id="ord-1"), row("QQQ", "BLOCKED", 2), row("IWM", "SKIPPED", 3))
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_", "CELERY_"))}
    process_env.update({k: v for k, v in env.items() if v is not None})
    process_env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([PYTHON, "-m", "zero_ops", "status", "--json", "--last", "2"], cwd=ROOT,
                          env=process_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == set(REPORT_FIELDS)
    assert report["mode"] == "paper" and report["broker"].startswith("simulator http://127.0.0.1")
    assert report["redis"].endswith(f"/{REDIS_DB}") and report["database"].startswith("postgresql://")
    assert report["kill_switch"] == {"enabled": True, "value": "true"}
    market = report["market_state"]
    assert market["state"] == "GREEN" and 399 <= market["age_s"] < 420
    assert market["veto"] is None and market["session"]["is_open"] is True  # written during the session now open
    assert report["stand_down"]["in_force"] is True and report["stand_down"]["scope"] == "GLOBAL"
    assert report["queues"] == {"zero_execution": 2, "zero_audit": 1}
    assert report["workers"][0]["hostname"] == "w1@host" and report["workers"][0]["pid"] == 4242
    assert report["workers"][0]["concurrency"] == 2 and 0 < report["workers"][0]["ttl_s"] <= 15
    assert [d["ticker"] for d in report["decisions"]] == ["SPY", "QQQ"]
    assert report["decisions"][0]["alpaca_order_id"] == "ord-1"
    assert datetime.fromisoformat(report["decisions"][0]["time"]).tzinfo is not None
    assert report["decisions_error"] is None


def test_status_kill_switch_is_on_only_for_exactly_true(env: dict[str, str | None], r: redis.Redis) -> None:
    for value, enabled in [("true", True), ("TRUE", False), ("true ", False), ("1", False), (None, False)]:
        if value is None:
            r.delete("key:execution_enabled")
        else:
            r.set("key:execution_enabled", value)
        report = json.loads(cli(env, "status", "--json", "--last", "0").stdout)
        assert report["kill_switch"]["enabled"] is enabled, value


def test_status_shows_expired_stand_down_and_unreadable_market(env: dict[str, str | None], r: redis.Redis) -> None:
    r.set("key:market_state", "{not json")
    r.set("key:stand_down_reason", json.dumps({"reason": "old news", "scope": "TICKER", "ticker": "SPY",
                                               "expires_at": now_utc(-60).isoformat()}))
    result = cli(env, "status", "--json", "--last", "0")
    report = json.loads(result.stdout)
    assert report["stand_down"]["present"] is True and report["stand_down"]["in_force"] is False
    assert report["market_state"]["problem"].startswith("unreadable")
    human = cli(env, "status", "--last", "0").output
    assert "expired TICKER SPY" in human and "NONE (unreadable" in human and "none alive" in human


@pytest.mark.parametrize("breaker, block", [
    ("{not json", "[1, 2]"),
    (json.dumps({"since": "2026-11-24T14:00:00", "until": "soon", "reason": "x"}),
     json.dumps({"until": "2026-11-24T15:00:00", "reason": "earnings"})),
], ids=["not_json", "naive_and_garbled_times"])
def test_status_shows_a_garbled_breaker_or_block_list_as_garbage(env: dict[str, str | None], r: redis.Redis,
                                                               breaker: str, block: str) -> None:
    r.set("key:execution_breaker", breaker)
    r.set("key:execution_blocklist:SPY", block)
    result = cli(env, "status", "--last", "0")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert result.output.count("orders blocked") == 2
    report = json.loads(cli(env, "status", "--json", "--last", "0").stdout)
    assert report["risk"]["breaker"] and report["risk"]["blocklist"]["SPY"]


def test_status_shows_the_account_mirror_with_control_characters_escaped(env: dict[str, str | None],
                                                                         r: redis.Redis) -> None:
    r.hset("key:execution_mirror_lease", mapping={"holder": "evil\x1b[2Jhost:1", "token": "4"})
    r.set("key:execution_mirror_sync", seal_record(SyncRecord(IN_SYNC, 9, "x", 4, now_utc().isoformat()),
                                                   TEST_SIGNING_KEY), px=3000)
    r.hset("key:execution_mirror_stats", mapping={"resyncs": "2", "row9_mirror": "5", "row9_rest": "1"})
    result = cli(env, "status", "--last", "0")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.strip().startswith("mirror "))
    assert "\x1b" not in line and "evil\\x1b[2Jhost:1" in line
    assert "in sync" in line and "epoch 9" in line and "5 from the mirror / 1 by REST" in line
    report = json.loads(cli(env, "status", "--json", "--last", "0").stdout)
    assert report["mirror"]["in_sync"] is True and report["mirror"]["resyncs"] == 2


def test_status_says_row_9_asks_the_broker_while_the_mirror_is_out_of_sync(env: dict[str, str | None],
                                                                          r: redis.Redis) -> None:
    r.set("key:execution_mirror_sync", seal_record(SyncRecord(OUT_OF_SYNC, 9, "x", 4, now_utc().isoformat()),
                                                   TEST_SIGNING_KEY))
    result = cli(env, "status", "--last", "0")
    line = next(line for line in result.output.splitlines() if line.strip().startswith("mirror "))
    assert "mirror out_of_sync" in line and "row 9 asks the broker" in line and "leader none" in line


def test_status_says_row_9_asks_the_broker_while_the_mirrors_sync_record_is_not_sealed(
        env: dict[str, str | None], r: redis.Redis) -> None:
    record = SyncRecord(IN_SYNC, 9, "x", 4, now_utc().isoformat()).to_json()
    r.set("key:execution_mirror_sync", json.dumps({"record": record, "seal": "0" * 64}), px=3000)
    result = cli(env, "status", "--last", "0")
    line = next(line for line in result.output.splitlines() if line.strip().startswith("mirror "))
    assert "not sealed" in line and "row 9 asks the broker" in line
    assert json.loads(cli(env, "status", "--json", "--last", "0").stdout)["mirror"]["in_sync"] is False


def test_status_queue_depth_is_na_when_broker_is_not_redis(env: dict[str, str | None], r: redis.Redis) -> None:
    result = cli(env, "status", "--json", "--last", "0",
                 CELERY_BROKER_URL=f"amqp://guest:{BROKER_PASSWORD}@127.0.0.1:5672//")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["queues"] == "n/a"
    assert BROKER_PASSWORD not in result.output


def test_status_survives_a_database_that_is_down(env: dict[str, str | None], r: redis.Redis) -> None:
    down = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{free_port()}/test"
    result = cli(env, "status", DATABASE_URL=down)
    assert result.exit_code == 0, result.output
    assert "last decisions: unavailable" in result.output and "kill switch" in result.output
    assert DB_PASSWORD not in result.output


# --- tail -------------------------------------------------------------------------------

def test_tail_prints_one_line_per_update_and_survives_garbage(env: dict[str, str | None], r: redis.Redis) -> None:
    def publish() -> None:
        r.publish(TRADE, trade_update("SUBMITTED", why="submitted: 1 share SPY buy market day"))
        r.publish(TRADE, trade_update("BLOCKED", "QQQ", why="execution disabled: key not set"))
        raw = redis.Redis(host="127.0.0.1", port=int(env["REDIS_PORT"]), db=REDIS_DB)
        raw.publish(TRADE, b"\xff\xfe not utf-8")
        raw.publish(TRADE, "plain garbage {")
        raw.publish(TRADE, json.dumps({"no": "status"}))

    thread = after_subscribed(r, TRADE, publish)
    result = cli(env, "tail", "--count", "5", "--timeout", "10")
    thread.join(5)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5, lines
    assert "SUBMITTED" in lines[0] and "SPY:H30:2026-11-24T14:30:00" in lines[0] and " SPY " in lines[0]
    assert lines[0].endswith("submitted: 1 share SPY buy market day")
    assert "BLOCKED" in lines[1] and "QQQ" in lines[1] and lines[1].endswith("execution disabled: key not set")
    assert lines[2] == "\ufffd\ufffd not utf-8"
    assert lines[3] == "plain garbage {"
    assert lines[4] == '{"no": "status"}'


def test_tail_json_prints_raw_lines(env: dict[str, str | None], r: redis.Redis) -> None:
    update = trade_update("ERROR", why="error: broker unreachable")
    thread = after_subscribed(r, TRADE, lambda: r.publish(TRADE, update))
    result = cli(env, "tail", "--json", "--count", "1", "--timeout", "10")
    thread.join(5)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [update]


def test_tail_colours_status(env: dict[str, str | None], r: redis.Redis) -> None:
    thread = after_subscribed(r, TRADE, lambda: r.publish(TRADE, trade_update("REJECTED")))
    result = CliRunner().invoke(main, ["tail", "--count", "1", "--timeout", "10"], env=env, color=True)
    thread.join(5)
    assert "\x1b[31m" in result.stdout  # red


# --- log --------------------------------------------------------------------------------

def test_log_filters_by_ticker_status_and_time(env: dict[str, str | None], pg: Engine) -> None:
    insert(pg, row("SPY", "SUBMITTED", 5, order_id="ord-5"), row("SPY", "BLOCKED", 10), row("SPY", "BLOCKED", 180),
           row("QQQ", "BLOCKED", 5), row("SPY", "SKIPPED", 20))
    result = cli(env, "log", "--ticker", "spy", "--status", "BLOCKED", "--status", "submitted", "--since", "1h")
    assert result.exit_code == 0, result.output
    header, *rows = table_lines(result)
    assert header.split() == ["TIME", "STATUS", "TICKER", "EXECUTION_ID", "REASON", "ALPACA_ORDER_ID"]
    assert len(rows) == 2
    assert "SUBMITTED" in rows[0] and "ord-5" in rows[0] and "BLOCKED" in rows[1]  # newest first
    for name, value in [("STATUS", "SUBMITTED"), ("TICKER", "SPY"), ("REASON", "submitted:"),
                        ("ALPACA_ORDER_ID", "ord-5")]:
        assert rows[0].index(value) == header.index(name)  # aligned
    older = table_lines(cli(env, "log", "--until", "2h"))
    assert len(older) == 2 and "180m" in older[1]
    one = table_lines(cli(env, "log", "--limit", "1"))
    assert len(one) == 2
    qqq = table_lines(cli(env, "log", "--ticker", "QQQ"))[1:]
    assert len(qqq) == 1 and "QQQ:H30:" in qqq[0]


def test_log_filters_by_execution_id(env: dict[str, str | None], pg: Engine) -> None:
    target = row("SPY", "BLOCKED", 3)
    insert(pg, target, {**row("SPY", "SUBMITTED", 1), "execution_id": target["execution_id"]}, row("SPY", "SKIPPED", 2))
    result = cli(env, "log", "--json", "--execution-id", target["execution_id"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["status"] for item in lines] == ["SUBMITTED", "BLOCKED"]


def test_log_json_lines(env: dict[str, str | None], pg: Engine) -> None:
    insert(pg, row("SPY", "SUBMITTED", 1, order_id="ord-1"), row("QQQ", "REJECTED", 2))
    result = cli(env, "log", "--json")
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["ticker"] for item in items] == ["SPY", "QQQ"]
    first = items[0]
    assert first["alpaca_order_id"] == "ord-1" and first["why"] == ["submitted: test SPY"]
    assert first["market_state_snapshot"] == {"state": "GREEN"}
    for column in ("time", "decided_at", "created_at"):
        assert datetime.fromisoformat(first[column]).tzinfo is not None
    assert abs((datetime.fromisoformat(first["time"]) - now_utc(-60)).total_seconds()) < 30


def test_log_reads_sqlite(env: dict[str, str | None], sqlite_url: tuple[str, Engine]) -> None:
    url, engine = sqlite_url
    insert(engine, row("SPY", "SUBMITTED", 5), row("SPY", "BLOCKED", 30), row("QQQ", "SUBMITTED", 120))
    recent = cli(env, "log", "--since", "15m", DATABASE_URL=url)
    assert recent.exit_code == 0, recent.output
    assert len(table_lines(recent)) == 2 and "SUBMITTED" in table_lines(recent)[1]
    # An ISO bound in another zone means the same instant: 45 min ago, written at +02:00.
    bound = now_utc(-45 * 60).astimezone(timezone(timedelta(hours=2))).isoformat()
    items = [json.loads(x) for x in cli(env, "log", "--json", "--since", bound, DATABASE_URL=url).stdout.splitlines()]
    assert [item["status"] for item in items] == ["SUBMITTED", "BLOCKED"]
    assert datetime.fromisoformat(items[0]["time"]).tzinfo is not None
    only = cli(env, "log", "--json", "--status", "SUBMITTED", "--ticker", "QQQ", DATABASE_URL=url)
    assert [json.loads(x)["ticker"] for x in only.stdout.splitlines()] == ["QQQ"]


def test_log_rejects_a_bad_time(env: dict[str, str | None]) -> None:
    result = cli(env, "log", "--since", "yesterday-ish")
    assert result.exit_code == 2
    assert "neither an ISO time nor a relative time" in result.output


def test_log_with_database_down_is_a_clear_exit_2(env: dict[str, str | None]) -> None:
    port = free_port()
    result = cli(env, "log", DATABASE_URL=f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{port}/test")
    assert result.exit_code == 2
    assert f"database postgresql://127.0.0.1:{port}/test failed" in result.output
    assert DB_PASSWORD not in result.output


def test_reconcile_on_an_audit_store_not_migrated_says_to_run_alembic_upgrade_head(
        env: dict[str, str | None], tmp_path: Path) -> None:
    migrated = f"sqlite:///{tmp_path / 'migrated.db'}"
    ensure_schema(make_engine(migrated))
    assert cli(env, "reconcile", DATABASE_URL=migrated).exit_code == 0  # a store checked in this process first
    result = cli(env, "reconcile", DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    assert result.exit_code == 2
    assert "schema is behind" in result.output and "alembic upgrade head" in result.output


def test_log_on_an_audit_store_not_migrated_says_to_run_alembic_upgrade_head(
        env: dict[str, str | None], tmp_path: Path) -> None:
    result = cli(env, "log", DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    assert result.exit_code == 2
    assert "alembic upgrade head" in result.output


# --- publish-sample ---------------------------------------------------------------------

def test_publish_sample_is_a_valid_opportunity_rank(env: dict[str, str | None], r: redis.Redis) -> None:
    """A stand-in bridge validates what arrives with the gateway's intake and answers it."""
    bridge = listener(r, OPPORTUNITY)
    seen: list[str] = []

    def answer() -> None:
        message = wait_for(lambda: bridge.get_message(timeout=0.1), 10, "the sample")
        seen.append(message["data"])
        signal = parse_payload(message["data"], 1024 * 1024)
        assert isinstance(signal, Signal)
        r.publish(TRADE, trade_update("BLOCKED", "IWM", "someone-else"))  # not ours: ignored
        r.publish(TRADE, json.dumps({**json.loads(trade_update("SUBMITTED", "IWM", signal.execution_id)),
                                     "why": ["submitted: 1 share IWM buy market day", "sample line"]}))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    result = cli(env, "publish-sample", "--ticker", "iwm", "--probability", "0.97", "--horizon", "H2H")
    thread.join(5)
    bridge.close()
    assert result.exit_code == 0, result.output
    signal = parse_payload(seen[0], 1024 * 1024)
    assert isinstance(signal, Signal)
    payload = json.loads(seen[0])
    assert set(payload) == {"schema_version", "timestamp", "horizon", "rank_time", "total_candidates", "opportunities"}
    assert set(payload["opportunities"][0]) == {
        "schema_version", "timestamp", "ticker", "horizon", "direction", "direction_confidence",
        "opportunity_score", "probability", "target_atr", "stop_atr", "market_state", "attention_stability_score",
        "attention_bucket", "attention_alignment", "why", "liquidity_grade"}
    assert (signal.top.ticker, signal.top.probability, signal.top.horizon, signal.top.direction) == (
        "IWM", 0.97, "H2H", "LONG")
    assert abs((signal.rank.rank_time - now_utc()).total_seconds()) < 10
    assert signal.rank.rank_time.utcoffset() == timedelta(0)
    assert f"published {signal.execution_id} to 1 subscriber(s)" in result.output
    decision = [line for line in result.stdout.splitlines() if "SUBMITTED" in line]
    assert len(decision) == 1 and signal.execution_id in decision[0] and "someone-else" not in result.output
    assert "    sample line" in result.stdout.splitlines()


def test_publish_sample_fails_when_nobody_listens(env: dict[str, str | None], r: redis.Redis) -> None:
    result = cli(env, "publish-sample")
    assert result.exit_code == 1
    assert "nobody is subscribed to chan:opportunity_update" in result.output


def test_publish_sample_fails_when_no_decision_arrives(env: dict[str, str | None], r: redis.Redis) -> None:
    silent = listener(r, OPPORTUNITY)
    try:
        result = cli(env, "publish-sample", "--timeout", "0.5")
    finally:
        silent.close()
    assert result.exit_code == 1
    assert "no decision for SPY:H30:" in result.output


def test_publish_sample_no_wait_returns_after_publishing(env: dict[str, str | None], r: redis.Redis) -> None:
    silent = listener(r, OPPORTUNITY)
    try:
        result = cli(env, "publish-sample", "--no-wait", "--direction", "short")
        message = wait_for(lambda: silent.get_message(timeout=0.1), 5, "the sample")
    finally:
        silent.close()
    assert result.exit_code == 0, result.output
    assert json.loads(message["data"])["opportunities"][0]["direction"] == "SHORT"


# --- market -----------------------------------------------------------------------------

def test_market_sets_a_fresh_state(env: dict[str, str | None], r: redis.Redis) -> None:
    result = cli(env, "market", "yellow", "--reason", "demo wobble")
    assert result.exit_code == 0, result.output
    state = MarketState.model_validate_json(r.get("key:market_state"))
    assert state.state == "YELLOW" and state.reason == "demo wobble"
    assert abs((now_utc() - state.timestamp).total_seconds()) < 5
    assert "regime service owns key:market_state" in result.stderr
    report = json.loads(cli(env, "status", "--json", "--last", "0").stdout)
    assert report["market_state"]["state"] == "YELLOW" and report["market_state"]["problem"] is None


def test_market_rejects_an_unknown_state(env: dict[str, str | None], r: redis.Redis) -> None:
    result = cli(env, "market", "PURPLE")
    assert result.exit_code == 2
    assert r.get("key:market_state") is None


# --- refusals and secrets -----------------------------------------------------------------

VERBS = [["enable", "--yes"], ["disable"], ["status"], ["tail", "--count", "1"], ["log"], ["publish-sample"],
         ["market", "GREEN"]]


@pytest.mark.parametrize("paper", ["false", None, "TRUE"])
@pytest.mark.parametrize("argv", VERBS, ids=[v[0] for v in VERBS])
def test_refuses_without_paper(env: dict[str, str | None], r: redis.Redis, argv: list[str], paper: str | None) -> None:
    result = cli(env, *argv, ALPACA_PAPER=paper)
    assert result.exit_code == 2
    assert "ALPACA_PAPER must be exactly 'true'" in result.output
    assert r.dbsize() == 0  # nothing was written


def test_refuses_a_live_base_url(env: dict[str, str | None], r: redis.Redis) -> None:
    result = cli(env, "enable", "--yes", ALPACA_BASE_URL="https://api.alpaca.markets")
    assert result.exit_code == 2
    assert "ALPACA_BASE_URL" in result.output
    assert r.get("key:execution_enabled") is None


def test_redis_unreachable_is_a_clear_exit_2(env: dict[str, str | None]) -> None:
    port = free_port()
    for argv in (["status"], ["disable"], ["tail", "--count", "1"]):
        result = cli(env, *argv, REDIS_PORT=str(port))
        assert result.exit_code == 2, argv
        assert f"Redis at 127.0.0.1:{port} unreachable" in result.output


def test_no_secret_in_any_output(env: dict[str, str | None], r: redis.Redis, pg_url: str,
                                 sqlite_url: tuple[str, Engine]) -> None:
    """Every verb, success and failure, with keys and passwords that must never appear."""
    db = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{DB_PASSWORD}@")
    secret_env = {**env, "DATABASE_URL": db,
                  "CELERY_BROKER_URL": f"redis://:{BROKER_PASSWORD}@127.0.0.1:{env['REDIS_PORT']}/{REDIS_DB}"}
    r.set("key:market_state", market_json())
    outputs = [
        cli(secret_env, "enable", input="y\n").output,
        cli(secret_env, "enable", "--yes", ALPACA_BASE_URL=f"http://127.0.0.1:{free_port()}").output,
        cli(secret_env, "disable").output,
        cli(secret_env, "status").output,
        cli(secret_env, "status", "--json").output,
        cli(secret_env, "log").output,
        cli(secret_env, "log", "--json").output,
        cli(secret_env, "log", DATABASE_URL=f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{free_port()}/x").output,
        cli(secret_env, "market", "GREEN").output,
        cli(secret_env, "publish-sample", "--no-wait").output,
        cli(secret_env, "tail", "--count", "1", "--timeout", "0.2").output,
        cli(secret_env, "status", ALPACA_PAPER="false").output,
        cli(secret_env, "status", ALPACA_BASE_URL="https://api.alpaca.markets").output,
        cli(secret_env, "status", REDIS_PORT=str(free_port())).output,
    ]
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_", "CELERY_"))}
    process_env.update({k: v for k, v in secret_env.items() if v is not None})
    process_env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([PYTHON, "-m", "zero_ops", "status", "--json"], cwd=ROOT, env=process_env,
                          capture_output=True, text=True, timeout=60)
    outputs.append(done.stdout + done.stderr)
    assert json.loads(done.stdout)["queues"] != "n/a"
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, (secret, output)


# --- inert operator output (issue 25, finding 1) -----------------------------------------

# What a hostile writer of a reason puts in it: move up, erase the line, return, a fake line;
# an OSC window title and hyperlink; a C1 CSI; a right-to-left override.
HOSTILE = "\x1b[1A\x1b[2K\rGB SUBMITTED\nGA BLOCKED \x1b]0;owned\x07\x1b]8;;http://x\x1b\\link \x9b2J \u202eevil"


def assert_inert(output: str) -> None:
    """No control sequence of the hostile text reaches the operator raw; its words do, escaped."""
    for raw in ("\x1b[1A", "\x1b[2K", "\r", "\x1b]", "\x07", "\x9b", "\u202e", "GB SUBMITTED\nGA"):
        assert raw not in output, (raw, output)
    assert "x1b[1A" in output or "u001b[1A" in output, output  # shown escaped (doubled in JSON)


def test_tail_escapes_control_characters_of_a_reason_on_a_terminal(env: dict[str, str | None],
                                                                    r: redis.Redis) -> None:
    thread = after_subscribed(r, TRADE, lambda: r.publish(TRADE, trade_update("BLOCKED", why=HOSTILE)))
    result = CliRunner().invoke(main, ["tail", "--count", "1", "--timeout", "10"], env=env, color=True)
    thread.join(5)
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout)
    assert len(result.stdout.splitlines()) == 1


def test_tail_escapes_a_message_that_is_not_json(env: dict[str, str | None], r: redis.Redis) -> None:
    thread = after_subscribed(r, TRADE, lambda: r.publish(TRADE, HOSTILE))
    result = CliRunner().invoke(main, ["tail", "--count", "1", "--timeout", "10"], env=env, color=True)
    thread.join(5)
    assert_inert(result.stdout)


def test_tail_json_escapes_control_characters_and_still_parses(env: dict[str, str | None], r: redis.Redis) -> None:
    update = json.dumps({"status": "BLOCKED", "why": [HOSTILE]}, ensure_ascii=False)
    thread = after_subscribed(r, TRADE, lambda: r.publish(TRADE, update))
    result = CliRunner().invoke(main, ["tail", "--json", "--count", "1", "--timeout", "10"], env=env, color=True)
    thread.join(5)
    assert_inert(result.stdout)
    assert json.loads(result.stdout) == json.loads(update)


def test_status_escapes_the_reasons_other_services_wrote(env: dict[str, str | None], r: redis.Redis) -> None:
    r.set("key:market_state", json.dumps({"schema_version": "1.0", "timestamp": now_utc().isoformat(),
                                          "state": "GREEN", "reason": HOSTILE}))
    r.set("key:stand_down_reason", json.dumps({"reason": HOSTILE, "scope": "ALL",
                                               "expires_at": now_utc(3600).isoformat()}))
    r.set("key:execution_blocklist:SPY", json.dumps({"reason": HOSTILE, "until": now_utc(3600).isoformat()}))
    r.set("key:execution_breaker", json.dumps({"reason": HOSTILE, "since": now_utc().isoformat(),
                                               "until": now_utc(60).isoformat()}))
    human = CliRunner().invoke(main, ["status", "--last", "0"], env=env, color=True)
    assert human.exit_code == 0, human.output
    assert_inert(human.stdout)
    assert human.stdout.count("GB SUBMITTED") >= 3  # the market reason may be cut
    machine = CliRunner().invoke(main, ["status", "--json", "--last", "0"], env=env, color=True)
    assert_inert(machine.stdout)
    breaker = CliRunner().invoke(main, ["breaker", "status"], env=env, color=True)
    assert_inert(breaker.stdout)


def test_log_escapes_the_reasons_in_the_audit(env: dict[str, str | None], pg: Engine) -> None:
    hostile = {**row("SPY", "ERROR", 1), "reason": f"error: broker said {HOSTILE}", "why": [HOSTILE]}
    insert(pg, hostile)
    table = CliRunner().invoke(main, ["log"], env=env, color=True)
    assert table.exit_code == 0, table.output
    assert "\x1b]" not in table.stdout and "\x9b" not in table.stdout and "\u202e" not in table.stdout
    lines = CliRunner().invoke(main, ["log", "--json"], env=env, color=True)
    assert_inert(lines.stdout)


def test_a_text_log_line_on_a_terminal_escapes_control_characters() -> None:
    from zero_tasks.logs import JsonFormatter, TextFormatter
    record = logging.LogRecord("zero", logging.INFO, __file__, 1, "decision %s", (HOSTILE,), None)
    assert_inert(TextFormatter("%(levelname)s %(message)s").format(record))
    assert_inert(JsonFormatter().format(record))


# --- bad input is one line and exit 2 (issue 25, finding 10) -----------------------------

@pytest.mark.parametrize("argv", [["log", "--since", "99999999w"], ["log", "--until", "99999999w"],
                                  ["log", "--since", "9" * 400 + "d"], ["block", "X", "--for", "99999999w",
                                                                         "--reason", "r"]],
                         ids=["since", "until", "digits", "block_for"])
def test_an_out_of_range_time_is_one_line_and_exit_2(env: dict[str, str | None], argv: list[str]) -> None:
    result = cli(env, *argv)
    assert result.exit_code == 2, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3  # click's usage + error


def test_a_garbled_breaker_in_breaker_status_is_shown_not_a_traceback(env: dict[str, str | None],
                                                                     r: redis.Redis) -> None:
    for garbage in ("{not json", "[1, 2]", '"text"'):
        r.set("key:execution_breaker", garbage)
        result = cli(env, "breaker", "status")
        assert result.exit_code == 0 and "OPEN" in result.output, result.output


OPTION_VALUES = st.one_of(st.text(max_size=30),
                          st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{1,5})?[smhdwSMHDW]?", fullmatch=True),
                          st.integers(min_value=10**5, max_value=10**30).map(lambda n: f"{n}w"))


@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(verb=st.sampled_from([("log", "--since"), ("log", "--until"), ("log", "--limit"), ("log", "--status"),
                             ("status", "--last"), ("tail", "--count"), ("block", "--for"),
                             ("publish-sample", "--probability"), ("reconcile", "--hours"),
                             ("market", None)]),
       value=OPTION_VALUES)
def test_no_option_value_gives_a_traceback(env: dict[str, str | None], verb: tuple[str, str | None],
                                           value: str) -> None:
    """Whatever an option is given, zero-ops answers in words: bad input is exit 2, never a traceback."""
    name, option = verb
    argv = [name, value] if option is None else [name, option, value]
    if name == "block":
        argv = ["block", "HYPO", option or "", value, "--reason", "hypothesis"]
    if name in ("tail", "publish-sample"):
        argv += ["--timeout", "0.1"] if name == "tail" else ["--no-wait"]
    if name == "reconcile":
        argv += ["--json"]
    result = CliRunner().invoke(main, argv, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (argv, result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), (argv, result.output)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", result.output), (argv, result.output)



# --- a forged trading session (issue 25, finding 2) --------------------------------------

@pytest.mark.parametrize("forged", [
    TradingSession(True, now_utc(-3600), datetime(2030, 1, 1, tzinfo=UTC), None, now_utc(-60)).to_json(),
    json.dumps({**json.loads(TradingSession(True, now_utc(-3600), now_utc(600), None, now_utc()).to_json()),
                "sealed_at": now_utc().isoformat(), "seal": "0" * 64}),
], ids=["unsealed_until_2030", "sealed_with_another_key"])
def test_status_does_not_show_a_forged_session_as_open(env: dict[str, str | None], r: redis.Redis,
                                                       forged: str) -> None:
    r.set("key:market_state", market_json("GREEN"))
    r.set("key:execution_session", forged)
    market = json.loads(cli(env, "status", "--json", "--last", "0").stdout)["market_state"]
    assert market["session"] is None and "refused" in market["session_problem"], market
    assert market["veto"] and "trading session unknown" in market["veto"]
