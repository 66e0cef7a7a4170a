"""GET /health tells the truth, including when Redis is gone (its own Redis, stopped for real)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from alpaca_paper_sim import SimServer
from tests.support.gateway import Gateway, isolated_gateway, market, opportunity, ranking
from tests.support.procs import health, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lonely(log_dir: Path, sim: SimServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway on a Redis of its own, so stopping that Redis harms no other test."""
    with isolated_gateway(log_dir, sim.url, tmp_path_factory.mktemp("health")) as gw:
        yield gw


def test_health_reports_ok_with_every_check_and_no_secret(lonely: Gateway) -> None:
    lonely.r.set("key:execution_enabled", "true")
    lonely.r.set("key:market_state", market("YELLOW"))
    status, body = health(lonely.api_port)
    assert status == 200 and body["status"] == "ok"
    assert body["paper"] is True and body["execution_enabled"] is True and body["market_state"] == "YELLOW"
    assert set(body["checks"]) == {"redis", "database", "broker", "workers", "circuit_breaker", "audit"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["workers"]["alive"] == 1
    assert body["queue_depth"] == {"zero_execution": 0, "zero_audit": 0} and body["in_flight"] == 0
    assert body["database"] == "sqlite (file)" and "last_decision_age_s" in body
    assert "audit.db" not in json.dumps(body) and "/" not in body["database"]  # no file path
    raw = requests.get(f"http://127.0.0.1:{lonely.api_port}/health", timeout=5).text
    assert "test-secret-value" not in raw and "test-key-id" not in raw


def test_health_execution_enabled_false_unless_exactly_true(lonely: Gateway) -> None:
    lonely.r.set("key:execution_enabled", "TRUE")
    assert health(lonely.api_port)[1]["execution_enabled"] is False


def test_health_degraded_when_broker_fails(lonely: Gateway) -> None:
    lonely.sim("POST", "/_sim/fault", {"mode": "503", "count": -1, "path": "/v2/account"})
    try:
        body = wait_for(lambda: (b := health(lonely.api_port)[1])["status"] == "degraded" and b, 20, "degraded")
        assert body["checks"]["broker"]["ok"] is False
    finally:
        lonely.sim("DELETE", "/_sim/fault")


def test_health_down_and_503_when_redis_stopped_then_recovers(lonely: Gateway) -> None:
    lonely.redis_server.stop()
    try:
        status, body = health(lonely.api_port)
        assert status == 503 and body["status"] == "down"
        assert body["checks"]["redis"]["ok"] is False
        assert body["execution_enabled"] is False
    finally:
        lonely.redis_server.proc.start()
        wait_for(lonely.r.ping, 10, "redis back")
    # the bridge and the worker come back by themselves and decide the next message
    wait_for(lambda: health(lonely.api_port)[1]["bridge"]["subscribed"], 30, "bridge resubscribed")
    wait_for(lambda: lonely.workers_alive() == 1, 30, "worker heartbeat back")
    lonely.reset()
    lonely.green()
    (event,) = lonely.decide(ranking(opportunity("SPY")), timeout=30)
    assert event["status"] == "SUBMITTED"


def test_metrics_parse_with_prometheus_and_count_a_worker_decision(lonely: Gateway) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    lonely.reset()
    lonely.green()
    (event,) = lonely.decide(ranking(opportunity("MTRX")))
    assert event["status"] == "SUBMITTED"

    def families() -> dict:
        text = requests.get(f"http://127.0.0.1:{lonely.api_port}/metrics", timeout=10).text
        return {f.name: f for f in text_string_to_metric_families(text)}

    found = wait_for(lambda: (f := families()) and any(
        s.labels == {"status": "SUBMITTED", "reason": "submitted"} and s.value >= 1
        for s in f["zero_decisions"].samples) and f, 10, "the worker's decision in /metrics")
    assert any(s.value >= 1 for s in found["zero_orders_submitted"].samples)
    latency = {s.name: s.value for s in found["zero_signal_to_decision_seconds"].samples if s.name.endswith("_count")}
    assert latency["zero_signal_to_decision_seconds_count"] >= 1
    broker_calls = {s.labels.get("call") for s in found["zero_broker_call_duration_seconds"].samples}
    assert "submit" in broker_calls
    def up() -> dict:
        return {s.labels["dependency"]: s.value for s in families()["zero_dependency_up"].samples}

    # the broker probe is cached 10 s: an earlier test's fault may still show for a moment
    wait_for(lambda: up() == {"redis": 1.0, "database": 1.0, "broker": 1.0}, 20, "every dependency up")
    assert found["zero_execution_enabled"].samples[0].value == 1.0
    assert {s.labels["queue"] for s in found["zero_queue_depth"].samples} == {"zero_execution", "zero_audit"}
    assert found["zero_in_flight"].samples[0].value == 0  # the decision took its message off the ledger
    assert "zero_bridge_messages" in found


def test_health_reuses_its_redis_connections(lonely: Gateway) -> None:
    """/health and /metrics read Redis through the bridge's pooled clients: a burst of
    requests opens no new connection per request (it did: a client per request)."""
    for _ in range(3):  # the pools are warm
        health(lonely.api_port)
        requests.get(f"http://127.0.0.1:{lonely.api_port}/metrics", timeout=5)
    before = int(lonely.r.info("stats")["total_connections_received"])
    for _ in range(30):
        assert health(lonely.api_port)[0] == 200
        requests.get(f"http://127.0.0.1:{lonely.api_port}/metrics", timeout=5)
    opened = int(lonely.r.info("stats")["total_connections_received"]) - before
    assert opened <= 5, f"{opened} connections for 60 requests"
