"""A narrow workaround for a kombu Redis-transport crash, applied when the app loads.

When Redis goes away while a worker holds unacknowledged messages (late acks; retry
countdowns and order follow-ups are held unacked), Celery closes the channel and kombu
tries to put those messages back through a connection that no longer exists:
`AttributeError: 'NoneType' object has no attribute 'hostname'` in `_connparams`, which
Celery reports as "Unrecoverable error" and the worker exits (seen in our Redis-restart
fault test; kombu issues #582 and #970 are the same family).

Nothing needs restoring by hand there: the messages are still in kombu's unacked hash in
Redis and come back by the visibility-timeout sweep. So the restore is skipped with a
warning instead of killing the worker, which then reconnects like after any outage.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)
_original_restore_unacked = kombu_redis.QoS.restore_unacked


def _restore_unacked(self: Any, client: Any = None) -> Any:
    try:
        return _original_restore_unacked(self, client)
    except AttributeError:
        log.warning("redis connection gone while restoring unacked messages; "
                    "they return after the visibility timeout")
        return []


def apply() -> None:
    kombu_redis.QoS.restore_unacked = _restore_unacked
