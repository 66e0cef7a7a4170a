"""Decision metrics kept in Redis (zero_tasks/adapters/metrics.py), read back as /metrics shows
them: seconds and `_total` names, exactly the list docs/operations.md gives, and the
gateway-wide series served by one bridge only when there are several."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from alpaca_paper_sim import SimServer
from bridge.metrics import ROLE, Snapshot, render
from tests.support.gateway import Gateway, isolated_gateway, opportunity, ranking
from tests.support.procs import ROOT, PrivateRedis, wait_for
from tests.support.redis_dbs import redis_db
from zero_tasks.adapters import metrics
from zero_tasks.core.decision import Code, Status
from zero_tasks.core.record import DecisionRecord

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = private_redis.client(db=redis_db(__name__))
    client.flushdb()
    yield client
    client.close()


def decision(n: int) -> DecisionRecord:
    return DecisionRecord(event_key=f"m:{n}", time=NOW, decided_at=NOW, status=Status.SUBMITTED,
                          reason=f"{Code.SUBMITTED.value}: 1 share SPY", market_state_snapshot=None,
                          execution_id="SPY:H30:x", ticker="SPY", horizon="H30", probability=0.95,
                          opportunity_score=95.0, why=["submitted"], payload=None)


def stored(r: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(key).items()}


def test_latencies_read_back_as_a_cumulative_histogram(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    metrics.queue_decision_metrics(pipe, [], [("submit", 0.5), ("submit", 3.0), ("submit", 7.0), ("submit", 20_000.0)])
    pipe.execute()
    buckets, total, count = metrics.histogram(stored(r, metrics.BROKER_LATENCY), "submit")
    by_bound = dict(buckets)
    assert (by_bound["1"], by_bound["2.5"], by_bound["5"], by_bound["10"], by_bound["10000"], by_bound["+Inf"]) == \
        (1, 1, 2, 3, 3, 4)
    assert (total, count) == (20_010.5, 4)


def test_a_decision_with_three_broker_calls_is_a_handful_of_commands(r: redis.Redis) -> None:
    """One bucket per observation: 60 commands per order before, when every bucket at or above
    the value was incremented."""
    pipe = r.pipeline(transaction=False)
    metrics.queue_decision_metrics(pipe, [decision(1)], [("position", 1.0), ("open_orders", 1.0), ("submit", 1.2)])
    assert len(pipe.command_stack) <= 14
    pipe.execute()
    assert stored(r, metrics.DECISIONS) == {"SUBMITTED|submitted": "1"}


def test_cumulative_buckets_written_by_earlier_versions_still_count(r: redis.Redis) -> None:
    legacy = {f"le:{b}": (2 if b < 25 else 3) for b in metrics.LATENCY_BUCKETS_MS if b >= 5}  # 4, 4 and 20 ms
    r.hset(metrics.DECISION_LATENCY, mapping={**legacy, "count": 3, "sum": 28})
    observe = r.pipeline(transaction=False)
    metrics.queue_decision_metrics(observe, [decision(2)])  # decided at once: 0 ms, the first bucket
    observe.execute()
    buckets, total, count = metrics.histogram(stored(r, metrics.DECISION_LATENCY))
    by_bound = dict(buckets)
    assert (by_bound["1"], by_bound["5"], by_bound["25"], by_bound["10000"], by_bound["+Inf"]) == (1, 3, 4, 4, 4)
    assert (total, count) == (28, 4)


def test_durations_are_served_in_seconds_with_seconds_names(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    metrics.queue_decision_metrics(pipe, [decision(3)], [("submit", 0.5), ("submit", 30.0)])
    pipe.execute()
    stored_numbers = {key: stored(r, key) for key in (metrics.DECISIONS, metrics.DECISION_LATENCY,
                                                       metrics.BROKER_LATENCY)}
    text = render(Snapshot({**stored_numbers, ROLE: {"exporter": "1"}}, {}, {})).decode()
    samples = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name.startswith("zero_broker_call_duration_seconds")}
    assert samples[("zero_broker_call_duration_seconds_bucket", "0.001")] == 1  # 0.5 ms
    assert samples[("zero_broker_call_duration_seconds_bucket", "0.025")] == 1
    assert samples[("zero_broker_call_duration_seconds_bucket", "0.05")] == 2  # 30 ms
    assert samples[("zero_broker_call_duration_seconds_sum", None)] == pytest.approx(0.0305)
    assert "zero_signal_to_decision_seconds_count 1.0" in text
    assert "zero_decisions_total{" in text and "_ms" not in text


def test_the_account_mirror_is_served_with_row_9_answers_by_source() -> None:
    mirror = {"leader": "host:1", "in_sync": True, "last_event_age_s": 1.5, "resyncs": 2, "events": 7,
              "refused_writes": 1, "row9_from_mirror": 5, "row9_from_rest": 3}
    text = render(Snapshot({ROLE: {"exporter": "1"}}, {"mirror": mirror}, {})).decode()
    samples = {(s.name, s.labels.get("source")): s.value for f in text_string_to_metric_families(text)
               for s in f.samples if s.name.startswith(("zero_mirror", "zero_exposure"))}
    assert samples[("zero_mirror_in_sync", None)] == 1 and samples[("zero_mirror_leader", None)] == 1
    assert samples[("zero_mirror_last_event_age_seconds", None)] == 1.5
    assert samples[("zero_mirror_resyncs_total", None)] == 2
    assert samples[("zero_mirror_refused_writes_total", None)] == 1
    assert samples[("zero_exposure_answers_total", "mirror")] == 5
    assert samples[("zero_exposure_answers_total", "rest")] == 3


# --- a live /metrics -----------------------------------------------------------------------

def documented_metrics() -> set[str]:
    """The `zero_*` names docs/operations.md's /metrics section lists."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    section = doc.split("## /metrics\n", 1)[1].split("\n## ", 1)[0]
    return {name for name in re.findall(r"`(zero_[a-z_]+)", section) if not name.endswith("_")}


def served(port: int) -> dict[str, list]:
    """What one bridge's /metrics serves: its `zero_*` families by their exposed name
    (`# TYPE` lines: counters with `_total`), each with its samples."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE zero_")}
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    return {name: families.get(name.removesuffix("_total"), []) for name in names}


@pytest.fixture(scope="module")
def two_bridges(log_dir: Path, sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with isolated_gateway(log_dir, sim.url, tmp_path_factory.mktemp("metrics"), bridges=2) as gw:
        yield gw


def bridge_ports(gw: Gateway) -> list[int]:
    return [int(b.env["EXECUTION_API_PORT"]) for b in gw.bridges]


def decisions_served(port: int) -> float:
    return sum(s.value for s in served(port).get("zero_decisions_total", []) if s.name == "zero_decisions_total")


@pytest.mark.e2e
def test_metrics_served_are_exactly_the_ones_the_operations_doc_lists(two_bridges: Gateway) -> None:
    gw = two_bridges
    gw.green()
    gw.decide(ranking(opportunity("SPY")))  # a worker decision: broker calls, latency observed
    names: set[str] = set()
    for port in bridge_ports(gw):
        names |= set(served(port))
    assert names == documented_metrics()


@pytest.mark.e2e
def test_gateway_wide_series_are_served_by_one_bridge_so_a_sum_counts_each_decision_once(
        two_bridges: Gateway) -> None:
    gw = two_bridges
    ports = bridge_ports(gw)
    before = sum(decisions_served(port) for port in ports)
    gw.r.set("key:execution_enabled", "false")
    events = gw.decide(*(ranking(opportunity(t)) for t in ("AAA", "BBB", "CCC")))  # BLOCKED by the bridge
    assert [e["status"] for e in events] == ["BLOCKED"] * 3

    wait_for(lambda: sum(decisions_served(port) for port in ports) == before + 3, 10, "three decisions, counted once")
    exporters = [port for port in ports
                 if served(port)["zero_bridge_gateway_exporter"][0].value == 1]
    assert len(exporters) == 1
    others = set(served(next(p for p in ports if p not in exporters))) - {"zero_bridge_gateway_exporter"}
    assert all(name.startswith("zero_bridge_") or name == "zero_dependency_up" for name in others), others
