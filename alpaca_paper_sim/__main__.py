"""CLI: ``python -m alpaca_paper_sim --host 127.0.0.1 --port 8100 [--verbose]``.

Prints exactly one line with the URL (port 0 picks a free port, so callers read
the real one from that line) and serves until SIGINT/SIGTERM, then exits 0 so
process supervisors and test harnesses see a clean shutdown.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import Optional

from .server import SimServer


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alpaca_paper_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    server = SimServer(args.host, args.port, verbose=args.verbose).start()
    print(f"alpaca_paper_sim listening on {server.url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
