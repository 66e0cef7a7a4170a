"""Which database of the session's private Redis each test module uses.

One owner, its own numbers: a module that empties its database (FLUSHDB) or counts the
commands sent to it (MONITOR) then never empties, or counts, another module's keys.
Database 0 belongs to the session's end-to-end gateways (the `gateway` fixture, which
every e2e module shares on purpose and resets between tests). Modules with a Redis
server of their own (`isolated_gateway`, the ops CLI) are not listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import redis

from zero_tasks.adapters.redis_state import connect

if TYPE_CHECKING:
    from tests.support.procs import PrivateRedis

REDIS_DATABASES = 16  # redis-server's default `databases`

OWNERS: dict[str, tuple[int, ...]] = {
    "gateway": (0,),
    "test_locks_and_audit": (1,),
    "test_enqueue": (2, 7),
    "test_audit_writer": (3,),
    "test_message_identity": (4, 5, 6),
    "test_round_trips": (8,),
    "test_in_flight": (9,),
    "test_metrics": (10,),
    "test_catch_up": (11,),
    "test_scripts": (12,),
    "test_keep_warm": (13,),
    "test_mirror_redis": (14,),
}


def shared_numbers() -> list[int]:
    """Numbers given to more than one owner (there must be none)."""
    counts = Counter(db for dbs in OWNERS.values() for db in dbs)
    return sorted(db for db, n in counts.items() if n > 1)


def flushed(server: PrivateRedis, db: int) -> Iterator[redis.Redis]:
    """A fixture body: a client of the gateway's kind on `db` of `server`, emptied first."""
    client = connect(f"redis://127.0.0.1:{server.port}/{db}")
    client.flushdb()
    yield client
    client.close()


def redis_db(owner: str, index: int = 0) -> int:
    """The `index`-th database of `owner` (a module's `__name__`, package prefix allowed)."""
    return OWNERS[owner.rsplit(".", 1)[-1]][index]


assert not shared_numbers(), f"Redis databases given twice: {shared_numbers()}"
assert all(0 <= db < REDIS_DATABASES for dbs in OWNERS.values() for db in dbs)
