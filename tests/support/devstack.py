"""`make run` (scripts/devstack.py) on free ports, for the tests that need the real thing:
its processes found under it through /proc, each with the environment it runs with."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import PYTHON, ROOT, free_port

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


@contextmanager
def devstack(tmp: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """`make run` up (its "Ctrl-C" line printed) with a Redis, simulator, API and Flower port of
    its own and `extra` in its environment; stopped as Ctrl-C would at the end."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "ALPACA_PAPER": "true", "REDIS_HOST": "127.0.0.1",
           "REDIS_PORT": str(free_port()), "SIM_PORT": str(free_port()), "EXECUTION_API_PORT": str(free_port()),
           "FLOWER_PORT": str(free_port()), "DATABASE_URL": f"sqlite:///{tmp / 'audit.db'}", **extra}
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
        yield stack
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(timeout=10)
