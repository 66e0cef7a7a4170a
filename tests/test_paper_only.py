"""Both processes refuse to start unless paper-only; the message says why; keys never print."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.procs import CELERY, PYTHON, ROOT, base_env, free_port

SECRET = "sekrit-do-not-print"
KEY = "key-id-do-not-print"


def run(argv: list[str], **env: str | None) -> subprocess.CompletedProcess[str]:
    environment = base_env(free_port(), "http://127.0.0.1:9", "sqlite:////tmp/never.db", free_port())
    environment.update({"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET})
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


BRIDGE = [PYTHON, "-m", "bridge"]
WORKER = [CELERY, "-A", "zero_tasks", "worker", "-c", "1"]


@pytest.mark.parametrize("argv", [BRIDGE, WORKER], ids=["bridge", "worker"])
@pytest.mark.parametrize("paper", [None, "false", "TRUE", " true", "1", "True", ""])
def test_refuses_to_start_unless_alpaca_paper_is_exactly_true(argv: list[str], paper: str | None) -> None:
    result = run(argv, ALPACA_PAPER=paper)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ALPACA_PAPER must be exactly 'true'" in output
    assert SECRET not in output and KEY not in output


@pytest.mark.parametrize("argv", [BRIDGE, WORKER], ids=["bridge", "worker"])
@pytest.mark.parametrize("url", [
    "https://api.alpaca.markets", "http://api.alpaca.markets", "https://paper-api.alpaca.markets.evil.com",
    "http://paper-api.alpaca.markets", "http://10.0.0.5:8100", "http://example.com", "ftp://127.0.0.1",
    "http://user:pw@127.0.0.1:8100",
])
def test_refuses_a_base_url_that_is_not_loopback_or_alpaca_paper(argv: list[str], url: str) -> None:
    result = run(argv, ALPACA_BASE_URL=url)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ALPACA_BASE_URL" in output
    assert SECRET not in output and KEY not in output


@pytest.mark.parametrize("argv", [BRIDGE, WORKER], ids=["bridge", "worker"])
def test_refuses_to_start_without_keys(argv: list[str]) -> None:
    result = run(argv, ALPACA_API_KEY=None, ALPACA_SECRET_KEY=None)
    assert result.returncode != 0
    assert "ALPACA_API_KEY and ALPACA_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("name, value", [
    ("MIN_PROBABILITY", "0.85"), ("COOLDOWN_MINUTES", "30"), ("MARKET_STATE_MAX_AGE_S", "600"),
    ("SIGNAL_MAX_AGE_S", "300"),
])
def test_refuses_to_loosen_a_hard_limit(name: str, value: str) -> None:
    result = run(BRIDGE, **{name: value})
    assert result.returncode != 0
    assert name in result.stderr
