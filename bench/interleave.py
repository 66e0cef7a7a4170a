"""`python -m bench.interleave BEFORE [AFTER]`: two revisions, benched in turn on this machine.

A change's cost is read as ratios of runs made side by side, not against figures from
another day: each revision is checked out into its own git worktree, and the two run
`python -m bench` alternately (before, after, then after, before, ...), so a machine that
slows down during the comparison weighs on both alike. Each pair gives after/before
ratios of what users feel (signal-to-order p50 on loopback and with the broker 20 ms away,
burst decisions per second); the report is their median over the pairs, with the lost and
duplicate counts of every run. Both trees run with this venv's Python and libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MEASURES = {  # name -> path in a bench result, and whether higher is better
    "loopback p50 ms": (("gateway", "sqlite", "latency", "signal_to_order_ms", "p50"), False),
    "broker 20 ms away p50 ms": (("gateway", "sqlite", "distant", "signal_to_order_ms", "p50"), False),
    "burst decisions/s": (("gateway", "sqlite", "burst", "decisions_per_s"), True),
}
COUNTS = {
    "burst lost": ("gateway", "sqlite", "burst", "lost"),
    "duplicate orders": ("gateway", "sqlite", "orders", "duplicate_orders"),
}


def _get(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    for name in path:
        result = result[name]
    return result


def worktree(rev: str, parent: Path) -> Path:
    """A detached checkout of `rev` beside nothing else: its bench writes its own results."""
    path = parent / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(path), rev],
                   check=True, capture_output=True)
    return path


def run_bench(tree: Path, bench_args: list[str]) -> dict[str, Any]:
    """One `python -m bench` in `tree`; its latest.json."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-m", "bench", *bench_args], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((tree / "bench" / "results" / "latest.json").read_text())


def ratios(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    return {name: round(_get(after, path) / _get(before, path), 4) for name, (path, _) in MEASURES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.interleave", description=__doc__)
    parser.add_argument("before", help="the baseline revision")
    parser.add_argument("after", nargs="?", default="HEAD", help="the revision to compare (default HEAD)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--bench-args", default="--no-postgres", help="passed to python -m bench")
    args = parser.parse_args(argv)
    parent = Path(tempfile.mkdtemp(prefix="zero-interleave-"))
    trees = {"before": worktree(args.before, parent), "after": worktree(args.after, parent)}
    runs: list[dict[str, Any]] = []
    try:
        for pair in range(args.pairs):
            order = ("before", "after") if pair % 2 == 0 else ("after", "before")
            results = {}
            for side in order:
                print(f"[interleave] pair {pair + 1}/{args.pairs}: {side} ({getattr(args, side)})", flush=True)
                results[side] = run_bench(trees[side], args.bench_args.split())
            runs.append({"ratios": ratios(results["before"], results["after"]),
                         **{side: {name: _get(results[side], path) for name, (path, _) in MEASURES.items()}
                            | {name: _get(results[side], path) for name, path in COUNTS.items()}
                            for side in ("before", "after")}})
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
    median = {name: round(statistics.median(run["ratios"][name] for run in runs), 4) for name in MEASURES}
    print(json.dumps({"before": args.before, "after": args.after, "pairs": runs, "median_after_over_before": median},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
