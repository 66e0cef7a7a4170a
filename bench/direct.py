"""The direct baseline: what a user would write instead of a task queue.

One asyncio process: SUBSCRIBE chan:opportunity_update; per message parse the JSON, read
the kill switch and the market state in one MGET, check rank 1 (probability, direction,
age), claim the execution_id (SET NX EX), and submit with alpaca-py in a thread. No
queue, no audit, no TradeUpdate. `python -m bench.direct --redis-port P --sim-url U`.

`measure()` drives it from the bench: publish -> the simulator creates the order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHANNEL = "chan:opportunity_update"
ENABLED_KEY = "key:execution_enabled"
MARKET_KEY = "key:market_state"
SEEN_PREFIX = "key:execution_seen:"


def _utc(value: str) -> datetime:
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


async def run(redis_port: int, sim_url: str, max_seconds: float) -> None:
    import redis.asyncio as aioredis
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    from zero_tasks.adapters.alpaca_compat import without_retry

    trading = without_retry(TradingClient("test-key-id", "test-secret-value", paper=True, url_override=sim_url))
    r = aioredis.Redis(host="127.0.0.1", port=redis_port)
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = time.monotonic() + max_seconds
    print("direct: subscribed", flush=True)

    def submit(ticker: str, cid: str) -> None:
        trading.submit_order(MarketOrderRequest(symbol=ticker, qty=1, side=OrderSide.BUY,
                                                time_in_force=TimeInForce.DAY, client_order_id=cid))

    while not stop.is_set() and time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=0.5)
        if message is None:
            continue
        try:
            rank = json.loads(message["data"])
            top = rank["opportunities"][0]
            ticker, horizon = top["ticker"], top["horizon"]
            rank_time = _utc(rank["rank_time"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue  # invalid payload
        enabled, market_raw = await r.mget(ENABLED_KEY, MARKET_KEY)
        if enabled != b"true" or market_raw is None:
            continue
        try:
            market = json.loads(market_raw)
            market_age = (datetime.now(UTC) - _utc(market["timestamp"])).total_seconds()
        except (ValueError, KeyError, TypeError):
            continue
        if market.get("state") != "GREEN" or market_age > 300:
            continue
        if not isinstance(top.get("probability"), (int, float)) or top["probability"] < 0.90:
            continue
        if top.get("direction", "LONG") != "LONG":
            continue
        if (datetime.now(UTC) - rank_time).total_seconds() > 120:
            continue
        execution_id = f"{ticker}:{horizon}:{rank_time:%Y-%m-%dT%H:%M:%S}"
        if not await r.set(SEEN_PREFIX + execution_id, "direct", nx=True, ex=86400):
            continue  # duplicate
        try:
            await asyncio.to_thread(submit, ticker, f"zx-{execution_id}")
        except Exception as exc:  # noqa: BLE001 - a baseline, not a product: log and go on
            print(f"direct: submit failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    await pubsub.aclose()
    await r.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.direct")
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--sim-url", required=True)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args(argv)
    asyncio.run(run(args.redis_port, args.sim_url, args.max_seconds))
    return 0


# driven from the bench ------------------------------------------------------------------
def measure(stack: Any, n: int, warmup: int, timeout_s: float = 5.0, prefix: str = "DR") -> dict[str, Any]:
    from tests.support.procs import PYTHON, ROOT, Proc

    from .common import OPPORTUNITY_CHANNEL, Signal, Tickers, ms, set_green, summary, wait_until
    from .stack import rss_mb

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = stack.track(Proc("direct", [PYTHON, "-m", "bench.direct", "--redis-port", str(stack.port),
                                       "--sim-url", stack.sim_url, "--max-seconds", "600"], env, Path(stack.log_dir)))
    proc.start()
    r = stack.client()
    samples: list[float] = []
    timeouts = 0
    try:
        wait_until(lambda: stack.subscribers() >= 1 or not proc.alive(), 30, "direct baseline subscribed")
        if not proc.alive():
            raise RuntimeError(f"direct baseline exited:\n{proc.output()[-2000:]}")
        set_green(r)
        tickers = Tickers(prefix)
        for i in range(warmup + n):
            sig = Signal(tickers.next())
            t0 = time.perf_counter()
            r.publish(OPPORTUNITY_CHANNEL, sig.data)
            stamp = stack.state.wait_stamp(sig.client_order_id, timeout_s)
            if i < warmup:
                continue
            if stamp is None:
                timeouts += 1
            else:
                samples.append(ms(stamp[0] - t0))
        rss = rss_mb(proc.pid)
    finally:
        proc.stop()
        stack.state.reset()
    return {"signal_to_order_ms": summary(samples), "timeouts": timeouts, "rss_mb": rss}


if __name__ == "__main__":
    raise SystemExit(main())
