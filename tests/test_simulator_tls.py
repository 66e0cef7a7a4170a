"""The simulator's HTTPS and idle close: TLS 1.3 with a throw-away test CA, a client that does
not trust that CA (or speaks at most TLS 1.2) refused, and a keep-alive connection closed
after the idle timeout while a busy one is kept; a connection the client resets is counted,
not printed. Read from the server's connection counters (`/_sim/connections`); no Redis, no
gateway."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from alpaca_paper_sim import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, SimServer, TestTLS, make_test_tls, open_market
from tests.support.procs import PYTHON, ROOT, wait_for

HEADERS = {"APCA-API-KEY-ID": DEFAULT_KEY_ID, "APCA-API-SECRET-KEY": DEFAULT_SECRET_KEY}


@pytest.fixture(scope="module")
def tls() -> TestTLS:
    return make_test_tls()


@pytest.fixture(scope="module")
def ca_file(tls: TestTLS, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tls.write_ca(tmp_path_factory.mktemp("sim_tls") / "ca.pem"))


@pytest.fixture
def https_sim(tls: TestTLS) -> Iterator[SimServer]:
    with SimServer(state=open_market(), tls=tls) as sim:
        yield sim


def grew(sim: SimServer, before: dict[str, Any], name: str) -> int:
    return sim.connection_stats()[name] - before[name]


def test_the_simulator_serves_https_with_tls_1_3_to_a_client_trusting_its_ca(https_sim: SimServer,
                                                                           ca_file: str) -> None:
    assert https_sim.url.startswith("https://127.0.0.1:")
    response = requests.get(https_sim.url + "/v2/account", headers=HEADERS, verify=ca_file, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ACTIVE"
    stats = https_sim.connection_stats()
    assert stats["tls"] is True
    assert stats["tls_handshakes"] == 1 and stats["tls_versions"] == {"TLSv1.3": 1}
    assert stats["tls_refused"] == 0


def test_a_client_that_does_not_trust_the_test_ca_is_refused(https_sim: SimServer) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_sim.url + "/v2/account", headers=HEADERS, timeout=10)  # certifi's CAs only
    wait_for(lambda: https_sim.connection_stats()["tls_refused"] == 1, 10, "the refusal counted")
    assert https_sim.connection_stats()["tls_handshakes"] == 0


def test_a_client_speaking_at_most_tls_1_2_is_refused(https_sim: SimServer, ca_file: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((https_sim.host, https_sim.port), timeout=10) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname=https_sim.host)
    wait_for(lambda: https_sim.connection_stats()["tls_refused"] == 1, 10, "the refusal counted")
    assert https_sim.connection_stats()["tls_handshakes"] == 0


def test_the_idle_timeout_closes_an_idle_keep_alive_connection(tls: TestTLS, ca_file: str) -> None:
    with SimServer(state=open_market(), tls=tls, idle_timeout_s=0.5) as sim, requests.Session() as session:
        session.verify, session.trust_env = ca_file, False  # REQUESTS_CA_BUNDLE would override verify
        assert session.get(sim.url + "/v2/clock", headers=HEADERS, timeout=10).status_code == 200
        before = sim.connection_stats()
        wait_for(lambda: sim.connection_stats()["idle_closed"] > before["idle_closed"], 10, "the idle close")
        assert sim.connection_stats()["open"] == 0
        assert session.get(sim.url + "/v2/clock", headers=HEADERS, timeout=10).status_code == 200
        assert grew(sim, before, "accepted") == 1  # the second request needed a new connection
        assert grew(sim, before, "tls_handshakes") == 1


def test_the_idle_timeout_keeps_a_busy_keep_alive_connection(tls: TestTLS, ca_file: str) -> None:
    with SimServer(state=open_market(), tls=tls, idle_timeout_s=1.0) as sim, requests.Session() as session:
        session.verify, session.trust_env = ca_file, False  # REQUESTS_CA_BUNDLE would override verify
        assert session.get(sim.url + "/v2/clock", headers=HEADERS, timeout=10).status_code == 200
        before = sim.connection_stats()
        for _ in range(20):  # 2 s of requests 0.1 s apart: longer than the timeout, never idle that long
            time.sleep(0.1)
            assert session.get(sim.url + "/v2/clock", headers=HEADERS, timeout=10).status_code == 200
        assert grew(sim, before, "accepted") == 0
        assert grew(sim, before, "idle_closed") == 0
        assert sim.connection_stats()["open"] == 1


def test_a_connection_reset_by_the_client_is_counted_without_a_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    with SimServer(state=open_market()) as sim:
        before = sim.connection_stats()
        with socket.create_connection((sim.host, sim.port), timeout=10) as raw:
            wait_for(lambda: sim.connection_stats()["open"] == 1, 10, "the connection's handler")
            raw.sendall(b"GET /v2/clo")  # half a request line: the handler waits for the rest
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        wait_for(lambda: grew(sim, before, "reset") == 1, 10, "the reset counted")
        assert sim.connection_stats()["open"] == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err, err


def test_the_connection_counters_are_served_at_sim_connections(https_sim: SimServer, ca_file: str) -> None:
    with requests.Session() as session:
        session.verify, session.trust_env = ca_file, False  # REQUESTS_CA_BUNDLE would override verify
        for _ in range(3):
            session.get(https_sim.url + "/v2/clock", headers=HEADERS, timeout=10)
        served = session.get(https_sim.url + "/_sim/connections", timeout=10).json()
    assert served == {"accepted": 1, "tls_handshakes": 1, "tls_refused": 0, "idle_closed": 0, "reset": 0, "open": 1,
                      "tls_versions": {"TLSv1.3": 1}, "tls": True, "idle_timeout_s": None,
                      "connect_delay_s": 0.0, "stream_clients": 0, "stream_listeners": 0}


def test_the_command_line_serves_https_with_the_ca_it_writes_and_an_idle_timeout(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    proc = subprocess.Popen([PYTHON, "-m", "alpaca_paper_sim", "--port", "0", "--always-open", "--tls",
                             "--ca-out", str(ca), "--idle-timeout", "0.5"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("https://127.0.0.1:"), url
        served = requests.get(url + "/_sim/connections", verify=str(ca), timeout=10).json()
        assert served["tls"] is True and served["idle_timeout_s"] == 0.5
        assert b"PRIVATE KEY" not in ca.read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize("argv", [["--tls"], ["--ca-out", "/tmp/never.pem"], ["--idle-timeout", "0"]],
                         ids=["tls-without-ca-out", "ca-out-without-tls", "zero-idle-timeout"])
def test_the_command_line_refuses_an_incomplete_tls_or_idle_option(argv: list[str]) -> None:
    done = subprocess.run([PYTHON, "-m", "alpaca_paper_sim", "--port", "0", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and ("--ca-out" in done.stderr or "--idle-timeout" in done.stderr), done.stderr
