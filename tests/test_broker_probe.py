"""The bridge's /health broker check (bridge/broker_probe.py), against the real simulator."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from alpaca_paper_sim import SimServer
from bridge.broker_probe import BrokerProbe
from zero_tasks.settings import Settings

KEY, SECRET = "test-key-id", "test-secret-value"  # the pair the shared simulator lets in


def probe_for(url: str, timeout_s: float = 2.0) -> BrokerProbe:
    return BrokerProbe(Settings(alpaca_paper="true", alpaca_api_key=KEY, alpaca_secret_key=SECRET,
                                alpaca_base_url=url), timeout_s=timeout_s)


@pytest.fixture
def fresh_sim(sim: SimServer) -> Iterator[SimServer]:
    sim.state.clear_faults()
    yield sim
    sim.state.clear_faults()


def test_probe_reports_the_account_status_and_never_touches_orders(fresh_sim: SimServer) -> None:
    before = fresh_sim.state.stats()
    assert probe_for(fresh_sim.url)().startswith("account ACTIVE in ")
    after = fresh_sim.state.stats()
    assert after["order_posts"] == before["order_posts"] and after["orders_created"] == before["orders_created"]


def test_probe_raises_with_the_http_status_and_no_key_when_the_broker_fails(fresh_sim: SimServer) -> None:
    fresh_sim.state.add_fault({"mode": "503", "count": 1, "path": "/v2/account"})
    with pytest.raises(RuntimeError) as failure:
        probe_for(fresh_sim.url)()
    assert str(failure.value) == "HTTP 503"
    assert KEY not in repr(failure.value) and SECRET not in repr(failure.value)


class _Redirector(http.server.BaseHTTPRequestHandler):
    seen_keys: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # http.server's name
        self.send_response(302)
        self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()
        if self.path == "/elsewhere":
            _Redirector.seen_keys.append(self.headers.get("APCA-API-KEY-ID", ""))

    def log_message(self, *args: object) -> None:
        pass


def test_probe_refuses_a_redirect_so_keys_never_follow_it() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RuntimeError, match="HTTP 302"):
            probe_for(f"http://127.0.0.1:{server.server_port}")()
        assert _Redirector.seen_keys == []
    finally:
        server.shutdown()
        server.server_close()


def test_probe_times_out_on_a_silent_broker(fresh_sim: SimServer) -> None:
    fresh_sim.state.add_fault({"mode": "slow", "count": 1, "path": "/v2/account", "delay": 3})
    with pytest.raises(OSError, match="timed out"):  # TimeoutError, or URLError wrapping it: both are OSErrors
        probe_for(fresh_sim.url, timeout_s=0.5)()
