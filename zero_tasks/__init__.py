"""ZERO execution gateway: the Celery app and the decision/order tasks.

`app` is imported lazily so that the pure modules (intake, veto, decision) can be
imported without configuration; the worker's paper-only guard runs when `app` loads.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from zero_tasks.celery_app import app

        return app
    raise AttributeError(name)
