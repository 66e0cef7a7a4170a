"""CLI: ``python -m alpaca_paper_sim --host 127.0.0.1 --port 8100 [--verbose]``.

Market options: ``--always-open`` (a session around the clock, for demos; the default is
New York regular hours, Monday-Friday), ``--holiday 2026-11-26`` (repeatable),
``--fill-delay 0.5`` (seconds from acceptance to a market order's fill; 0 = at once),
``--rate-limit 200`` (requests a minute). Keys: ``--key-id``/``--secret-key``, or
ALPACA_SIM_KEY_ID / ALPACA_SIM_SECRET_KEY (the environment keeps a real secret out of `ps`);
only that pair is let in.

Connection options: ``--tls`` serves HTTPS (TLS 1.3) with a certificate from a throw-away
test CA made at start, whose certificate ``--ca-out PATH`` writes where the gateway's
ALPACA_CA_FILE points (required with ``--tls``: nothing else can trust it);
``--idle-timeout 5`` closes a keep-alive connection that sends no request for 5 seconds,
as servers across the internet do (default: never).

Prints one line with the URL (port 0 picks a free port, so callers read the real one
from that line), then one with the trade_updates websocket's URL (``--stream-port``, a free
port by default), and serves until SIGINT/SIGTERM, then exits 0 so
process supervisors and test harnesses see a clean shutdown.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from datetime import date
from types import FrameType

from .ratelimit import DEFAULT_LIMIT_PER_MIN
from .server import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, SimServer
from .session import TradingSession
from .state import DEFAULT_FILL_DELAY_S, BrokerState
from .tls import make_test_tls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alpaca_paper_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--always-open", action="store_true", help="the market never closes (demo)")
    parser.add_argument("--holiday", action="append", type=date.fromisoformat, default=[],
                        help="a New York date the market stays closed (repeatable)")
    parser.add_argument("--fill-delay", type=float, default=DEFAULT_FILL_DELAY_S,
                        help="seconds from acceptance to a market order's fill (0 = at once)")
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_LIMIT_PER_MIN, help="requests a minute")
    parser.add_argument("--key-id", default=os.environ.get("ALPACA_SIM_KEY_ID", DEFAULT_KEY_ID))
    parser.add_argument("--secret-key", default=os.environ.get("ALPACA_SIM_SECRET_KEY", DEFAULT_SECRET_KEY))
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (TLS 1.3) with a fresh test CA")
    parser.add_argument("--ca-out", default=None, help="with --tls: write the test CA's certificate here")
    parser.add_argument("--stream-port", type=int, default=0,
                        help="port of the trade_updates websocket (default: a free one, printed at start)")
    parser.add_argument("--synthetic-assets", action="store_true",
                        help="answer any plain made-up equity symbol as a listed asset (tests, demos)")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="close a keep-alive connection idle this many seconds (default: never)")
    args = parser.parse_args(argv)
    if args.fill_delay < 0 or args.rate_limit < 1:
        parser.error("--fill-delay must be >= 0 and --rate-limit >= 1")
    if args.tls != (args.ca_out is not None):
        parser.error("--tls and --ca-out PATH go together (a client trusts only the CA written there)")
    if args.idle_timeout is not None and args.idle_timeout <= 0:
        parser.error("--idle-timeout must be > 0 seconds")
    tls = make_test_tls() if args.tls else None
    if tls is not None:
        tls.write_ca(args.ca_out)
    session = TradingSession.around_the_clock() if args.always_open else TradingSession.new_york(args.holiday)
    state = BrokerState(fill_delay_s=args.fill_delay, session=session, rate_limit=args.rate_limit,
                        synthetic_assets=args.synthetic_assets)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    server = SimServer(args.host, args.port, verbose=args.verbose, state=state,
                       key_id=args.key_id, secret_key=args.secret_key, tls=tls,
                       idle_timeout_s=args.idle_timeout, stream_port=args.stream_port).start()
    print(f"alpaca_paper_sim listening on {server.url}", flush=True)
    print(f"alpaca_paper_sim trade_updates stream on {server.stream_url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
