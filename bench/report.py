"""The report: machine facts, the PASS/MISS targets, one printed table, the JSON files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("celery", "kombu", "redis", "alpaca-py", "sqlalchemy")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def postgres_version(url: str) -> str | None:
    try:
        import psycopg2

        with psycopg2.connect(url, connect_timeout=2) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return str(cur.fetchone()[0])
    except Exception:  # noqa: BLE001 - not reachable: the PostgreSQL phase is skipped
        return None


def code_version() -> str | None:
    """The commit measured (`+dirty` with uncommitted changes), so a result names its code."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)bench/results"],  # the bench's own output is not the code
                               cwd=root, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an sdist, a container image)
    return commit + ("+dirty" if dirty else "")


def machine(redis_server: str | None, postgresql: str | None) -> dict[str, Any]:
    return {
        "code": code_version(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions(),
        "redis_server": redis_server,
        "postgresql": postgresql,
    }


# targets --------------------------------------------------------------------------------
def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, db: str, value: Any, limit: float, op: str = "<=") -> None:
        if value is None:
            ok = None
        else:
            ok = value <= limit if op == "<=" else value >= limit if op == ">=" else value == limit
        out.append({"target": name, "db": db, "value": value, "limit": limit, "op": op,
                    "result": "n/a" if ok is None else ("PASS" if ok else "MISS")})

    for db, g in (result.get("gateway") or {}).items():
        if not g:
            continue
        p50 = _get(g, "latency", "signal_to_order_ms", "p50")
        add("signal->order p50 ms", db, p50, 10)
        add("signal->order p99 ms", db, _get(g, "latency", "signal_to_order_ms", "p99"), 25)
        add("p50 / floor sum", db, _get(g, "ratios", "p50_over_floor_sum"), 3)
        add("p50 / direct p50", db, _get(g, "ratios", "p50_over_direct_p50"), 1)
        add("p50 / contract floor (PUBLISH + row 9 + submit)", db,
            _get(g, "ratios", "p50_over_contract_floor"), 3)
        add("first signal after start / p50", db, _get(g, "first_signal", "first_over_p50"), 2)
        b = g.get("burst")
        if b:
            add("burst decisions/s (decided+audited)", db, b.get("decisions_per_s"), 1000, ">=")
            add("burst lost", db, b.get("lost"), 0, "==")
            add("burst duplicate orders", db, _get(g, "orders", "duplicate_orders"), 0, "==")
        away = g.get("distant_ratios")
        if away:
            at = f", broker {_f(_get(result, 'distant', 'delay_ms'), 0)} ms away"
            add("p50 / floor sum" + at, db, away.get("p50_over_floor_sum"), 3)
            add("p50 / direct p50" + at, db, away.get("p50_over_direct_p50"), 1)
            add("p50 / contract floor" + at, db, away.get("p50_over_contract_floor"), 3)
            add("p50 / floor sum" + at + ", row 9 from the account mirror", db, away.get("p50_over_floor_sum"), 1.25)
        rss = [x for x in (_get(g, "cost", "rest", "bridge_rss_mb"), _get(g, "cost", "after_burst", "bridge_rss_mb"))
               if x is not None]
        add("bridge RSS MB (max)", db, max(rss) if rss else None, 80)
    gap = result.get("https_20ms_idle_gap")
    if gap and gap.get("ratios"):
        at = (f", HTTPS {_f(gap.get('delay_ms'), 0)} ms away, signals {_f(gap.get('gap_s'), 0)} s apart "
              f"(idle timeout {_f(gap.get('idle_timeout_s'), 0)} s)")
        add("p50 / warm contract floor" + at, "sqlite", gap["ratios"].get("p50_over_warm_contract_floor"), 1.15)
        add("p99 / warm contract floor" + at, "sqlite", gap["ratios"].get("p99_over_warm_contract_floor"), 1.5)
        add("p50 / warm floor (PUBLISH + submit round trip)" + at + ", row 9 from the account mirror", "sqlite",
            gap["ratios"].get("p50_over_warm_floor"), 1.25)
    return out


# the table ------------------------------------------------------------------------------
def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _lat_row(label: str, s: dict[str, Any] | None) -> str:
    s = s or {}
    return (f"  {label:<50}{_f(s.get('n')):>6}{_f(s.get('p50')):>9}{_f(s.get('p90')):>9}"
            f"{_f(s.get('p99')):>9}{_f(s.get('max')):>9}")


def _distant_rows(result: dict[str, Any], gws: dict[str, Any]) -> list[str]:
    away = result.get("distant")
    if not away:
        return []
    fl = away["floor"]
    lines = [f"  BROKER {_f(away['delay_ms'], 0)} ms AWAY (the simulator holds every trading request that long)",
             f"  {'floor SUM (PUBLISH + submit round trip)':<50}{'':>6}{_f(fl.get('sum_p50_ms')):>9}{'':>9}"
             f"{_f(fl.get('sum_p99_ms')):>9}",
             f"  {'contract floor SUM (PUBLISH + row 9 + submit)':<50}{'':>6}{_f(fl.get('contract_sum_p50_ms')):>9}",
             _lat_row("direct baseline: publish -> order", (away.get("direct") or {}).get("signal_to_order_ms"))]
    for db, g in gws.items():
        for key, label in (("distant", "row 9 from the mirror"), ("distant_rest", "row 9 by REST")):
            if g.get(key):
                r = g.get(f"{key}_ratios") or {}
                lines += [_lat_row(f"gateway {db}, {label}: publish -> order", g[key].get("signal_to_order_ms")),
                          f"  ratios {db}, {label}: gateway p50 / floor sum = {_f(r.get('p50_over_floor_sum'))}x, "
                          f"/ direct p50 = {_f(r.get('p50_over_direct_p50'))}x, "
                          f"/ contract floor = {_f(r.get('p50_over_contract_floor'))}x"]
    return lines


def _idle_gap_rows(gap: dict[str, Any] | None) -> list[str]:
    if not gap:
        return []
    fl, c, r = gap.get("floor") or {}, gap.get("connections") or {}, gap.get("ratios") or {}
    return [f"  HTTPS (TLS 1.3), BROKER {_f(gap['delay_ms'], 0)} ms AWAY, a new connection "
            f"{_f(gap.get('connect_delay_ms'), 0)} ms; signals {_f(gap['gap_s'], 1)} s apart, the server closes "
            f"a connection idle {_f(gap['idle_timeout_s'], 1)} s; "
            f"BROKER_KEEP_WARM_S {_f(gap['broker_keep_warm_s'], 1)}",
            f"  {'warm contract floor SUM (PUBLISH + row 9 + submit)':<50}{'':>6}"
            f"{_f(fl.get('contract_sum_p50_ms')):>9}",
            f"  {'warm floor SUM (PUBLISH + submit round trip)':<50}{'':>6}{_f(fl.get('sum_p50_ms')):>9}",
            f"  {'strict warm floor SUM (PUBLISH + submit to order)':<50}{'':>6}"
            f"{_f(fl.get('strict_sum_p50_ms')):>9}",
            _lat_row("gateway sqlite, row 9 from the mirror: after the gap", gap.get("signal_to_order_ms")),
            _lat_row("gateway sqlite, row 9 by REST: after the gap", gap.get("rest_signal_to_order_ms")),
            f"  ratios: p50 / warm floor = {_f(r.get('p50_over_warm_floor'))}x (by REST "
            f"{_f(r.get('rest_p50_over_warm_floor'))}x), p50 / strict warm floor = "
            f"{_f(r.get('p50_over_strict_warm_floor'))}x, "
            f"p50 / warm contract floor = {_f(r.get('p50_over_warm_contract_floor'))}x, "
            f"p99 / warm contract floor = {_f(r.get('p99_over_warm_contract_floor'))}x; connections opened "
            f"during the signals: {c.get('accepted')}, closed idle: {c.get('idle_closed')}"]


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    v = m["versions"]
    lines = [
        f"ZERO execution gateway benchmark ({result['mode']})  {result['started_at']}  {result['duration_s']} s",
        f"machine: {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}; code {m.get('code') or 'unknown'}",
        "versions: " + ", ".join(f"{k} {v[k]}" for k in v) + f", redis-server {m['redis_server']}, "
        f"PostgreSQL {m['postgresql'] or 'unreachable'}",
        f"gateway: 1 bridge + {result['config']['workers']} celery worker(s) -c {result['config']['concurrency']} "
        f"(prefork, queues zero_execution,zero_audit); all loopback; private redis-server; in-process simulator",
    ]
    if result["config"].get("risk_counters_reset"):
        lines.append("note: the bench empties the gateway's daily-order-cap and broker-rate counters between "
                     "signals (cap 10/day, 120 calls/min); the checks still run on every decision")
    lines += ["", f"  {'LATENCY (ms)':<50}{'N':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"]
    fl = result["floor"]
    lines += [
        _lat_row("floor: PUBLISH -> subscriber", fl.get("pubsub_ms")),
        _lat_row("floor: alpaca-py submit_order round trip", fl.get("submit_rt_ms")),
        _lat_row("floor: alpaca-py submit, call -> sim", fl.get("submit_to_sim_ms")),
        f"  {'floor SUM (PUBLISH + submit round trip)':<50}{'':>6}{_f(fl.get('sum_p50_ms')):>9}{'':>9}"
        f"{_f(fl.get('sum_p99_ms')):>9}",
        _lat_row("contract floor: position, orders, submit -> sim", fl.get("contract_calls_to_order_ms")),
        f"  {'contract floor SUM (PUBLISH + those three calls)':<50}{'':>6}{_f(fl.get('contract_sum_p50_ms')):>9}",
        _lat_row("direct baseline: publish -> order", (result.get("direct") or {}).get("signal_to_order_ms")),
    ]
    gws = {db: g for db, g in (result.get("gateway") or {}).items() if g}
    for db, g in gws.items():
        lat, dec = g.get("latency") or {}, g.get("decisions") or {}
        lines += [
            _lat_row(f"gateway {db}: publish -> order", lat.get("signal_to_order_ms")),
            _lat_row(f"gateway {db}: publish -> SUBMITTED event", lat.get("signal_to_submitted_event_ms")),
            _lat_row(f"gateway {db}: publish -> BLOCKED/SKIPPED event", dec.get("decision_ms")),
        ]
        for kind, s in (dec.get("by_kind_ms") or {}).items():
            lines.append(_lat_row(f"    {kind}", s))
        first = g.get("first_signal") or {}
        if first:
            per = ", ".join(_f(v) for v in first.get("first_per_process_ms") or [])
            lines.append(f"  {'gateway ' + db + ': first signal after start -> order':<50}{1:>6}"
                         f"{_f(first.get('first_ms')):>9}   = {_f(first.get('first_over_p50'))}x the p50 "
                         f"above (first of each pool process: {per} ms)")
    if result.get("floor_post"):
        fp = result["floor_post"]
        pub_p50, sub_p50 = (fp.get("pubsub_ms") or {}).get("p50"), (fp.get("submit_rt_ms") or {}).get("p50")
        lines.append(f"  floor re-measured at the end: SUM p50 {_f(fp.get('sum_p50_ms'))} ms "
                     f"(PUBLISH {_f(pub_p50)}, submit {_f(sub_p50)}), contract floor SUM "
                     f"{_f(fp.get('contract_sum_p50_ms'))} ms; the ratios use the lower of the two measurements")
    for db, g in gws.items():
        r = g.get("ratios") or {}
        lines.append(f"  ratios {db}: gateway p50 / floor sum = {_f(r.get('p50_over_floor_sum'))}x, "
                     f"gateway p50 / direct p50 = {_f(r.get('p50_over_direct_p50'))}x, "
                     f"p99 / floor sum p99 = {_f(r.get('p99_over_floor_sum_p99'))}x, "
                     f"gateway p50 / contract floor = {_f(r.get('p50_over_contract_floor'))}x")
    lines += _distant_rows(result, gws)
    lines += _idle_gap_rows(result.get("https_20ms_idle_gap"))
    for db, g in gws.items():
        cpu = _get(g, "latency", "cpu_ms_per_signal")
        if cpu:
            lines.append(f"  CPU ms per eligible signal ({db}): gateway "
                         f"{_f(cpu['gateway'])} = bridge {_f(cpu['bridge'])} + workers {_f(cpu['workers'])}; "
                         f"redis-server {_f(cpu['redis_server'])}")
    for db, g in gws.items():
        bd = _get(g, "latency", "breakdown_ms") or {}
        if bd:
            lines.append(f"  where the time goes ({db}, p50 ms): " + " | ".join(
                f"{k.replace('_', ' ')} {_f((s or {}).get('p50'))}" for k, s in bd.items()))

    for db, g in gws.items():
        tr = g.get("trace")
        if tr and tr.get("timeline"):
            lines.append(f"  traced path ({db}, N={tr['n']}, Redis MONITOR on), ms since PUBLISH, p50 (+ step):")
            prev = 0.0
            for step in tr["timeline"]:
                p50 = (step.get("since_publish_ms") or {}).get("p50")
                if p50 is None:
                    continue
                lines.append(f"      {p50:8.2f}  (+{p50 - prev:6.2f})  {step['milestone']}")
                prev = p50
            rt = (tr.get("redis_round_trips_publish_to_event") or {}).get("p50")
            lines.append(f"      Redis round trips from PUBLISH to TradeUpdate (all clients), p50: {_f(rt, 0)}")

    bursts = {db: g.get("burst") for db, g in gws.items() if g.get("burst")}
    if bursts:
        cols = list(bursts)
        lines += ["", f"  {'BURST':<44}" + "".join(f"{c:>24}" for c in cols)]

        def brow(label: str, fn: Any) -> None:
            lines.append(f"  {label:<44}" + "".join(f"{fn(db, bursts[db]):>24}" for db in cols))

        brow("published / decided / audited", lambda db, b: f"{b['published']}/{b['decided']}/{b['audited']}")
        brow("complete (all decided + audited)", lambda db, b: "yes" if b["complete"] else
             f"NO: gave up at {_f(b.get('timeout_s'), 0)} s")
        brow("lost (published - decided) / unaudited", lambda db, b: f"{b['lost']} / {b['unaudited']}")
        brow("duplicate orders (run) / orders", lambda db, b: f"{_get(gws[db], 'orders', 'duplicate_orders')} / "
             f"{_get(gws[db], 'orders', 'orders')}")
        brow("decisions/s (first publish -> all audited)", lambda db, b: _f(b["decisions_per_s"], 1))
        brow("elapsed s (events / rows)", lambda db, b: f"{_f(b['events_done_s'])} / {_f(b['rows_done_s'])}")
        brow("publish rate msg/s (one client, pipelined)", lambda db, b: str(b["publish_rate_per_s"]))
        brow("bridge took all off the channel at s", lambda db, b: _f(b.get("bridge_received_all_s")))
        brow("eligible / orders submitted", lambda db, b: f"{b['eligible']} / {b['orders_submitted']}")
        brow("eligible publish->order p50 / p99 ms", lambda db, b: "{} / {}".format(
             _f(b["eligible_signal_to_order_ms"]["p50"], 1), _f(b["eligible_signal_to_order_ms"]["p99"], 1)))
        brow("max Celery queue / max pub/sub backlog MB", lambda db, b: f"{b['max_celery_queue']} / "
             f"{_f(b['max_subscriber_backlog_mb'])}")
        limit = next(iter(bursts.values())).get("pubsub_buffer_limit")
        if limit:
            lines.append(f"  {'  (redis client-output-buffer-limit pubsub)':<44}{limit:>24}")
        brow("CPU s /1000 decisions: gateway", lambda db, b: _f(b["cpu_s_per_1000_decisions"]["gateway"], 3))
        brow("  bridge / workers / redis-server", lambda db, b: "{bridge} / {workers} / {redis_server}".format(
            **b["cpu_s_per_1000_decisions"]))
        for db in cols:
            lines.append(f"  statuses {db}: " + ", ".join(f"{k} {n}" for k, n in bursts[db]["statuses"].items()))

    lines += ["", f"  {'COST: RSS MB (PSS MB)':<44}{'at rest':>16}{'after burst':>16}"]

    def mem(d: dict[str, Any], rss: str, pss: str) -> str:
        return f"{_f(d.get(rss), 1)} ({_f(d.get(pss), 1)})" if d else "-"

    for db, g in gws.items():
        cost = g.get("cost") or {}
        rest, after = cost.get("rest") or {}, cost.get("after_burst") or {}
        lines.append(f"  {db + ': bridge':<44}{mem(rest, 'bridge_rss_mb', 'bridge_pss_mb'):>16}"
                     f"{mem(after, 'bridge_rss_mb', 'bridge_pss_mb'):>16}")
        lines.append(f"  {db + ': workers total':<44}{mem(rest, 'workers_rss_mb_total', 'workers_pss_mb_total'):>16}"
                     f"{mem(after, 'workers_rss_mb_total', 'workers_pss_mb_total'):>16}")
        after_by_pid = {w["pid"]: w for w in after.get("workers") or []}
        for w in rest.get("workers") or []:
            a = after_by_pid.get(w["pid"], {})
            lines.append(f"  {'    ' + w['role'] + ' pid ' + str(w['pid']):<44}{mem(w, 'rss_mb', 'pss_mb'):>16}"
                         f"{mem(a, 'rss_mb', 'pss_mb'):>16}")
    if result.get("direct"):
        lines.append(f"  {'direct baseline process':<44}{_f(result['direct'].get('rss_mb'), 1):>16}")

    lines += ["", f"  {'TARGETS':<44}{'db':>10}{'value':>12}{'target':>12}{'':>7}"]
    for t in result["targets"]:
        lines.append(f"  {t['target']:<44}{t['db']:>10}{_f(t['value']):>12}{t['op'] + ' ' + _f(t['limit']):>12}"
                     f"{t['result']:>7}")
    if result.get("errors"):
        lines += ["", "ERRORS (full text in the JSON):"] + [f"  {e.splitlines()[0][:300]}" for e in result["errors"]]
    lines.append("")
    return "\n".join(lines)


def write(result: dict[str, Any], quick: bool) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    if quick:
        paths = [RESULTS / "quick-latest.json"]
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        paths = [RESULTS / f"{stamp}.json", RESULTS / "latest.json"]
    for path in paths:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths
