"""`python -m bench` (full) / `python -m bench --quick` (small N, SQLite only, < 60 s).

Phases, in one run, on one private redis-server and one in-process simulator:
floor -> direct baseline -> floor and direct baseline with the broker 20 ms away ->
gateway with SQLite audit (latency, decisions, latency with the broker 20 ms away,
burst) -> gateway with PostgreSQL audit (schema `bench`) -> floor again. Every child process is
stopped in a `finally`; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import burst as burst_mod
from . import direct as direct_mod
from . import distant as distant_mod
from . import floor as floor_mod
from . import gateway as gateway_mod
from . import idle_gap as idle_gap_mod
from . import trace as trace_mod
from .common import TRADE_UPDATE_CHANNEL, list_at_broker, wait_until
from .report import machine, postgres_version, render, targets, write
from .stack import PG_BASE_URL, EventCollector, GatewayProcs, Stack, pg_url


@dataclass(frozen=True)
class Plan:
    floor_n: int
    direct_n: int
    warmup: int
    latency_n: int
    decision_n: int
    burst_n: int
    burst_timeout_s: float
    postgres: bool
    postgres_burst: bool
    trace_n: int
    distant_n: int  # signals with the broker DELAY_MS away (SQLite phase)
    idle_gap_n: int  # HTTPS, broker DELAY_MS away, signals idle_gap_s apart (idle_gap.py)
    idle_timeout_s: float  # the HTTPS endpoint closes a connection idle this long
    idle_gap_s: float


FULL = Plan(floor_n=300, direct_n=300, warmup=20, latency_n=300, decision_n=200, burst_n=10_000,
            burst_timeout_s=300, postgres=True, postgres_burst=True, trace_n=50, distant_n=50,
            idle_gap_n=10, idle_timeout_s=3.0, idle_gap_s=4.0)
QUICK = Plan(floor_n=50, direct_n=20, warmup=5, latency_n=20, decision_n=20, burst_n=500,
             burst_timeout_s=30, postgres=False, postgres_burst=False, trace_n=10, distant_n=5,
             idle_gap_n=2, idle_timeout_s=1.0, idle_gap_s=1.5)


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: children are stopped


def start_profilers(gw: GatewayProcs, out_dir: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """py-spy (not a dependency: `.venv/bin/pip install py-spy`) on the bridge and every worker
    process, wall-clock (--idle), collapsed stacks, for the latency phase only."""
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.exists():
        print("[bench] --profile: py-spy is not installed in the venv; no profile", flush=True)
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    targets_ = [(gw.bridge.pid, "bridge")] + [(p, role.replace(" ", "-")) for p, role in gw.pids()["workers"]]
    procs = []
    for pid, role in targets_:
        path = out_dir / f"{role}-{pid}.txt"
        procs.append((subprocess.Popen([str(binary), "record", "--pid", str(pid), "--rate", "250", "--idle",
                                        "--nonblocking", "--format", "raw", "--output", str(path)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True), path))
    time.sleep(1.0)  # attached
    return procs


def stop_profilers(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> list[str]:
    for proc, _ in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc, _ in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return [str(path) for _, path in procs]


def run_gateway(stack: Stack, db: str, plan: Plan, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    url = pg_url() if db == "postgres" else f"sqlite:///{log_dir / 'execution_log.db'}"
    prefix = "GS" if db == "sqlite" else "GP"
    reset = not args.keep_risk_limits
    stack.state.reset()
    # Each phase starts from an empty Redis: the previous phase's delayed follow-ups (for
    # orders the simulator reset just forgot) would otherwise run in this phase's worker.
    stack.client().flushall()
    # the signal-to-order phases' tickers, listed at the broker as ZERO's are (common.list_at_broker)
    list_at_broker(stack.state, *(prefix + phase for phase in ("F", "W", "L", "T", "R", "Q")))
    # with the account mirror, as deployed (row 9 from it); the distant phase runs once more without it
    gw = GatewayProcs(stack, url, f"gw-{db}", workers=args.workers, concurrency=args.concurrency, mirror=True)
    collector = EventCollector(stack.port)
    collector.start()
    out: dict[str, Any] = {"database": url.split("?")[0] if db == "postgres" else "sqlite (file, WAL)"}
    try:
        wait_until(lambda: stack.subscribers(TRADE_UPDATE_CHANNEL) >= 1, 10, "trade_update subscriber")
        t0 = time.monotonic()
        gw.start()
        out["start_s"] = round(time.monotonic() - t0, 2)
        first = gateway_mod.first_signals(stack, gw, collector, args.workers * args.concurrency, prefix + "F",
                                          reset_risk=reset)
        # warm-up: the caches of every path (CPython, SQLite's page cache, the simulator)
        gateway_mod.signal_to_order(stack, gw, collector, 0, plan.warmup, prefix + "W", reset_risk=reset)
        time.sleep(1.0)
        rest = gw.memory()
        print(f"[bench] {db}: warm; measuring signal->order x{plan.latency_n}", flush=True)
        profilers = start_profilers(gw, log_dir / f"profile-{db}") if args.profile and db == "sqlite" else []
        try:
            out["latency"] = gateway_mod.signal_to_order(stack, gw, collector, plan.latency_n, 0, prefix + "L",
                                                         reset_risk=reset)
        finally:
            if profilers:
                out["profiles"] = stop_profilers(profilers)
        out["first_signal"] = gateway_mod.first_signal_figure(first, out["latency"]["signal_to_order_ms"]["p50"])
        if plan.trace_n:
            print(f"[bench] {db}: traced run x{plan.trace_n} (Redis MONITOR)", flush=True)
            out["trace"] = trace_mod.run(stack, gw, collector, plan.trace_n, prefix + "T", reset_risk=reset,
                                        dump=log_dir / f"monitor-{db}.txt")
        print(f"[bench] {db}: signal->decision x{plan.decision_n}", flush=True)
        out["decisions"] = gateway_mod.signal_to_decision(stack, collector, plan.decision_n, prefix + "D")
        if plan.distant_n and db == "sqlite":
            print(f"[bench] {db}: signal->order x{plan.distant_n}, broker {distant_mod.DELAY_MS:.0f} ms away",
                  flush=True)
            out["distant"] = distant_mod.gateway(stack, gw, collector, plan.distant_n, 3, prefix + "R", reset)
            out["distant"]["row9"] = gw.mirror_state()
            print(f"[bench] {db}: the same without the account mirror (row 9 by REST)", flush=True)
            gw.mirror_off()
            out["distant_rest"] = distant_mod.gateway(stack, gw, collector, plan.distant_n, 3, prefix + "Q", reset)
            gw.mirror_on()
        out["burst"] = None
        if plan.burst_n and (db == "sqlite" or plan.postgres_burst):
            print(f"[bench] {db}: burst of {plan.burst_n}", flush=True)
            timeout = max(plan.burst_timeout_s, plan.burst_n / 25)  # bounded, and room for 25 decisions/s
            out["burst"] = burst_mod.run(stack, gw, collector, plan.burst_n, prefix + "B", timeout,
                                         reset_risk=reset)
        out["cost"] = {"rest": rest, "after_burst": gw.memory() if out["burst"] else None,
                       "cpu_s_per_1000_decisions": (out["burst"] or {}).get("cpu_s_per_1000_decisions")}
        out["orders"] = stack.state.duplicate_orders()
        out["order_posts"] = stack.state.stats()["order_posts"]
        out["logs"] = {p.name: str(p.log_path) for p in [gw.bridge, *gw.workers]}
        return out
    finally:
        collector.stop()
        gw.stop()


def idle_gap(stack: Stack, plan: Plan, args: argparse.Namespace, log_dir: Path,
             result: dict[str, Any]) -> dict[str, Any] | None:
    print(f"[bench] HTTPS, broker {distant_mod.DELAY_MS:.0f} ms away, x{plan.idle_gap_n} signals "
          f"{plan.idle_gap_s:g} s apart (idle timeout {plan.idle_timeout_s:g} s, keep-warm "
          f"{idle_gap_mod.keep_warm_s(plan.idle_timeout_s)} s)", flush=True)
    try:
        return idle_gap_mod.run(stack, log_dir, plan.idle_gap_n, plan.idle_timeout_s, plan.idle_gap_s,
                                max(50, plan.floor_n // 6), reset_risk=not args.keep_risk_limits)
    except Exception as exc:  # noqa: BLE001 - report it, go on with the next phase
        traceback.print_exc()
        result["errors"].append(f"{idle_gap_mod.KEY}: {type(exc).__name__}: {str(exc)[:2000]}")
        return None


def idle_gap_only(stack: Stack, plan: Plan, args: argparse.Namespace, log_dir: Path, result: dict[str, Any]) -> int:
    """`--idle-gap-only`: the phase alone, its JSON in the log directory (a partial run is
    never latest.json)."""
    result["mode"] += " idle-gap-only"
    phase = result[idle_gap_mod.KEY] = idle_gap(stack, plan, args, log_dir, result)
    path = log_dir / "idle-gap.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(phase, indent=2, default=str))
    print(f"JSON: {path}")
    return 0 if phase else 1


def lower_floor(*floors: dict[str, Any] | None) -> dict[str, float]:
    """The floor is a lower bound: of its two measurements in this run (first and last
    phase), the lower counts. A cold process or a busy moment only ever raises it."""
    measured = [f for f in floors if f]
    return {key: min(f[key] for f in measured)
            for key in ("sum_p50_ms", "sum_p99_ms", "strict_sum_p50_ms", "contract_sum_p50_ms")}


def ratios(gateway: dict[str, Any], floor: dict[str, float], direct: dict[str, Any]) -> dict[str, Any]:
    p50 = gateway["latency"]["signal_to_order_ms"]["p50"]
    p99 = gateway["latency"]["signal_to_order_ms"]["p99"]
    dp50 = (direct.get("signal_to_order_ms") or {}).get("p50")
    return {
        "floor_used": floor,
        "p50_over_floor_sum": round(p50 / floor["sum_p50_ms"], 2) if p50 else None,
        "p50_over_strict_floor_sum": round(p50 / floor["strict_sum_p50_ms"], 2) if p50 else None,
        "p99_over_floor_sum_p99": round(p99 / floor["sum_p99_ms"], 2) if p99 else None,
        "p50_over_direct_p50": round(p50 / dp50, 2) if p50 and dp50 else None,
        "p50_over_contract_floor": round(p50 / floor["contract_sum_p50_ms"], 2) if p50 else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, SQLite only (the smoke test)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL phase")
    parser.add_argument("--postgres", action="store_true", help="with --quick: add the PostgreSQL phase")
    parser.add_argument("--no-postgres-burst", action="store_true", help="PostgreSQL: latency only")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (default 1)")
    parser.add_argument("--concurrency", type=int, default=2, help="-c of each worker (default 2)")
    parser.add_argument("--burst", type=int, default=None, help="burst size (default 10000, quick 500)")
    parser.add_argument("--latency-n", type=int, default=None, help="signal->order samples (default 300)")
    parser.add_argument("--keep-risk-limits", action="store_true",
                        help="do not empty the daily-cap / broker-rate counters (then at most 10 orders)")
    parser.add_argument("--idle-gap-only", action="store_true",
                        help="only the HTTPS idle-gap phase (before/after runs; the JSON goes to the log "
                             "directory, never latest.json)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the bridge and workers during the SQLite latency phase (needs py-spy; "
                             "summarise with python -m bench.pyspy_summary FILE...)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.burst is not None or args.latency_n is not None or args.no_postgres or args.no_postgres_burst \
            or args.postgres:
        plan = Plan(**{**plan.__dict__,
                       "burst_n": plan.burst_n if args.burst is None else args.burst,
                       "latency_n": plan.latency_n if args.latency_n is None else args.latency_n,
                       "postgres": (plan.postgres or args.postgres) and not args.no_postgres,
                       "postgres_burst": (plan.postgres_burst or args.postgres) and not args.no_postgres_burst})
    signal.signal(signal.SIGTERM, _sigterm)

    started = datetime.now(UTC)
    t_start = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="zero-bench-"))
    pg_version = postgres_version(PG_BASE_URL)
    result: dict[str, Any] = {
        "schema": 1,
        "mode": "quick" if args.quick else "full",
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": None,
        "machine": machine(None, pg_version),
        "config": {"workers": args.workers, "concurrency": args.concurrency, "bridges": 1,
                   "risk_counters_reset": not args.keep_risk_limits, "log_dir": str(log_dir),
                   "postgres_url": pg_url() if plan.postgres and pg_version else None},
        "n": {"floor_pubsub": plan.floor_n, "floor_submit": plan.floor_n, "direct": plan.direct_n,
              "warmup": plan.warmup, "gateway_latency": plan.latency_n, "gateway_decisions": plan.decision_n,
              "burst": plan.burst_n, "trace": plan.trace_n, "distant": plan.distant_n,
              "idle_gap": plan.idle_gap_n},
        "floor": None, "direct": None, "distant": None, "gateway": {"sqlite": None, "postgres": None},
        idle_gap_mod.KEY: None,
        "floor_post": None,
        "targets": [], "errors": [],
    }
    stack = Stack(log_dir)
    try:
        stack.start()
        result["machine"]["redis_server"] = stack.redis_version()
        if args.idle_gap_only:
            return idle_gap_only(stack, plan, args, log_dir, result)
        print(f"[bench] floor x{plan.floor_n} (logs in {log_dir})", flush=True)
        result["floor"] = floor_mod.measure(stack, plan.floor_n)
        print(f"[bench] direct baseline x{plan.direct_n}", flush=True)
        result["direct"] = direct_mod.measure(stack, plan.direct_n, plan.warmup)
        if plan.distant_n:
            print(f"[bench] floor and direct baseline x{plan.distant_n}, broker {distant_mod.DELAY_MS:.0f} ms away",
                  flush=True)
            result["distant"] = distant_mod.baselines(stack, plan.distant_n, 3)
        dbs = ["sqlite"] + (["postgres"] if plan.postgres else [])
        for db in dbs:
            if db == "postgres" and pg_version is None:
                result["errors"].append("PostgreSQL unreachable at " + PG_BASE_URL + ": phase skipped")
                continue
            try:
                result["gateway"][db] = run_gateway(stack, db, plan, args, log_dir)
            except Exception as exc:  # noqa: BLE001 - report it, go on with the next phase
                traceback.print_exc()
                result["errors"].append(f"{db}: {type(exc).__name__}: {str(exc)[:2000]}")
        if plan.idle_gap_n:
            result[idle_gap_mod.KEY] = idle_gap(stack, plan, args, log_dir, result)
        result["floor_post"] = floor_mod.measure(stack, max(50, plan.floor_n // 3))
        floor = lower_floor(result["floor"], result["floor_post"])
        for gateway in result["gateway"].values():
            if gateway and gateway.get("latency"):
                gateway["ratios"] = ratios(gateway, floor, result["direct"] or {})
            if gateway and gateway.get("distant") and result.get("distant"):
                gateway["distant_ratios"] = distant_mod.ratios(gateway["distant"], result["distant"])
            if gateway and gateway.get("distant_rest") and result.get("distant"):
                gateway["distant_rest_ratios"] = distant_mod.ratios(gateway["distant_rest"], result["distant"])
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        result["errors"].append(f"{type(exc).__name__}: {str(exc)[:2000]}")
    finally:
        stack.close()
    result["duration_s"] = round(time.monotonic() - t_start, 1)
    result["targets"] = targets(result)
    paths = write(result, args.quick)
    print(render(result))
    for path in paths:
        print(f"JSON: {path}")
    return 1 if result["errors"] and not any(result["gateway"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
