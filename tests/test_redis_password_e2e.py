"""Redis with a password: every process (bridge, worker, zero-ops) AUTHs with REDIS_PASSWORD,
URL-encoded where it goes into a URL, and a wrong or missing password fails closed.

A private redis-server started with --requirepass; the password holds each character that
means something in a URL (`@`, `/`, `:`, `%`), so a raw interpolation would break it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.gateway import Gateway, ranking
from tests.support.procs import PYTHON, PrivateRedis, bridge_proc, free_port, wait_for, worker_proc

PASSWORD = "r3d1s@pass/with:colon%41"  # %41 must stay "%41", not become "A"


@pytest.fixture(scope="module")
def locked_redis(log_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(log_dir, password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def locked_gateway(log_dir: Path, locked_redis: PrivateRedis, sim: Any,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    url = f"sqlite:///{tmp_path_factory.mktemp('locked') / 'audit.db'}"
    gw = Gateway(log_dir, locked_redis, sim.url, url, workers=1, bridges=1, REDIS_PASSWORD=PASSWORD).start()
    yield gw
    gw.stop()


def zero_ops(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "zero_ops", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_a_password_with_url_characters_works_end_to_end(locked_gateway: Gateway, tmp_path: Path) -> None:
    gw = locked_gateway
    gw.reset()
    gw.green()
    [event] = gw.decide(ranking())
    assert event["status"] == "SUBMITTED", event
    assert len(gw.orders()) == 1
    status = zero_ops(gw.env, tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["kill_switch"]["enabled"] is True  # read from the locked Redis
    assert set(report["queues"]) >= {"zero_execution"}  # through the broker URL, password encoded
    code, body = requests.get(f"http://127.0.0.1:{gw.api_port}/health", timeout=10).status_code, \
        requests.get(f"http://127.0.0.1:{gw.api_port}/health", timeout=10).text
    assert code == 200 and '"redis": {"ok": true' in body
    for text in (status.stdout, status.stderr, body, gw.logs()):
        assert PASSWORD not in text


@pytest.mark.parametrize("wrong", ["not-the-password", ""], ids=["wrong", "missing"])
def test_a_wrong_password_fails_closed(locked_gateway: Gateway, log_dir: Path, tmp_path: Path, wrong: str) -> None:
    """A bridge answers /health `down` (nothing is decided), a worker never joins, and
    zero-ops exits 2 naming Redis; none of them prints either password."""
    gw = locked_gateway
    port = free_port()
    env = {**gw.env, "REDIS_PASSWORD": wrong, "EXECUTION_API_PORT": str(port)}
    bridge = bridge_proc(f"bridge-wrong-{port}", env, log_dir).start()
    worker = worker_proc(f"w-wrong-{port}", env, log_dir).start()
    try:
        # (a list: a 503 Response is falsy)
        [response] = wait_for(lambda: [requests.get(f"http://127.0.0.1:{port}/health", timeout=10)], 30,
                              "bridge /health")
        body = response.json()
        assert response.status_code == 503 and body["status"] == "down", body
        assert body["checks"]["redis"]["ok"] is False and "AuthenticationError" in body["checks"]["redis"]["detail"]
        assert body["bridge"]["subscribed"] is False
        wait_for(lambda: "invalid username-password" in worker.output() or "Authentication required" in worker.output(),
                 30, "the worker's broker refusing it")
        assert gw.workers_alive() == 1  # only the gateway's own worker
        status = zero_ops(env, tmp_path, "status")
        assert status.returncode == 2 and "Redis at 127.0.0.1" in status.stderr, status.stderr
        outputs = (status.stdout, status.stderr, response.text, bridge.output(), worker.output())
    finally:
        bridge.stop()
        worker.stop()
    for text in outputs:
        assert PASSWORD not in text
        assert not wrong or wrong not in text
