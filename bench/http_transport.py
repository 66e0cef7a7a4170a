"""`python -m bench.http_transport`: alpaca-py's calls over its stock requests session and
over the gateway's session (zero_tasks/adapters/alpaca_compat.py BrokerSession: requests with the
environment read once, not on every call), against the simulator.

Both clients run in this process, interleaved round by round, against one simulator in a
child process (its CPU is not ours): CPU and wall time per call, and the ratio. The three
calls are the ones an order makes: position (404), open orders, submit, one after another.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import string
import subprocess
import sys
import time
import urllib.request
import uuid

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest

from tests.support.procs import free_port, wait_for
from zero_tasks.adapters import alpaca_compat


def client(url: str, transport: str) -> TradingClient:
    trading = TradingClient("test-key-id", "test-secret-value", paper=True, url_override=url)
    if transport == "BrokerSession":
        return alpaca_compat.configure(trading, timeout=5.0, base_url=url)
    return alpaca_compat.without_retry(trading)


def one_order(trading: TradingClient, ticker: str) -> None:
    with contextlib.suppress(APIError):  # a new ticker has no position: a 404
        trading.get_open_position(ticker)
    trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=[ticker], limit=5))
    trading.submit_order(MarketOrderRequest(symbol=ticker, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                                            client_order_id=f"bench-{uuid.uuid4().hex}"))


def _letters() -> str:
    """Five random letters: a made-up ticker the simulator lists under --synthetic-assets."""
    return "".join(random.choice(string.ascii_uppercase) for _ in range(5))


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/_sim/stats", timeout=1).read()
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_transport", description=__doc__)
    parser.add_argument("-n", type=int, default=300, help="orders per client per round (3 calls each)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "alpaca_paper_sim", "--port", str(port), "--always-open",
                            "--fill-delay", "0", "--rate-limit", str(10**9), "--synthetic-assets",
                            "--starting-cash", str(10**8)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), 10, "simulator")
        clients = {f"alpaca-py + {t}": client(url, t) for t in ("requests", "BrokerSession")}
        totals = {name: [0.0, 0.0] for name in clients}
        for trading in clients.values():  # warm: connections, imports
            for _ in range(20):
                one_order(trading, "W" + _letters())
        for _ in range(args.rounds):
            for name, trading in clients.items():
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in range(args.n):
                    one_order(trading, "B" + _letters())
                totals[name][0] += time.process_time() - cpu0
                totals[name][1] += time.perf_counter() - wall0
        calls = 3 * args.n * args.rounds
        print(f"per broker call, {calls} calls each ({args.rounds} interleaved rounds), simulator in another process:")
        base_cpu, base_wall = totals["alpaca-py + requests"]
        for name, (cpu, wall) in totals.items():
            print(f"  {name:<28} CPU {1000 * cpu / calls:.3f} ms ({cpu / base_cpu:.2f}x)   "
                  f"wall {1000 * wall / calls:.3f} ms ({wall / base_wall:.2f}x)")
    finally:
        sim.terminate()
        sim.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
