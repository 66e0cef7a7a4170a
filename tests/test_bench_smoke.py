"""`python -m bench --quick` runs end to end, by itself, and writes a complete report.

No timing assertion (the machine is noisy): only that the report exists with every key
and that nothing was lost or ordered twice. A run that hangs is stopped at 180 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "results" / "quick-latest.json"

SUMMARY = ("n", "p50", "p90", "p99", "max")
REQUIRED = [
    "mode", "started_at", "duration_s",
    "machine.cpu_count", "machine.platform", "machine.python", "machine.redis_server", "machine.postgresql",
    "machine.versions.celery", "machine.versions.kombu", "machine.versions.redis", "machine.versions.alpaca-py",
    "machine.versions.sqlalchemy",
    "n.floor_pubsub", "n.floor_submit", "n.direct", "n.gateway_latency", "n.gateway_decisions", "n.burst",
    *(f"floor.pubsub_ms.{k}" for k in SUMMARY), *(f"floor.submit_rt_ms.{k}" for k in SUMMARY),
    "floor.sum_p50_ms", "floor.sum_p99_ms",
    *(f"direct.signal_to_order_ms.{k}" for k in SUMMARY),
    *(f"gateway.sqlite.latency.signal_to_order_ms.{k}" for k in SUMMARY),
    *(f"gateway.sqlite.decisions.decision_ms.{k}" for k in SUMMARY),
    "gateway.sqlite.ratios.p50_over_floor_sum", "gateway.sqlite.ratios.p50_over_direct_p50",
    "gateway.sqlite.first_signal.first_ms", "gateway.sqlite.first_signal.first_over_p50",
    "gateway.sqlite.burst.published", "gateway.sqlite.burst.decided", "gateway.sqlite.burst.audited",
    "gateway.sqlite.burst.lost", "gateway.sqlite.burst.decisions_per_s",
    "gateway.sqlite.burst.eligible_signal_to_order_ms.p99", "gateway.sqlite.orders.duplicate_orders",
    "gateway.sqlite.cost.rest.bridge_rss_mb", "gateway.sqlite.cost.rest.workers",
    "gateway.sqlite.cost.after_burst.bridge_rss_mb", "gateway.sqlite.cost.cpu_s_per_1000_decisions.gateway",
    "distant.delay_ms", "distant.floor.sum_p50_ms", "distant.floor.contract_sum_p50_ms",
    *(f"distant.direct.signal_to_order_ms.{k}" for k in SUMMARY),
    *(f"gateway.sqlite.distant.signal_to_order_ms.{k}" for k in SUMMARY),
    "gateway.sqlite.distant_ratios.p50_over_floor_sum", "gateway.sqlite.distant_ratios.p50_over_contract_floor",
    "https_20ms_idle_gap.broker_keep_warm_s", "https_20ms_idle_gap.floor.contract_sum_p50_ms",
    *(f"https_20ms_idle_gap.signal_to_order_ms.{k}" for k in SUMMARY),
    "https_20ms_idle_gap.connections.accepted", "https_20ms_idle_gap.ratios.p50_over_warm_contract_floor",
    "https_20ms_idle_gap.ratios.p99_over_warm_contract_floor",
    "https_20ms_idle_gap.floor.sum_p50_ms", "https_20ms_idle_gap.floor.strict_sum_p50_ms",
    *(f"https_20ms_idle_gap.floor.submit_rt_ms.{k}" for k in SUMMARY),
    "https_20ms_idle_gap.ratios.p50_over_warm_floor", "https_20ms_idle_gap.ratios.p50_over_strict_warm_floor",
    "gateway.postgres", "targets",
]


def lookup(report: dict, dotted: str) -> object:
    node: object = report
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"report has no {dotted!r}"
        node = node[part]
    return node


def test_quick_bench_writes_a_complete_report_with_nothing_lost_or_doubled() -> None:
    if REPORT.exists():
        REPORT.unlink()
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert REPORT.exists(), done.stdout[-4000:]

    report = json.loads(REPORT.read_text())
    for key in REQUIRED:
        lookup(report, key)
    assert report["errors"] == [], report["errors"]
    burst = report["gateway"]["sqlite"]["burst"]
    assert burst["published"] == report["n"]["burst"] > 0
    assert burst["lost"] == 0 and burst["unaudited"] == 0, burst
    assert report["gateway"]["sqlite"]["orders"]["duplicate_orders"] == 0
