"""Paper only. Both processes refuse to start unless paper-only (the message says why; keys
never print), and with ALPACA_BASE_URL unset every broker request of the worker, the
bridge's /health probe and zero-ops goes to paper-api.alpaca.markets and nowhere else.

Where a request goes is read from a local proxy that each process is pointed at through
HTTPS_PROXY (tests/support/connect_proxy.py): it records the `host:port` asked for and
refuses it, so nothing leaves the machine. Each process has a proxy of its own, so a host
is attributed to the process that asked for it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.support.connect_proxy import RefusingProxy
from tests.support.gateway import Gateway, opportunity, ranking
from tests.support.procs import CELERY, PYTHON, ROOT, TEST_SIGNING_KEY, PrivateRedis, base_env, free_port, health
from zero_tasks.adapters.alpaca_adapter import BrokerTransient
from zero_tasks.adapters.audit import ensure_schema, make_engine
from zero_tasks.adapters.market_data import atr_at, make_data_client
from zero_tasks.adapters.redis_state import store_session
from zero_tasks.core.session import TradingSession
from zero_tasks.settings import Settings, market_data_url

SECRET = "sekrit-do-not-print"
KEY = "key-id-do-not-print"


def run(argv: list[str], **env: str | None) -> subprocess.CompletedProcess[str]:
    environment = base_env(free_port(), "http://127.0.0.1:9", "sqlite:////tmp/never.db", free_port())
    environment.update({"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET})
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


BRIDGE = [PYTHON, "-m", "bridge"]
WORKER = [CELERY, "-A", "zero_tasks", "worker", "-c", "1"]
MIRROR = [PYTHON, "-m", "zero_tasks.mirror"]


@pytest.mark.parametrize("argv", [BRIDGE, WORKER, MIRROR], ids=["bridge", "worker", "mirror"])
@pytest.mark.parametrize("paper", [None, "false", "TRUE", " true", "1", "True", ""])
def test_refuses_to_start_unless_alpaca_paper_is_exactly_true(argv: list[str], paper: str | None) -> None:
    result = run(argv, ALPACA_PAPER=paper)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ALPACA_PAPER must be exactly 'true'" in output
    assert SECRET not in output and KEY not in output


@pytest.mark.parametrize("argv", [BRIDGE, WORKER, MIRROR], ids=["bridge", "worker", "mirror"])
@pytest.mark.parametrize("url", [
    "https://api.alpaca.markets", "http://api.alpaca.markets", "https://paper-api.alpaca.markets.evil.com",
    "http://paper-api.alpaca.markets", "http://10.0.0.5:8100", "http://example.com", "ftp://127.0.0.1",
    "http://user:pw@127.0.0.1:8100",
])
def test_refuses_a_base_url_that_is_not_loopback_or_alpaca_paper(argv: list[str], url: str) -> None:
    result = run(argv, ALPACA_BASE_URL=url)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ALPACA_BASE_URL" in output
    assert SECRET not in output and KEY not in output


@pytest.mark.parametrize("argv", [BRIDGE, WORKER, MIRROR], ids=["bridge", "worker", "mirror"])
@pytest.mark.parametrize("url", ["wss://api.alpaca.markets/stream", "ws://paper-api.alpaca.markets/stream",
                                 "wss://stream.data.alpaca.markets/v2/iex", "ws://10.0.0.5:8101/stream"])
def test_refuses_a_stream_url_that_is_not_loopback_or_alpacas_paper_stream(argv: list[str], url: str) -> None:
    result = run(argv, ALPACA_STREAM_URL=url)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ALPACA_STREAM_URL" in output
    assert SECRET not in output and KEY not in output


@pytest.mark.parametrize("argv", [BRIDGE, WORKER, MIRROR], ids=["bridge", "worker", "mirror"])
def test_refuses_to_start_without_keys(argv: list[str]) -> None:
    result = run(argv, ALPACA_API_KEY=None, ALPACA_SECRET_KEY=None)
    assert result.returncode != 0
    assert "ALPACA_API_KEY and ALPACA_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("signing_key", [None, "too-short"], ids=["unset", "short"])
def test_the_mirror_refuses_to_start_without_the_signing_key_that_seals_its_sync_record(
        signing_key: str | None) -> None:
    result = run(MIRROR, TASK_SIGNING_KEY=signing_key)
    assert result.returncode != 0
    assert "TASK_SIGNING_KEY must be set" in result.stdout + result.stderr


@pytest.mark.parametrize("name, value", [
    ("MIN_PROBABILITY", "0.85"), ("COOLDOWN_MINUTES", "30"), ("MARKET_STATE_MAX_AGE_S", "0"),
    ("SIGNAL_MAX_AGE_S", "300"),
])
def test_refuses_to_loosen_a_hard_limit(name: str, value: str) -> None:
    result = run(BRIDGE, **{name: value})
    assert result.returncode != 0
    assert name in result.stderr


# --- where the broker requests go, with ALPACA_BASE_URL unset ----------------------------

PAPER = "paper-api.alpaca.markets:443"
FAST_BROKER = {"BROKER_TIMEOUT_S": "1", "BROKER_MAX_RETRIES": "1", "BROKER_RETRY_BACKOFF_MAX_S": "1",
               "ZERO_ENV_FILE": "/nonexistent/zero.env"}  # zero-ops must not find `make run`'s file


def towards(proxy: RefusingProxy, env: dict[str, str]) -> dict[str, str]:
    """The environment with no ALPACA_BASE_URL (Alpaca's default host) and this proxy."""
    return {**{k: v for k, v in env.items() if k != "ALPACA_BASE_URL"}, **proxy.env()}


class PaperGateway:
    """A worker and a bridge with ALPACA_BASE_URL unset, each behind a refusing proxy."""

    def __init__(self, gw: Gateway, worker_proxy: RefusingProxy, bridge_proxy: RefusingProxy) -> None:
        self.gw = gw
        self.worker_proxy = worker_proxy
        self.bridge_proxy = bridge_proxy


@pytest.fixture(scope="module")
def paper_gateway(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperGateway]:
    db = tmp_path_factory.mktemp("paper_only") / "audit.db"
    server = PrivateRedis(log_dir).start()
    with RefusingProxy() as worker_proxy, RefusingProxy() as bridge_proxy:
        gw = Gateway(log_dir, server, "http://127.0.0.1:9", f"sqlite:///{db}", workers=1, bridges=1, **FAST_BROKER)
        for proc in gw.workers:
            proc.env = towards(worker_proxy, proc.env)
        for proc in gw.bridges:
            proc.env = towards(bridge_proxy, proc.env)
        try:
            yield PaperGateway(gw.start(), worker_proxy, bridge_proxy)
        finally:
            gw.stop()
            server.stop()


@pytest.mark.e2e
def test_the_workers_order_attempt_goes_to_alpaca_paper_only(paper_gateway: PaperGateway) -> None:
    gw = paper_gateway.gw
    gw.green()
    now = datetime.now(UTC)  # the session as a worker kept it before the broker went away
    store_session(gw.r, TradingSession(True, now - timedelta(hours=1), now + timedelta(hours=1), None, now), now,
                  key=TEST_SIGNING_KEY)
    (event,) = gw.decide(ranking(opportunity("SPY")), timeout=60)
    assert event["status"] == "ERROR" and event["why"][0].startswith("error: broker unavailable"), event
    (row,) = gw.wait_rows(1)
    assert row["status"] == "ERROR" and row["alpaca_order_id"] is None
    assert gw.rows(status="SUBMITTED") == []
    assert paper_gateway.worker_proxy.hosts() == {PAPER}


@pytest.mark.e2e
def test_the_bridges_broker_probe_goes_to_alpaca_paper_only(paper_gateway: PaperGateway) -> None:
    _, body = health(paper_gateway.gw.api_port)
    assert body["checks"]["broker"]["ok"] is False, body
    assert paper_gateway.bridge_proxy.requests() != []
    assert paper_gateway.bridge_proxy.hosts() == {PAPER}


@pytest.mark.e2e
@pytest.mark.parametrize("argv, answer", [(["enable"], "n\n"), (["reconcile", "--hours", "1"], None)],
                         ids=["enable", "reconcile"])
def test_zero_ops_broker_calls_go_to_alpaca_paper_only(paper_gateway: PaperGateway, tmp_path: Path,
                                                       argv: list[str], answer: str | None) -> None:
    gw = paper_gateway.gw
    armed = gw.r.get("key:execution_enabled")
    database_url = f"sqlite:///{tmp_path / 'ops.db'}"
    ensure_schema(make_engine(database_url))  # reconcile reads the audit store before the broker
    with RefusingProxy() as proxy:
        env = towards(proxy, base_env(gw.redis_server.port, "http://127.0.0.1:9", database_url, free_port(),
                                      **FAST_BROKER))
        result = subprocess.run([PYTHON, "-m", "zero_ops", *argv], cwd=ROOT, env=env, input=answer,
                                capture_output=True, text=True, timeout=120)
        assert proxy.requests() != [], result.stdout + result.stderr
        assert proxy.hosts() == {PAPER}, result.stdout + result.stderr
    assert gw.r.get("key:execution_enabled") == armed  # `enable` was answered no


# --- the market data the ATR reads: the loopback simulator or Alpaca's data host only -----

DATA = "data.alpaca.markets:443"


@pytest.mark.parametrize("base_url, data_url", [
    (None, "https://data.alpaca.markets"),
    ("https://paper-api.alpaca.markets", "https://data.alpaca.markets"),
    ("http://127.0.0.1:8100", "http://127.0.0.1:8100"),
    ("http://localhost:8100", "http://localhost:8100"),
    ("https://[::1]:8443", "https://[::1]:8443"),
])
def test_the_market_data_host_is_the_loopback_simulator_or_alpacas_data_host(base_url: str | None,
                                                                               data_url: str) -> None:
    assert market_data_url(base_url) == data_url


def test_the_atr_bars_go_to_alpacas_market_data_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    with RefusingProxy() as proxy:
        for name, value in proxy.env().items():
            monkeypatch.setenv(name, value)
        settings = Settings(alpaca_paper="true", alpaca_api_key=SecretStr("test-key-id"),
                            alpaca_secret_key=SecretStr("test-secret-value"), broker_timeout_s=1)
        with pytest.raises(BrokerTransient):  # refused by the proxy: no answer, asked again later
            atr_at(make_data_client(settings), "SPY", datetime.now(UTC))
        assert proxy.requests() != []
        assert proxy.hosts() == {DATA}
