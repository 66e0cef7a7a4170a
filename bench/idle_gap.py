"""What a user feels: HTTPS, the broker 20 ms away, and signals far apart.

ZERO ranks about once a minute; in between, a server (or a NAT, or a load balancer) closes
a keep-alive connection left idle, and the next order pays a new TCP and TLS handshake.
This phase scales that down: a second simulator endpoint on the same broker state serves
HTTPS (TLS 1.3, a throw-away test CA the gateway trusts through ALPACA_CA_FILE) and closes
a connection idle for `idle_s`; a gateway of its own (SQLite audit) gets one signal every
`gap_s`, a little more than that. Its signal-to-order p50 and p99 are read against the
contract floor (PUBLISH + row 9 + submit) and the bare floor (PUBLISH + one submit round
trip, as the 20 ms phase's floor; also to the order's creation, the strict one) over a warm
HTTPS connection at the same distance, sampled a few times right before each signal (on an endpoint of its own, so
its connections are not counted as the gateway's), so that the floor and the signal
meet the machine in the same state. The simulator holds every request 20 ms (the `slow`
fault) and every new connection 40 ms (`connect_delay_s`: the TCP and the TLS 1.3 round
trips), so a connection closed in a gap costs the next order what it costs across the
internet. The gateway's BROKER_KEEP_WARM_S is half the idle timeout
(its default of 30 s is half the commonest 60 s one), or BROKER_KEEP_WARM_S from the
bench's environment (0: off, the before of a before/after).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from alpaca_paper_sim import SimServer, make_test_tls

from . import floor as floor_mod
from . import gateway as gateway_mod
from .common import TRADE_UPDATE_CHANNEL, letters, list_at_broker, summary, wait_until
from .distant import DELAY_MS, broker_at
from .stack import EventCollector, GatewayProcs, Stack

KEY = "https_20ms_idle_gap"  # its key in the result: TLS, the distance, the idle gap


def keep_warm_s(idle_s: float) -> str:
    return os.environ.get("BROKER_KEEP_WARM_S") or f"{idle_s / 2:g}"


def run(stack: Stack, log_dir: Path, n: int, idle_s: float, gap_s: float, floor_n: int, prefix: str = "GI",
        reset_risk: bool = True, delay_ms: float = DELAY_MS) -> dict[str, Any]:
    tls = make_test_tls()
    ca = tls.write_ca(log_dir / "idle-gap-ca.pem")
    # a new connection costs what it costs at that distance: a TCP and a TLS 1.3 round trip
    https = SimServer(state=stack.state, tls=tls, idle_timeout_s=idle_s, connect_delay_s=2 * delay_ms / 1000).start()
    warm = keep_warm_s(idle_s)
    out: dict[str, Any] = {"tls": "TLSv1.3", "delay_ms": delay_ms, "connect_delay_ms": 2 * delay_ms,
                           "idle_timeout_s": idle_s, "gap_s": gap_s,
                           "broker_keep_warm_s": float(warm), "n": n}
    stack.state.reset()
    stack.client().flushall()
    list_at_broker(stack.state, prefix + "W", prefix + "M", prefix + "R")  # listed, as ZERO's tickers are
    gw = GatewayProcs(stack, f"sqlite:///{log_dir / 'idle-gap.db'}", "gw-idle-gap", mirror=True,
                      ALPACA_BASE_URL=https.url, ALPACA_CA_FILE=str(ca), BROKER_KEEP_WARM_S=warm)
    collector = EventCollector(stack.port)
    collector.start()
    # the floor's own endpoint on the same state and terms: its connections are not counted
    # as the gateway's
    floor_https = SimServer(state=stack.state, tls=tls, idle_timeout_s=idle_s,
                            connect_delay_s=2 * delay_ms / 1000).start()
    try:
        pubsub = summary(floor_mod.pubsub_floor(stack, max(floor_n, 30)))
        with broker_at(stack, delay_ms):
            wait_until(lambda: stack.subscribers(TRADE_UPDATE_CHANNEL) >= 1, 10, "trade_update subscriber")
            gw.start()
            # one signal per pool process first, back to back: each process's first order
            # is the first-signal figure's, not this phase's
            gateway_mod.first_signals(stack, gw, collector, 2, prefix + "W", reset_risk=reset_risk)
            floor = floor_mod.ContractFloor(stack, floor_https.url, str(ca), prefix="FG")
            bare = floor_mod.ContractFloor(stack, floor_https.url, str(ca), prefix="FB", reads=False)
            floor_samples: list[float] = []
            bare_samples: list[float] = []
            bare_round_trips: list[float] = []
            statuses: dict[str, int] = {}

            def signals(tag: str) -> list[float]:
                samples: list[float] = []
                for i in range(n):
                    time.sleep(gap_s)
                    # the warm floors, right before the signal, so both meet the machine as it is
                    # now: the first call of a burst reopens the connection the gap closed (not kept)
                    floor_samples.extend(floor.sample(max(1, floor_n // n), warmup=1))
                    bare_samples.extend(bare.sample(max(1, floor_n // n), warmup=1, round_trips=bare_round_trips))
                    one = gateway_mod.signal_to_order(stack, gw, collector, 1, 0, f"{prefix}{tag}{letters(i, 2)}",
                                                      reset_risk=reset_risk)
                    for status, count in one["statuses"].items():
                        statuses[status] = statuses.get(status, 0) + count
                    if one["signal_to_order_ms"]["p50"] is not None:
                        samples.append(one["signal_to_order_ms"]["p50"])
                return samples

            before = https.connection_stats()
            mirrored = signals("M")  # row 9 from the account mirror, as deployed
            after = https.connection_stats()
            gw.mirror_off()
            rest = signals("R")  # the same without it: row 9 by REST, as before the mirror
        contract, submit, round_trip = summary(floor_samples), summary(bare_samples), summary(bare_round_trips)
        out["floor"] = {"pubsub_ms": pubsub, "contract_calls_to_order_ms": contract, "submit_to_order_ms": submit,
                        "submit_rt_ms": round_trip,
                        "contract_sum_p50_ms": round(pubsub["p50"] + contract["p50"], 3),
                        # the floor of the issue and of the 20 ms phase: PUBLISH + one submit round trip
                        "sum_p50_ms": round(pubsub["p50"] + round_trip["p50"], 3),
                        # PUBLISH + the submit until the order exists (its answer not back yet)
                        "strict_sum_p50_ms": round(pubsub["p50"] + submit["p50"], 3)}
        out["signal_to_order_ms"] = summary(mirrored)
        out["rest_signal_to_order_ms"] = summary(rest)
        out["statuses"] = statuses
        out["connections"] = {name: after[name] - before[name]
                              for name in ("accepted", "idle_closed", "tls_handshakes")}
        out["connections"]["tls_versions"] = after["tls_versions"]
        out["ratios"] = ratios(out)
        return out
    finally:
        collector.stop()
        gw.stop()
        https.stop()
        floor_https.stop()


def ratios(phase: dict[str, Any]) -> dict[str, Any]:
    s, floor = phase["signal_to_order_ms"], phase["floor"]["contract_sum_p50_ms"]
    bare, rest = phase["floor"].get("sum_p50_ms"), phase.get("rest_signal_to_order_ms") or {}
    if not s.get("p50") or not floor:
        return {}
    out = {"p50_over_warm_contract_floor": round(s["p50"] / floor, 2),
           "p99_over_warm_contract_floor": round(s["p99"] / floor, 2)}
    strict = phase["floor"].get("strict_sum_p50_ms")
    if bare:
        out["p50_over_warm_floor"] = round(s["p50"] / bare, 2)  # PUBLISH + one submit round trip
        if rest.get("p50"):
            out["rest_p50_over_warm_floor"] = round(rest["p50"] / bare, 2)
            out["rest_p50_over_warm_contract_floor"] = round(rest["p50"] / floor, 2)
    if strict:
        out["p50_over_strict_warm_floor"] = round(s["p50"] / strict, 2)  # to the order's creation only
    return out
