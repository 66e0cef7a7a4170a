"""Which of the project's files run code between the PUBLISH of one eligible ranking and its
order reaching the broker: `python -m bench.files [--json OUT]`.

A real bridge and a real worker (solo pool: the task runs in the worker process itself),
the account mirror (not traced: it is no part of a message's path) and the simulator, on a
private redis-server, as the bench starts them. Both traced processes load
bench/tracer/sitecustomize.py, a profile hook that keeps when each function of each source
file ran while recording is on (every thread; the worker's own background threads, the
audit writer's poll among them, are listed apart and not counted). After a warm-up (three orders: the lazy
imports and first-message costs are paid), recording is switched on, one eligible ranking
is published, and the files with a call between the PUBLISH and the simulator's stamp
of the order (taken inside its order creation) are the answer: product
files (outside tests/ and bench/), counted apart for zero_tasks/core/checks/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.procs import CELERY, ROOT, Proc, mirror_proc

from .common import Signal, list_at_broker, reset_risk_counters, set_green, wait_until
from .gateway import _publish, next_decision
from .stack import EventCollector, GatewayProcs, Stack

TRACER = Path(__file__).resolve().parent / "tracer"
PREFIX = "TF"
CHECKS = "zero_tasks/core/checks/"
# Threads of the worker that run on their own clock, not for the message: the audit
# writer's poll, the heartbeat, the broker connection's keep-warm, the Redis clock's sync.
BACKGROUND_THREADS = {"audit-writer", "heartbeat", "watchdog", "broker-keep-warm", "redis-clock", "trace-files-control"}


def solo_worker(name: str, env: dict[str, str], log_dir: Path) -> Proc:
    return Proc(name, [CELERY, "-A", "zero_tasks", "worker", "-P", "solo", "-n", f"{name}@%h",
                       "-Q", "zero_execution,zero_audit", "--without-gossip", "--without-mingle", "-l", "INFO"],
                env, log_dir)


def one_order(stack: Stack, collector: EventCollector, ticker: str) -> tuple[float, float]:
    """(PUBLISH wall time, the order's wall time at the simulator) of one eligible ranking."""
    r = stack.client()
    set_green(r)
    reset_risk_counters(r, stack.state)
    sig = Signal(ticker)
    index = collector.count()
    published = time.time()
    _publish(r, sig.data)
    decision = next_decision(collector, index, 20.0, sig.execution_id)
    if decision is None or decision[1]["status"] != "SUBMITTED":
        raise RuntimeError(f"{ticker}: no order ({decision[1] if decision else 'no decision'})")
    stamp = stack.state.wait_stamp(sig.client_order_id, 2.0)
    if stamp is None:
        raise RuntimeError(f"{ticker}: the simulator has no order")
    return published, stamp[1]


def product_file(name: str) -> str | None:
    try:
        rel = Path(name).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if rel.parts[0] in ("tests", "bench", ".venv") or rel.suffix != ".py":
        return None
    return rel.as_posix()


def measure(log_dir: Path) -> dict[str, Any]:
    control = Path(tempfile.mkdtemp(prefix="trace-files-"))
    stack = Stack(log_dir).start()
    try:
        list_at_broker(stack.state, PREFIX)
        gw = GatewayProcs(stack, f"sqlite:///{log_dir / 'execution_log.db'}", "files", mirror=True,
                          ZERO_TRACE_FILES=str(control), PYTHONPATH=f"{TRACER}{os.pathsep}{ROOT}")
        untraced = {k: v for k, v in gw.env.items() if k != "ZERO_TRACE_FILES"}
        gw.mirror = mirror_proc("files-mirror", untraced, log_dir)
        gw.workers = [solo_worker("files-w0", gw.env, log_dir)]
        collector = EventCollector(stack.port)
        collector.start()
        try:
            wait_until(lambda: stack.subscribers("chan:trade_update") >= 1, 10, "trade_update subscriber")
            gw.start()
            for i in range(3):
                one_order(stack, collector, f"{PREFIX}W{chr(65 + i)}")
            time.sleep(1.0)
            pids = [gw.bridge.pid, gw.workers[0].pid]
            (control / "on").touch()
            wait_until(lambda: all((control / f"{pid}.ready").exists() for pid in pids), 10, "tracers on")
            published, ordered = one_order(stack, collector, f"{PREFIX}MA")
            time.sleep(0.5)
            (control / "on").unlink()
            wait_until(lambda: all((control / f"{pid}.json").exists() for pid in pids), 10, "tracer dumps")
        finally:
            collector.stop()
            gw.stop()
    finally:
        stack.close()
    out: dict[str, Any] = {"window_ms": round(1000 * (ordered - published), 1)}
    for role, pid in zip(("bridge", "worker"), pids, strict=True):
        path_files: dict[str, set[str]] = {}  # the message's own threads
        background: dict[str, set[str]] = {}  # threads that only happened to run in the window
        for name, function, thread, times in json.loads((control / f"{pid}.json").read_text()):
            rel = product_file(name)
            if rel is None or not any(published <= t <= ordered for t in times):
                continue
            into = background if thread in BACKGROUND_THREADS else path_files
            into.setdefault(rel, set()).add(function)
        out[role] = {f: sorted(fns) for f, fns in sorted(path_files.items())}
        out[role + "_background"] = {f: sorted(fns) for f, fns in sorted(background.items())}
    everything = {f for role in ("bridge", "worker") for f in out[role]}
    out["files"] = sorted(everything)
    out["checks"] = sorted(f for f in everything if f.startswith(CHECKS))
    out["outside_checks"] = sorted(f for f in everything if not f.startswith(CHECKS))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__)
    parser.add_argument("--json", type=Path, help="write the result here too")
    args = parser.parse_args(argv)
    result = measure(Path(tempfile.mkdtemp(prefix="zero-files-")))
    for role in ("bridge", "worker"):
        print(f"{role}: {len(result[role])} file(s)")
        for name, functions in result[role].items():
            print(f"  {name}: {', '.join(functions)}")
        for name, functions in result[role + "_background"].items():
            print(f"  (not counted, a background thread) {name}: {', '.join(functions)}")
    print(f"window {result['window_ms']} ms; {len(result['files'])} product files: "
          f"{len(result['outside_checks'])} outside {CHECKS}, {len(result['checks'])} checks")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
