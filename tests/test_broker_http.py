"""How the gateway talks to the broker through alpaca-py (zero_tasks/adapters/alpaca_adapter.py,
zero_tasks/adapters/alpaca_compat.py): every call bounded by the timeout, never resent by alpaca-py,
row 9's two reads at the broker at once, TLS verified with the configured CA, and alpaca-py
exactly the version whose internals alpaca_compat.py sets.

`Gate` stands in front of the simulator and holds requests until the test's condition
holds, so "at the same time" is shown by what the broker saw, never by a clock.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from alpaca_paper_sim import SimServer, open_market
from zero_tasks.adapters import alpaca_compat
from zero_tasks.adapters.alpaca_adapter import AlpacaBroker, BrokerTransient, make_trading_client
from zero_tasks.core.checks.exposure import Exposure
from zero_tasks.settings import Settings

KEY, SECRET = "k", "s"
REPO_ROOT = Path(__file__).resolve().parents[1]


class Gate(ThreadingHTTPServer):
    """A broker in front of the simulator: a request waits in `holds[(method, path)]` (if
    any) before it is forwarded, and the gate counts the requests inside at once."""

    daemon_threads = True

    def __init__(self, sim_url: str, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _GateHandler)
        self.sim_url = sim_url
        self.holds: dict[tuple[str, str], Callable[[], None]] = {}
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.seen: list[str] = []
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Gate:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _GateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Gate

    def _forward(self) -> None:
        gate = self.server
        path = self.path.split("?")[0]
        hold = gate.holds.get((self.command, path.rstrip("/")))
        with gate.lock:
            gate.seen.append(f"{self.command} {path}")
            gate.in_flight += 1
            gate.most_in_flight = max(gate.most_in_flight, gate.in_flight)
        try:
            if hold is not None:
                hold()
            length = int(self.headers.get("Content-Length") or 0)
            answer = requests.request(self.command, gate.sim_url + self.path, data=self.rfile.read(length),
                                      headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                                      timeout=10)
            status, body = answer.status_code, answer.content
        except Exception as exc:  # noqa: BLE001 - a hold that broke answers 503, and the test says why
            status, body = 503, f'{{"code": 50310000, "message": "gate: {type(exc).__name__}"}}'.encode()
        finally:
            with gate.lock:
                gate.in_flight -= 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, *args: Any) -> None:
        pass


def settings_for(url: str, timeout_s: float = 5.0) -> Settings:
    return Settings(alpaca_paper="true", alpaca_api_key=KEY, alpaca_secret_key=SECRET, alpaca_base_url=url,
                    broker_timeout_s=timeout_s)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(state=open_market(), key_id=KEY, secret_key=SECRET) as server:
        yield server


def fault(sim: SimServer, **rule: Any) -> None:
    requests.post(sim.url + "/_sim/fault", json=rule, timeout=5).raise_for_status()


def stats(sim: SimServer) -> dict[str, Any]:
    return requests.get(sim.url + "/_sim/stats", timeout=5).json()


# Every call bounded, nothing resent by alpaca-py ----------------------------------------
def test_a_broker_that_does_not_answer_in_time_is_transient_and_the_order_is_not_resent(sim: SimServer) -> None:
    broker = AlpacaBroker(make_trading_client(settings_for(sim.url, timeout_s=0.2)))
    fault(sim, mode="slow", method="POST", path="/v2/orders", delay=1.0)
    with pytest.raises(BrokerTransient, match="timeout: ReadTimeout"):
        broker.submit_buy("SPY", "zx-SPY:H30:2026-11-24T14:30:00")
    assert stats(sim)["order_posts"] == 1


def test_a_429_reaches_the_task_at_once_and_alpaca_py_does_not_post_the_order_again(sim: SimServer) -> None:
    broker = AlpacaBroker(make_trading_client(settings_for(sim.url)))
    fault(sim, mode="429", method="POST", path="/v2/orders", retry_after=7)
    with pytest.raises(BrokerTransient, match="HTTP 429") as failure:
        broker.submit_buy("SPY", "zx-SPY:H30:2026-11-24T14:31:00")
    assert failure.value.retry_after == 7.0  # the task's own retry waits as the broker asks
    assert stats(sim)["order_posts"] == 1


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nobody listens there
    broker = AlpacaBroker(make_trading_client(settings_for(f"http://127.0.0.1:{port}", timeout_s=1)))
    with pytest.raises(BrokerTransient, match="network: ConnectionError"):
        broker.exposure("SPY")


def test_the_proxy_for_the_broker_is_read_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = alpaca_compat.BrokerSession(timeout=1, base_url="https://paper-api.alpaca.markets")
    assert session.proxies["https"] == "http://proxy.internal:3128"
    assert session.trust_env is False


# Row 9 in one round trip -------------------------------------------------------------------
POSITION, ORDERS = ("GET", "/v2/positions/SPY"), ("GET", "/v2/orders")


def test_row_9s_two_reads_are_at_the_broker_at_the_same_time(sim: SimServer) -> None:
    with Gate(sim.url) as gate:
        together = threading.Barrier(2, timeout=5)  # each read is answered only once both are in
        gate.holds = {POSITION: together.wait, ORDERS: together.wait}
        broker = AlpacaBroker(make_trading_client(settings_for(gate.url)))
        assert broker.exposure("SPY") == Exposure("SPY")
        assert gate.most_in_flight == 2
        assert sorted(gate.seen) == ["GET /v2/orders", "GET /v2/positions/SPY"]


def test_row_9_finds_an_open_order_read_on_the_other_connection(sim: SimServer) -> None:
    sim.state.configure(fill="manual")  # orders rest open
    broker = AlpacaBroker(make_trading_client(settings_for(sim.url)))
    broker.submit_buy("SPY", "zx-resting")
    assert broker.exposure("SPY") == Exposure("SPY", open_orders=1)
    assert broker.exposure("QQQ") == Exposure("QQQ")


def test_a_position_found_does_not_wait_for_the_open_orders_answer(sim: SimServer) -> None:
    broker = AlpacaBroker(make_trading_client(settings_for(sim.url)))
    broker.submit_buy("SPY", "zx-held")  # the simulator fills at once: a position
    with Gate(sim.url) as gate:
        orders_in, release = threading.Event(), threading.Event()
        gate.holds = {ORDERS: lambda: (orders_in.set(), release.wait(10)),
                      POSITION: lambda: orders_in.wait(5)}  # the position answers once both are sent
        broker = AlpacaBroker(make_trading_client(settings_for(gate.url)))
        try:
            assert broker.exposure("SPY") == Exposure("SPY", position_qty="1")
            assert gate.in_flight == 1  # the open-orders read is still held at the broker
        finally:
            release.set()


def test_an_open_orders_read_the_broker_does_not_answer_in_time_is_a_timeout_asked_once(sim: SimServer) -> None:
    broker = AlpacaBroker(make_trading_client(settings_for(sim.url, timeout_s=0.3)))
    fault(sim, mode="slow", method="GET", path="/v2/orders", delay=1.5)
    with pytest.raises(BrokerTransient, match="timeout: ReadTimeout"):
        broker.exposure("SPY")
    assert stats(sim)["requests"]["GET /v2/orders"] == 1


def test_an_open_orders_read_the_broker_fails_is_transient(sim: SimServer) -> None:
    broker = AlpacaBroker(make_trading_client(settings_for(sim.url)))
    fault(sim, mode="503", method="GET", path="/v2/orders")
    with pytest.raises(BrokerTransient, match="HTTP 503"):
        broker.exposure("SPY")


def test_row_9_sends_its_two_reads_and_nothing_else(sim: SimServer) -> None:
    broker = AlpacaBroker(make_trading_client(settings_for(sim.url)))
    assert broker.exposure("SPY") == Exposure("SPY")
    assert stats(sim)["requests"] == {"GET /v2/positions/SPY": 1, "GET /v2/orders": 1}
    assert stats(sim)["order_posts"] == 0


def test_the_probe_opens_every_connection(sim: SimServer) -> None:
    with Gate(sim.url) as gate:
        together = threading.Barrier(4, timeout=5)
        gate.holds = {("GET", "/v2/account"): together.wait}
        assert AlpacaBroker(make_trading_client(settings_for(gate.url))).probe().startswith("account ACTIVE")
        assert gate.most_in_flight == 4


def test_row_9_and_the_days_orders_are_at_the_broker_at_the_same_time(sim: SimServer) -> None:
    """The daily cap's broker count adds no round trip: its read is in flight with row 9's two."""
    with Gate(sim.url) as gate:
        together = threading.Barrier(3, timeout=5)
        gate.holds = {POSITION: together.wait, ORDERS: together.wait}
        broker = AlpacaBroker(make_trading_client(settings_for(gate.url)))
        assert broker.exposure("SPY", datetime.now(UTC) - timedelta(hours=1)) == Exposure("SPY", entries_today=0)
        assert gate.most_in_flight == 3


# TLS ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: a CA that only REQUESTS_CA_BUNDLE names."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_gate(sim: SimServer, certificate: tuple[Path, Path]) -> Iterator[Gate]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with Gate(sim.url, tls=context) as gate:
        yield gate


def test_both_reads_of_row_9_go_over_tls_verified_with_the_configured_ca(
        tls_gate: Gate, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    broker = AlpacaBroker(make_trading_client(settings_for(tls_gate.url)))
    assert broker.exposure("SPY") == Exposure("SPY")
    assert sorted(tls_gate.seen) == ["GET /v2/orders", "GET /v2/positions/SPY"]


@pytest.mark.parametrize("client_of", [lambda c: c, alpaca_compat.twin], ids=["client", "twin"])
def test_a_certificate_the_configured_ca_did_not_sign_is_refused(
        tls_gate: Gate, monkeypatch: pytest.MonkeyPatch, client_of: Callable[[TradingClient], TradingClient]) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)  # certifi's bundle, as requests uses
    client = client_of(make_trading_client(settings_for(tls_gate.url)))
    with pytest.raises(requests.exceptions.SSLError):
        client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=["SPY"], limit=5))
    assert tls_gate.seen == []


# The version whose internals alpaca_compat.py sets ------------------------------------------
def test_another_alpaca_py_version_is_refused_with_what_to_check() -> None:
    with pytest.raises(SystemExit) as refused:
        alpaca_compat.require_pinned("0.45.0")
    message = str(refused.value)
    assert "alpaca-py 0.45.0 is installed" in message and f"exactly {alpaca_compat.PINNED}" in message
    assert "_session" in message and "_retry" in message


def test_the_installed_alpaca_py_is_the_pinned_one() -> None:
    pinned = [dependency for dependency in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
              ["dependencies"] if dependency.startswith("alpaca-py")]
    assert pinned == [f"alpaca-py=={alpaca_compat.PINNED}"]
    alpaca_compat.require_pinned()  # the installed one: no exit


def test_a_process_with_another_alpaca_py_stops_at_start() -> None:
    code = ("import importlib.metadata as m; m.version = lambda name: '0.45.0'; "
            "import zero_tasks.adapters.alpaca_adapter; print('started')")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert run.returncode != 0 and "started" not in run.stdout
    assert f"alpaca-py 0.45.0 is installed, the gateway needs exactly {alpaca_compat.PINNED}" in run.stderr
