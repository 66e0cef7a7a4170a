"""The gateway's HTTP transport for alpaca-py (zero_tasks/broker_http.py).

What alpaca-py and the adapter read from a call must not change with the transport: the
request on the wire (query, headers, JSON body), the response, and the exception classes
of every failure. tests/test_simulator.py runs the simulator's whole suite through both
transports; these tests cover what the simulator cannot show, and the read sent ahead.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
import requests

from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from urllib3.connection import HTTPSConnection

from alpaca_paper_sim import SimServer, open_market
from zero_tasks.alpaca_adapter import AlpacaBroker, BrokerTransient, make_trading_client
from zero_tasks.broker_http import BrokerSession
from zero_tasks.settings import Settings


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else None
        payload = json.dumps({"method": self.command, "path": self.path, "body": body,
                              "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def both(url: str, method: str, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the echo server saw from requests and from BrokerSession, for one call."""
    plain = requests.Session().request(method, url, timeout=5, **kwargs).json()
    ours = BrokerSession(timeout=5, base_url=url).request(method, url, **kwargs).json()
    return plain, ours


def test_query_parameters_are_encoded_as_requests_encodes_them(echo: str) -> None:
    params = {"status": "open", "symbols": "SPY,QQQ", "limit": 5, "nested": ["a", "b"], "skipped": None,
              "after": "2026-11-24T14:30:00+00:00"}
    plain, ours = both(echo + "/v2/orders", "GET", params=params, allow_redirects=False)
    assert ours["path"] == plain["path"]


def test_a_json_body_and_alpaca_py_headers_arrive_as_sent(echo: str) -> None:
    headers = {"APCA-API-KEY-ID": "key", "APCA-API-SECRET-KEY": "secret", "User-Agent": "APCA-PY/0.44.0"}
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "client_order_id": "zx-SPY:H30:2026-11-24T14:30:00"}
    plain, ours = both(echo + "/v2/orders", "POST", json=body, headers=headers, allow_redirects=False)
    assert json.loads(ours["body"]) == json.loads(plain["body"]) == body
    for name in ("apca-api-key-id", "apca-api-secret-key", "user-agent", "content-type", "content-length"):
        assert ours["headers"][name] == plain["headers"][name], name


def test_an_option_alpaca_py_never_sends_goes_through_plain_requests(echo: str) -> None:
    session = BrokerSession(timeout=5, base_url=echo)
    response = session.request("GET", echo + "/v2/clock", stream=True)
    assert response.status_code == 200 and response.json()["path"] == "/v2/clock"


def test_a_broker_that_does_not_answer_in_time_is_a_read_timeout() -> None:
    with SimServer(state=open_market(), key_id="k", secret_key="s") as sim:
        requests.post(sim.url + "/_sim/fault", json={"mode": "slow", "delay": 1.0}, timeout=5)
        session = BrokerSession(timeout=0.2, base_url=sim.url)
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.request("GET", sim.url + "/v2/clock", headers={"APCA-API-KEY-ID": "k",
                                                                   "APCA-API-SECRET-KEY": "s"})


def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nobody listens there
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(requests.exceptions.ConnectionError):
        BrokerSession(timeout=1, base_url=url).request("GET", url + "/v2/clock")


def test_the_adapter_sees_a_slow_broker_as_transient_and_does_not_resend(monkeypatch: pytest.MonkeyPatch) -> None:
    with SimServer(state=open_market(), key_id="k", secret_key="s") as sim:
        for name, value in {"ALPACA_PAPER": "true", "ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s",
                            "TASK_SIGNING_KEY": "t" * 32,
                            "ALPACA_BASE_URL": sim.url, "BROKER_TIMEOUT_S": "0.2"}.items():
            monkeypatch.setenv(name, value)
        broker = AlpacaBroker(make_trading_client(Settings()))
        requests.post(sim.url + "/_sim/fault", json={"mode": "slow", "delay": 1.0, "method": "POST"}, timeout=5)
        with pytest.raises(BrokerTransient, match="timeout: ReadTimeout"):
            broker.submit_buy("SPY", "zx-SPY:H30:2026-11-24T14:30:00")
        stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
        assert stats["order_posts"] == 1  # one POST: no retry under the caller's feet
        assert isinstance(broker._client._session, BrokerSession)


def test_the_proxy_for_the_broker_is_read_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = BrokerSession(timeout=1, base_url="https://paper-api.alpaca.markets")
    assert session.proxies["https"] == "http://proxy.internal:3128"
    assert session._pool.proxy is not None and session._pool.proxy.host == "proxy.internal"
    assert session.trust_env is False


def test_the_paper_api_is_reached_only_over_verified_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = BrokerSession(timeout=1, base_url="https://paper-api.alpaca.markets")
    pool = session._pool.connection_from_url("https://paper-api.alpaca.markets")
    assert pool.cert_reqs == "CERT_REQUIRED"
    assert pool.ca_certs == requests.utils.DEFAULT_CA_BUNDLE_PATH  # certifi's bundle, as requests uses
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = BrokerSession(timeout=1, base_url="https://paper-api.alpaca.markets")
    assert session._pool.connection_from_url("https://paper-api.alpaca.markets").ca_certs == \
        "/etc/ssl/certs/ca-certificates.crt"


# Row 9's open-orders read sent ahead on a second connection (zero_tasks/broker_ahead.py) -----
@pytest.fixture
def sim_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimServer, AlpacaBroker]]:
    with SimServer(state=open_market(), key_id="k", secret_key="s") as sim:
        for name, value in {"ALPACA_PAPER": "true", "ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s",
                            "TASK_SIGNING_KEY": "t" * 32,
                            "ALPACA_BASE_URL": sim.url, "BROKER_TIMEOUT_S": "0.5"}.items():
            monkeypatch.setenv(name, value)
        yield sim, AlpacaBroker(make_trading_client(Settings()))


def sim_requests(sim: SimServer, key: str) -> int:
    return requests.get(sim.url + "/_sim/stats", timeout=5).json()["requests"].get(key, 0)


def fault(sim: SimServer, **rule: Any) -> None:
    requests.post(sim.url + "/_sim/fault", json=rule, timeout=5).raise_for_status()


def session_of(broker: AlpacaBroker) -> BrokerSession:
    session = broker.client._session
    assert isinstance(session, BrokerSession)
    return session


def test_the_open_orders_read_sent_ahead_answers_alpaca_pys_own_call(
        sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    assert broker.open_exposure("SPY") is None
    assert session_of(broker).answered_ahead == 1
    assert sim_requests(sim, "GET /v2/orders") == 1  # asked once, not once ahead and once more
    assert sim_requests(sim, "GET /v2/positions/SPY") == 1


def test_row_9s_two_reads_are_at_the_broker_at_the_same_time(sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    fault(sim, mode="slow", method="GET", path="/v2/positions", delay=0.4)
    answer: list[str | None] = []
    reader = threading.Thread(target=lambda: answer.append(broker.open_exposure("SPY")))
    reader.start()
    deadline = time.monotonic() + 5
    while sim_requests(sim, "GET /v2/positions/SPY") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # the broker still holds the position read, and already has the open-orders read
    assert reader.is_alive() and sim_requests(sim, "GET /v2/orders") == 1
    reader.join(5)
    assert answer == [None] and session_of(broker).answered_ahead == 1


def test_an_answer_nobody_asks_for_is_dropped_never_read_into_the_next_call(
        sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    broker.submit_buy("SPY", "zx-held")  # the simulator fills at once: a position
    assert broker.open_exposure("SPY") == "SPY position qty 1 at the broker"
    assert session_of(broker).answered_ahead == 0
    assert broker.open_exposure("QQQ") is None  # the SPY answer is not taken for QQQ's
    assert broker.find_order("zx-held") is not None
    assert session_of(broker).answered_ahead == 1


def test_a_read_sent_ahead_is_answered_only_to_the_same_request(sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    client = broker.client
    spy = GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=["SPY"], limit=5)
    qqq = GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=["QQQ"], limit=5)
    with session_of(broker).ahead(lambda: client.get_orders(spy)):
        assert client.get_orders(qqq) == []
    assert session_of(broker).answered_ahead == 0
    assert sim_requests(sim, "GET /v2/orders") == 2
    assert client.get_orders(spy) == []  # the unread SPY answer was dropped with its connection


def test_an_order_is_never_sent_ahead(sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    order = MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                               client_order_id="zx-never-ahead")
    with session_of(broker).ahead(lambda: broker.client.submit_order(order)):
        assert requests.get(sim.url + "/_sim/stats", timeout=5).json()["order_posts"] == 0
    assert requests.get(sim.url + "/_sim/stats", timeout=5).json()["order_posts"] == 0


def test_a_read_sent_ahead_that_loses_its_connection_is_asked_again(sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    fault(sim, mode="drop", method="GET", path="/v2/orders")
    assert broker.open_exposure("SPY") is None
    assert sim_requests(sim, "GET /v2/orders") == 2
    assert broker.open_exposure("QQQ") is None and session_of(broker).answered_ahead == 1  # the line reconnects


def test_a_read_sent_ahead_that_the_broker_does_not_answer_in_time_is_a_timeout(
        sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    fault(sim, mode="slow", method="GET", path="/v2/orders", delay=1.5)
    with pytest.raises(BrokerTransient, match="timeout: ReadTimeout"):
        broker.open_exposure("SPY")
    assert sim_requests(sim, "GET /v2/orders") == 1  # not asked twice


def test_a_read_sent_ahead_to_the_paper_api_goes_over_verified_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = BrokerSession(timeout=1, base_url="https://paper-api.alpaca.markets")
    line = session._line()
    assert line is not None
    conn = line._conn
    assert isinstance(conn, HTTPSConnection) and (conn.host, conn.port) == ("paper-api.alpaca.markets", 443)
    assert conn.cert_reqs == "CERT_REQUIRED" and conn.ca_certs == "/etc/ssl/certs/ca-certificates.crt"


def test_each_thread_sends_ahead_on_its_own_line(sim_broker: tuple[SimServer, AlpacaBroker]) -> None:
    sim, broker = sim_broker
    fault(sim, mode="slow", method="GET", path="/v2/positions", delay=0.3, count=2)  # both inside at once
    answers: list[str | None] = []
    readers = [threading.Thread(target=lambda t=t: answers.append(broker.open_exposure(t))) for t in ("SPY", "QQQ")]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(5)
    assert answers == [None, None] and session_of(broker).answered_ahead == 2
    assert sim_requests(sim, "GET /v2/orders") == 2


def test_nothing_is_sent_ahead_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = BrokerSession(timeout=1, base_url="http://broker.internal")
    calls: list[int] = []
    with session.ahead(lambda: calls.append(1)):
        pass
    assert calls == [] and session.answered_ahead == 0
