"""The gateway over HTTPS: the real bridge, worker and alpaca-py against the simulator
serving TLS 1.3 with a throw-away test CA, trusted only through ALPACA_CA_FILE.

The test's own admin calls (reset, orders) go to a plain-HTTP twin of the same simulator
(one broker state behind two endpoints); the gateway knows only the HTTPS one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alpaca_paper_sim import SimServer, make_test_tls, open_market
from tests.support.gateway import Gateway, opportunity, ranking
from tests.support.procs import PrivateRedis, health


@pytest.fixture(scope="module")
def https_gateway(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, SimServer]]:
    tmp = tmp_path_factory.mktemp("https_e2e")
    tls = make_test_tls()
    ca = tls.write_ca(tmp / "ca.pem")
    state = open_market()
    with SimServer(state=state, tls=tls) as https, SimServer(state=state) as plain:
        server = PrivateRedis(log_dir).start()
        gw = Gateway(log_dir, server, https.url, f"sqlite:///{tmp / 'audit.db'}", workers=1, bridges=1,
                     ALPACA_CA_FILE=str(ca))
        gw.sim_url = plain.url  # the test's admin calls; the gateway's processes have the https URL
        try:
            yield gw.start(), https
        finally:
            gw.stop()
            server.stop()


@pytest.mark.e2e
def test_an_order_reaches_the_https_simulator_over_tls_1_3_trusting_only_alpaca_ca_file(
        https_gateway: tuple[Gateway, SimServer]) -> None:
    gw, https = https_gateway
    gw.reset()
    gw.green()
    (event,) = gw.decide(ranking(opportunity("SPY")), timeout=30)
    assert event["status"] == "SUBMITTED", event
    assert [o["symbol"] for o in gw.orders()] == ["SPY"]
    stats = https.connection_stats()
    assert stats["tls_handshakes"] >= 2 and set(stats["tls_versions"]) == {"TLSv1.3"}  # both broker connections
    assert stats["tls_refused"] == 0
    _, body = health(gw.api_port)  # the bridge's broker probe trusts the same CA
    assert body["checks"]["broker"]["ok"] is True, body
