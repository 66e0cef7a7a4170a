"""Two narrow changes to kombu's Redis transport, applied when the app loads.

1. A crash fix. When Redis goes away while a worker holds unacknowledged messages (late
   acks; retry countdowns and order follow-ups are held unacked), Celery closes the
   channel and kombu tries to put those messages back through a connection that no
   longer exists: `AttributeError: 'NoneType' object has no attribute 'hostname'` in
   `_connparams`, which Celery reports as "Unrecoverable error" and the worker exits
   (seen in our Redis-restart fault test; kombu issues #582 and #970 are the same
   family). Nothing needs restoring by hand there: the messages are still in kombu's
   unacked hash in Redis and come back by the visibility-timeout sweep. So the restore is
   skipped with a warning instead of killing the worker, which then reconnects like
   after any outage.

2. One Redis client per channel. kombu builds a new `redis.Redis` object for every
   command it sends outside the consumer's poll: every publish (the bridge's LPUSH, a
   retry or follow-up), and the unacked-hash write of every delivery and its ack. The
   connection comes from the channel's pool either way, but building the client object
   (redis-py fills ~170 response callbacks) cost 0.3-0.4 ms each here, three times per
   task on the path from signal to order (`python -m bench`; docs/benchmark.md). The
   client is now built once per channel and pool and reused: a redis-py client over a
   pool is safe to share, and a new pool (reconnect, fork) gets a new client.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

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


@contextmanager
def _conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
    if client:
        yield client
        return
    cached = self.__dict__.get("_zero_sync_client")
    if cached is None or cached.connection_pool is not self.pool:
        cached = self._zero_sync_client = self._create_client()
    yield cached


def apply() -> None:
    kombu_redis.QoS.restore_unacked = _restore_unacked
    kombu_redis.Channel.conn_or_acquire = _conn_or_acquire
