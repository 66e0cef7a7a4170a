"""The bridge's enqueuer keeps what it cannot hand to the Celery broker, and never drops
a message silently when that backlog is full."""

from __future__ import annotations

import asyncio
import logging

from celery import Celery

from bridge.enqueue import Enqueuer
from tests.support.procs import free_port
from tests.support.redis_dbs import redis_db


def unreachable_app() -> Celery:
    app = Celery("test", broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.broker_connection_timeout = 0.2
    return app


def test_unreachable_broker_keeps_messages_pending(caplog) -> None:
    enqueuer = Enqueuer(unreachable_app(), max_pending=5)
    results = asyncio.run(_submit_all(enqueuer, 3))
    assert results == [False, False, False]
    assert enqueuer.pending == 3 and enqueuer.enqueued == 0 and enqueuer.dropped == 0


def test_full_backlog_drops_the_oldest_with_an_error(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bridge.enqueue")
    enqueuer = Enqueuer(unreachable_app(), max_pending=2)
    asyncio.run(_submit_all(enqueuer, 3))
    assert enqueuer.pending == 2 and enqueuer.dropped == 1
    assert any("dropped undecided" in r.getMessage() and "id-0" in r.getMessage() for r in caplog.records)


async def _submit_all(enqueuer: Enqueuer, n: int) -> list[bool]:
    return [await enqueuer.submit(f"id-{i}", {"message_id": f"m{i}"}) for i in range(n)]


def test_reachable_broker_takes_messages_inline_in_order(private_redis) -> None:
    import json

    import redis

    app = Celery("test", broker=f"redis://127.0.0.1:{private_redis.port}/{redis_db(__name__)}")
    enqueuer = Enqueuer(app)
    assert asyncio.run(_submit_all(enqueuer, 3)) == [True, True, True]
    assert enqueuer.pending == 0 and enqueuer.enqueued == 3 and enqueuer.failures == 0
    queued = redis.Redis(port=private_redis.port, db=redis_db(__name__)).lrange("celery", 0, -1)
    assert [json.loads(m)["headers"]["id"] for m in reversed(queued)] == ["id-0", "id-1", "id-2"]
