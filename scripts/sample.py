"""Demo helper for `make run`: set the market state and kill switch, publish a sample ranking.

    python scripts/sample.py market GREEN|YELLOW|RED
    python scripts/sample.py enable | disable
    python scripts/sample.py publish [TICKER] [--probability 0.95]

`publish` waits for the gateway's decision on chan:trade_update and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone

import redis


def client() -> redis.Redis:
    return redis.Redis(host=os.environ.get("REDIS_HOST", "127.0.0.1"), port=int(os.environ.get("REDIS_PORT", "6379")),
                       db=int(os.environ.get("REDIS_DB", "0")), decode_responses=True)


def sample(ticker: str, probability: float) -> dict:
    now = datetime.now(timezone.utc).isoformat()
    return {"schema_version": "1.0", "timestamp": now, "horizon": "H30", "rank_time": now, "total_candidates": 1,
            "opportunities": [{"schema_version": "1.0", "timestamp": now, "ticker": ticker, "horizon": "H30",
                               "direction": "LONG", "opportunity_score": 95, "probability": probability,
                               "target_atr": 1.5, "stop_atr": 0.75, "market_state": "GREEN",
                               "attention_stability_score": 80, "why": ["sample from scripts/sample.py"]}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("market")
    m.add_argument("state", choices=["GREEN", "YELLOW", "RED"])
    sub.add_parser("enable")
    sub.add_parser("disable")
    p = sub.add_parser("publish")
    p.add_argument("ticker", nargs="?", default="SPY")
    p.add_argument("--probability", type=float, default=0.95)
    args = parser.parse_args()
    r = client()
    if args.command == "market":
        r.set("key:market_state", json.dumps({"schema_version": "1.0", "timestamp": datetime.now(timezone.utc).isoformat(),
                                              "state": args.state, "reason": "set by scripts/sample.py"}))
        print(f"key:market_state = {args.state} (fresh for 300 s)")
    elif args.command == "enable":
        r.set("key:execution_enabled", "true")
        print("key:execution_enabled = true")
    elif args.command == "disable":
        r.set("key:execution_enabled", "false")
        print("key:execution_enabled = false")
    else:
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("chan:trade_update")
        pubsub.get_message(timeout=0.5)
        if r.publish("chan:opportunity_update", json.dumps(sample(args.ticker.upper(), args.probability))) == 0:
            sys.exit("nobody is subscribed to chan:opportunity_update: is `make run` running?")
        message = None
        for _ in range(100):
            message = pubsub.get_message(timeout=0.1)
            if message:
                break
        if not message:
            sys.exit("no decision within 10 s; see var/worker.log")
        update = json.loads(message["data"])
        print(f"{update['status']:<9} {update['execution_id']}  {update['why'][0]}")


if __name__ == "__main__":
    main()
