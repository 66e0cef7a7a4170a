"""The decide task as the exact Redis command Celery would send, built without sending it.

The bridge's hot path used to be two round trips: claim the message, then `send_task`
(an LPUSH onto the Celery queue). Built ahead, the LPUSH can run inside the claim's own
script (dedup.claim_and_push): the claim and the hand-over become one atomic step and one
round trip. `python -m bench` (docs/benchmark.md) measured the two at ~1.2 ms of the
bridge's 1.4 ms between hearing a signal and the task being on the queue.

Celery and kombu build the message: `send_task` runs in full (routing, headers,
serialisation, kombu's envelope) through a producer whose channel collects the final
`_put(queue, message)` instead of performing it; the key and payload are computed by
kombu's own `_q_for_pri` and `dumps`, the two things its Redis `_put` does before its
LPUSH. That is done once, with placeholder ids, and kept as a template: per message only
what names the task (its id, wherever Celery puts it), the argument's repr, kombu's
delivery tag and the body change. `send_task` took ~0.12 ms a message here, the template
0.02 ms. At start the template's output is compared with Celery's own for a sample
message; any difference (a Celery or kombu upgrade that adds a per-message field) and
tasks go through `send_task` instead. tests/test_fused_hand_over.py checks the same byte
for byte (bar the delivery tag) and has a real worker run the result.

Built only where the LPUSH means the same inside a script: the Celery broker is the
Redis database the claims live in, kombu adds no key prefix and no queue expiry.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from celery import Celery
from kombu.utils.json import dumps, loads
from kombu.utils.uuid import uuid

log = logging.getLogger(__name__)

_ID = "zero-template-task-id"  # placeholders: found where Celery puts them, replaced per message
_REPR = "zero-template-argsrepr"
_SAMPLE = ("zero-sample-id", [{"message_id": "sample:1", "payload": '{"é": 1}'}], "['sample:1']")


class TaskPushBuilder:
    """`build(task_id, args, argsrepr)` -> (queue key, payload) of `task`, as Celery would
    queue it with `kwargsrepr="{}"` and no other option. Raises ValueError at construction
    when that cannot be built ahead (routing, queue expiry, a template that differs)."""

    def __init__(self, app: Celery, task: str) -> None:
        self._app, self._task = app, task
        self._connection = app.connection_for_write()  # only while the template is made
        try:
            self._key, self._envelope, self._kwargs, self._embed = self._template()
            self._check()
        finally:
            self._connection.release()

    def _celery_build(self, task_id: str, args: list[Any], argsrepr: str) -> tuple[str, str]:
        """What `send_task` would LPUSH, collected from the channel instead of sent."""
        channel = self._connection.channel()  # connects, one attempt: raises while Redis is away
        collected: list[tuple[str, str]] = []

        def collect(queue: str, message: dict[str, Any], **_: Any) -> None:
            priority = channel._get_message_priority(message, reverse=False)
            collected.append((channel._q_for_pri(queue, priority), dumps(message)))

        channel._put = collect  # this channel never writes a message itself
        try:
            producer = self._app.amqp.Producer(channel, auto_declare=False)
            self._app.send_task(self._task, args=args, task_id=task_id, producer=producer, argsrepr=argsrepr,
                                kwargsrepr="{}")
            if channel._expires:  # a queue with x-expires is a pipeline with PEXPIREs, not one LPUSH
                raise ValueError("the Celery queue expires")
        finally:
            channel.close()
        if len(collected) != 1:  # routed to several queues, or to none: not one LPUSH
            raise ValueError(f"{self._task} routes to {len(collected)} queues")
        return collected[0]

    def _template(self) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
        key, payload = self._celery_build(_ID, [], _REPR)
        envelope = loads(payload)
        props = envelope["properties"]
        if props.get("body_encoding") != "base64" or envelope.get("content-type") != "application/json":
            raise ValueError(f"unexpected message encoding {props.get('body_encoding')}/{envelope.get('content-type')}")
        _, kwargs, embed = loads(base64.b64decode(envelope["body"]))
        return key, envelope, kwargs, embed

    def _check(self) -> None:
        ours, celery = (loads(build(*_SAMPLE)[1]) for build in (self.build, self._celery_build))
        for message in (ours, celery):
            message["properties"].pop("delivery_tag")
        if ours != celery:
            raise ValueError("the task template differs from what Celery sends")

    def build(self, task_id: str, args: list[Any], argsrepr: str) -> tuple[str, str]:
        envelope = dict(self._envelope)
        envelope["headers"] = _filled(self._envelope["headers"], task_id, argsrepr)
        envelope["properties"] = _filled(self._envelope["properties"], task_id, argsrepr)
        envelope["properties"]["delivery_tag"] = uuid()
        body = dumps([args, self._kwargs, self._embed])
        envelope["body"] = base64.b64encode(body.encode("utf-8")).decode("ascii")
        return self._key, dumps(envelope)


def _filled(fields: dict[str, Any], task_id: str, argsrepr: str) -> dict[str, Any]:
    """A copy with the placeholders replaced (nested dicts too: delivery_info)."""
    out = {}
    for name, value in fields.items():
        if value == _ID:
            value = task_id
        elif value == _REPR:
            value = argsrepr
        elif isinstance(value, dict):
            value = _filled(value, task_id, argsrepr)
        out[name] = value
    return out


def fusable(broker_url: str, redis_url: str, transport_options: dict[str, Any]) -> str | None:
    """Why the LPUSH cannot run in the claim script, or None when it can."""
    if broker_url != redis_url:
        return "the Celery broker is not the Redis database of the claims"
    if transport_options.get("global_keyprefix"):
        return "kombu prefixes its keys (global_keyprefix)"
    return None
