"""`make run` (scripts/devstack.py) starts a worker again when its watchdog ended it (exit 70).

The watchdog's fault is real: the worker's consumer is cancelled on one of its queues through
Celery's remote control, so it takes no more work and its watchdog ends it
(zero_tasks/worker/watchdog.py) with its own processes (its pool's and the embedded beat,
which outlived it before); `make run` goes on, with a new worker in its place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.support.devstack import command_of, descendants, devstack, environ_of
from tests.support.procs import children_of, ended, wait_for
from zero_tasks.core import keys

pytestmark = pytest.mark.e2e


def workers(root: int) -> list[int]:
    """The Celery workers `make run` started (their pool processes are theirs, not its)."""
    found = []
    for pid in children_of(root):
        try:
            command = command_of(pid)
        except OSError:
            continue
        if "celery" in command and " worker" in command:
            found.append(pid)
    return found


def test_make_run_starts_again_a_worker_its_watchdog_ended(tmp_path: Path) -> None:
    with devstack(tmp_path, WORKER_WATCHDOG_S="10", TASK_TIME_LIMIT_S="6") as stack:
        (first,) = workers(stack.pid)
        its_own = children_of(first)  # its pool processes and the embedded beat of -B
        assert any("beat" in command_of(pid) for pid in its_own), [command_of(pid) for pid in its_own]
        bridge = next(pid for pid in descendants(stack.pid) if "-m bridge" in command_of(pid))
        environ = environ_of(bridge)
        r = redis.Redis(host="127.0.0.1", port=int(environ["REDIS_PORT"]), password=environ.get("REDIS_PASSWORD"))
        (name,) = [n.decode() for n in r.zrange(keys.WORKERS_KEY, 0, -1)]
        password = environ.get("REDIS_PASSWORD") or ""
        app = Celery(broker=f"redis://:{password}@127.0.0.1:{environ['REDIS_PORT']}/0")
        app.control.cancel_consumer("zero_execution", destination=[name], reply=True, timeout=5)
        wait_for(lambda: ended(first), 60, "the worker ended by its watchdog")
        wait_for(lambda: all(ended(pid) for pid in its_own), 10, "none of its processes left behind")
        (second,) = wait_for(lambda: [pid for pid in workers(stack.pid) if pid != first], 30, "a new worker")
        wait_for(lambda: r.exists(keys.worker_alive_key(name)), 60, "the new worker beating")
        assert stack.poll() is None  # make run goes on
        assert not os.path.exists(f"/proc/{first}") or ended(first)
        assert second != first
