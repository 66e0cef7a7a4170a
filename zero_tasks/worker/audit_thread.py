"""One audit writer thread (zero_tasks/adapters/audit_writer.py) in every worker process.

Started by Celery's hooks: in every prefork pool process (after fork: its own Redis and
engine), or in the worker itself for the solo and threads pools. Importing this module
also connects schema_gate.py's hook: the schema is checked before any task.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from celery import signals

from zero_tasks.adapters.audit_writer import SWITCH_INTERVAL_S, AuditWriter
from zero_tasks.worker import schema_gate  # noqa: F401 - its worker_init hook: the schema checked before any task
from zero_tasks.worker.runtime import get_runtime

_stop = threading.Event()
_started = False


def start_writer() -> None:
    """One writer thread in this process (made after fork: its own Redis and engine)."""
    global _started  # noqa: PLW0603 - one writer thread per process, whoever calls first
    if _started:
        return
    rt = get_runtime()
    # The task thread must get the interpreter back within 0.5 ms of needing it, not after
    # CPython's default 5 ms: a batch being written must not delay an order.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    writer = AuditWriter(rt.redis, rt.engine)
    threading.Thread(target=writer.run, args=(_stop,), daemon=True, name="audit-writer").start()
    _started = True


@signals.worker_process_init.connect
def _start_in_pool_process(**_: Any) -> None:
    start_writer()


@signals.worker_ready.connect
def _start_without_pool_processes(sender: Any = None, **_: Any) -> None:
    """The solo and threads pools fork no pool process: the worker itself writes.

    The sender is the worker's Consumer; its controller knows the pool."""
    pool = getattr(getattr(sender, "controller", None), "pool_cls", "")
    if "prefork" not in str(getattr(pool, "__module__", pool)):
        start_writer()
