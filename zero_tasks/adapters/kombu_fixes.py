"""The one place the gateway reaches into kombu: a crash fix in its Redis transport.

When Redis goes away while a worker holds unacknowledged messages (late acks; retry
countdowns and order follow-ups are held unacked), Celery closes the channel and kombu's
`QoS.restore_unacked` tries to put those messages back through a connection that no
longer exists: `AttributeError: 'NoneType' object has no attribute 'hostname'` in
`_connparams`, which Celery reports as "Unrecoverable error", and the worker exits (seen
in the Redis-restart fault test; upstream: celery/kombu#582 and celery/kombu#970, the
same family, open). Nothing needs restoring there: the messages are still in kombu's
unacked hash in Redis and come back by the visibility-timeout sweep. So only that
AttributeError is turned into a warning, and the worker reconnects like after any outage.

`QoS.restore_unacked` is not a public API. kombu is pinned exactly, and `apply` refuses
any other installed version: a new kombu is taken only after checking that the crash is
still there (the fault test without `apply`) and that `restore_unacked(client=None)` is
still the method Celery's channel close calls, then moving PINNED with the lock.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

from zero_tasks.adapters.pins import require_version

log = logging.getLogger(__name__)
PINNED = "5.7.0"
_original_restore_unacked = kombu_redis.QoS.restore_unacked


def require_pinned(installed: str | None = None) -> None:
    """Stop the process unless the installed kombu is the pinned one."""
    require_version("kombu", PINNED, installed=installed, why=(
        "zero_tasks/adapters/kombu_fixes.py wraps kombu's Redis QoS.restore_unacked, which is not public "
        f"(a crash fix, celery/kombu#582). Install kombu=={PINNED}, or check the fix against the new "
        "version and move PINNED and the lock together."))


def _connection_gone(exc: AttributeError) -> bool:
    return "'NoneType' object has no attribute" in str(exc)


def _restore_unacked(self: Any, client: Any = None) -> Any:
    try:
        return _original_restore_unacked(self, client)
    except AttributeError as exc:
        if not _connection_gone(exc):
            raise
        log.warning("redis connection gone while restoring unacked messages; "
                    "they return after the visibility timeout")
        return []


def apply() -> None:
    require_pinned()
    # deliberate: the crash fix replaces kombu's method (see the module docstring)
    kombu_redis.QoS.restore_unacked = _restore_unacked  # type: ignore[method-assign]
