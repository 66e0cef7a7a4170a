"""The decide task as the exact Redis command Celery would send, built without sending it.

The bridge's hot path used to be two round trips: claim the message, then `send_task`
(an LPUSH onto the Celery queue). Built ahead, the LPUSH can run inside the claim's own
script (dedup.claim_and_push): the claim and the hand-over become one atomic step and one
round trip. `python -m bench` (README, Benchmark) measured the two at ~1.2 ms of the
bridge's 1.4 ms between hearing a signal and the task being on the queue.

Celery and kombu still build every byte: `send_task` runs in full (routing, headers,
serialisation, kombu's envelope and delivery tag) through a producer whose channel
collects the final `_put(queue, message)` instead of performing it. The key and payload
are computed by kombu's own `_q_for_pri` and `dumps`, the two things its Redis `_put`
does before its LPUSH. tests/test_fused_hand_over.py checks the result against a real
`send_task` byte for byte (bar the delivery tag) and has a real worker run it.

Built only where the LPUSH means the same inside a script: the Celery broker is the
Redis database the claims live in, kombu adds no key prefix and no queue expiry.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.utils.json import dumps

log = logging.getLogger(__name__)


class TaskPushBuilder:
    """`build(task, task_id, args, **options)` -> (queue key, payload), or an exception."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._collected: list[tuple[str, str]] = []
        self._connection = app.connection_for_write()
        self._channel = self._connection.channel()  # connects, one attempt: raises while Redis is away
        self._channel._put = self._collect  # this channel never writes a message itself
        self._producer = app.amqp.Producer(self._channel, auto_declare=False)

    def _collect(self, queue: str, message: dict[str, Any], **_: Any) -> None:
        priority = self._channel._get_message_priority(message, reverse=False)
        self._collected.append((self._channel._q_for_pri(queue, priority), dumps(message)))

    def close(self) -> None:
        self._connection.release()

    def build(self, task: str, task_id: str, args: list[Any], **options: Any) -> tuple[str, str]:
        self._collected.clear()
        self._app.send_task(task, args=args, task_id=task_id, producer=self._producer, **options)
        if self._channel._expires:  # a queue with x-expires is a pipeline with PEXPIREs, not one LPUSH
            raise ValueError("the Celery queue expires")
        if len(self._collected) != 1:  # routed to several queues, or to none: not one LPUSH
            raise ValueError(f"{task} routes to {len(self._collected)} queues")
        return self._collected[0]


def fusable(broker_url: str, redis_url: str, transport_options: dict[str, Any]) -> str | None:
    """Why the LPUSH cannot run in the claim script, or None when it can."""
    if broker_url != redis_url:
        return "the Celery broker is not the Redis database of the claims"
    if transport_options.get("global_keyprefix"):
        return "kombu prefixes its keys (global_keyprefix)"
    return None
