"""The Celery application. `celery -A zero_tasks worker` finds `app` here."""

from __future__ import annotations

from celery import Celery, signals

from . import kombu_fixes
from .logs import configure_logging

kombu_fixes.apply()
app = Celery("zero_tasks")
app.config_from_object("celeryconfig")
app.conf.include = ["zero_tasks.tasks", "zero_tasks.heartbeat", "zero_tasks.audit_writer"]


@signals.setup_logging.connect
def _configure_logging(**_: object) -> None:
    """Our JSON/terminal formatter instead of Celery's, in the worker too."""
    configure_logging()
