"""Least privilege in `make run` (issue 25, finding 9): each process of scripts/devstack.py
has only the secrets its job needs, read from its own /proc/<pid>/environ. Flower watches
the queue (the Redis password) but can neither seal a task (no TASK_SIGNING_KEY) nor call
the broker (no Alpaca keys); the simulator needs no secret of the gateway at all."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import PYTHON, ROOT, free_port

pytestmark = pytest.mark.e2e

SIGNING_KEY = "least-privilege-signing-key-0123456789abcdef"
READY = "Ctrl-C stops everything."


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {name.decode(errors="replace"): value.decode(errors="replace") for name, value in pairs}


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def descendants(root: int) -> list[int]:
    """Every process under `root`, from /proc's parent links."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """`make run` (scripts/devstack.py) on free ports, and each of its processes' environment
    by role, read once every process is up."""
    tmp = tmp_path_factory.mktemp("devstack")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "ALPACA_PAPER": "true", "REDIS_HOST": "127.0.0.1",
           "REDIS_PORT": str(free_port()), "SIM_PORT": str(free_port()), "EXECUTION_API_PORT": str(free_port()),
           "FLOWER_PORT": str(free_port()), "DATABASE_URL": f"sqlite:///{tmp / 'audit.db'}",
           "TASK_SIGNING_KEY": SIGNING_KEY}
    stack = subprocess.Popen([PYTHON, "scripts/devstack.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert stack.stdout is not None
        shown, deadline = b"", time.monotonic() + 120
        with selectors.DefaultSelector() as waiting:
            waiting.register(stack.stdout, selectors.EVENT_READ)
            while READY.encode() not in shown:
                assert time.monotonic() < deadline and stack.poll() is None, shown.decode(errors="replace")
                if waiting.select(timeout=1):
                    shown += os.read(stack.stdout.fileno(), 65536)
        roles: dict[str, dict[str, str]] = {}
        for pid in descendants(stack.pid):
            try:
                command, environ = command_of(pid), environ_of(pid)
            except OSError:
                continue
            role = ("simulator" if "alpaca_paper_sim" in command else "flower-guard" if "flower_guard" in command
                    else "flower" if " flower" in command else "bridge" if "-m bridge" in command else None)
            if role:
                roles.setdefault(role, environ)
        yield roles
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(timeout=10)


def test_the_bridge_holds_the_signing_key_and_the_alpaca_keys(devstack: dict[str, dict[str, str]]) -> None:
    """The witness: the environment read is the one the process runs with. (The Celery
    worker renames itself with setproctitle, which reuses the memory /proc/<pid>/environ
    shows: its environment cannot be read this way.)"""
    assert devstack["bridge"]["TASK_SIGNING_KEY"] == SIGNING_KEY
    assert devstack["bridge"]["ALPACA_API_KEY"] == "simulator"


@pytest.mark.parametrize("role", ["flower-guard", "flower"])
def test_flower_gets_no_signing_key_and_no_alpaca_keys(devstack: dict[str, dict[str, str]], role: str) -> None:
    environ = devstack[role]
    assert environ["REDIS_PASSWORD"] == devstack["bridge"]["REDIS_PASSWORD"]  # read for real; it watches the queue
    assert not environ.get("TASK_SIGNING_KEY") and SIGNING_KEY not in "\n".join(environ.values())
    assert environ.get("ALPACA_API_KEY") != "simulator" and environ.get("ALPACA_SECRET_KEY") != "simulator"


def test_the_simulator_gets_no_secret_of_the_gateway(devstack: dict[str, dict[str, str]]) -> None:
    environ = devstack["simulator"]
    assert environ["ALPACA_PAPER"] == "true"  # read for real
    for name in ("TASK_SIGNING_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "REDIS_PASSWORD", "DATABASE_URL"):
        assert name not in environ, name
    assert devstack["bridge"]["REDIS_PASSWORD"] not in "\n".join(environ.values())
