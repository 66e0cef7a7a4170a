"""The Celery application: the worker runs it, the bridge sends its tasks with it.

`celery -A zero_tasks worker` finds `app` here (zero_tasks/__init__.py). Loading it applies
the kombu fix; celeryconfig, whose paper-only guard runs as it loads, is read at the app's
first look at its configuration, before anything is sent or run. The worker's modules are
named in `include`, as text: the worker imports them at its start (its tasks and its
process hooks, worker/warm.py among them); a process that only sends tasks by name (the
bridge) never loads them.
"""

from __future__ import annotations

from celery import Celery, signals

from zero_tasks.adapters import kombu_fixes
from zero_tasks.logs import configure_logging

kombu_fixes.apply()
app = Celery("zero_tasks")
app.config_from_object("celeryconfig")
# warm.py first: its process hooks ran before the audit writer's when the app lived in the worker package
app.conf.include = ["zero_tasks.worker.warm", "zero_tasks.worker.tasks", "zero_tasks.worker.delayed_send",
                    "zero_tasks.worker.heartbeat", "zero_tasks.worker.watchdog", "zero_tasks.worker.audit_thread"]


@signals.setup_logging.connect
def _configure_logging(loglevel: int | str | None = None, logfile: str | None = None, **_: object) -> None:
    """Our JSON/terminal formatter instead of Celery's, at the level and to the file of the
    worker's `-l/--loglevel` and `-f/--logfile` (Celery passes them to this signal)."""
    configure_logging(loglevel or "INFO", logfile or None)
