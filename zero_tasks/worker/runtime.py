"""This worker process's runtime (zero_tasks/adapters/runtime.py), made after fork.

Celery's prefork pool forks worker processes; sockets and connection pools must not
cross a fork, so the runtime is built in the process that uses it: by `warm` when the
process starts (warm.py), or lazily by the first message if warming failed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from zero_tasks.adapters.runtime import Runtime, build_runtime
from zero_tasks.settings import settings_or_exit


@dataclass
class _ThisProcess:
    """What this process has made: its runtime and the pid it was made in (a forked child makes its own)."""

    runtime: Runtime | None = None
    pid: int | None = None


_this = _ThisProcess()


def get_runtime() -> Runtime:
    if _this.runtime is None or _this.pid != os.getpid():
        _this.runtime = build_runtime(settings_or_exit())
        _this.pid = os.getpid()
    return _this.runtime
