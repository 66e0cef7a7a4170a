"""A test build of the gateway that announces every decision twice: the same event on
chan:trade_update and a second execution_log row for the message (a copy of its record
under another event key, so the audit's ON CONFLICT cannot fold it into the first).

It exists to prove the suite's helpers can see a second event and a second row
(tests/test_quiescence_e2e.py; docs/tests.md, the duplicate experiment). It lives under
tests/, which is not part of the installed package, so no production process can load it:
a worker built from it is `celery -A tests.support.duplicating worker`, a bridge
`python -m tests.support.duplicating`. `ZERO_TEST_DUPLICATE=1` in the environment of a
pytest run makes every gateway of that run start from it (tests/support/procs.py).
"""

from __future__ import annotations

import dataclasses
import uuid

import redis

from zero_tasks.adapters import outbox
from zero_tasks.core.record import DecisionRecord

_keep_and_announce = outbox.keep_and_announce
_keep_and_announce_many = outbox.keep_and_announce_many


def twin(rec: DecisionRecord) -> DecisionRecord:
    """The same decision under an event key of its own (a second row, the same event)."""
    return dataclasses.replace(rec, event_key=str(uuid.uuid5(uuid.NAMESPACE_OID, rec.event_key)))


def keep_and_announce_twice(r: redis.Redis, rec: DecisionRecord,
                            seal_key: str | None = None) -> tuple[DecisionRecord, bool]:
    kept, published = _keep_and_announce(r, rec, seal_key)
    if published:
        _keep_and_announce(r, twin(kept))  # the twin seeds no lifecycle: one entry, one lifecycle
    return kept, published


def keep_and_announce_many_twice(r: redis.Redis, recs: list[DecisionRecord],
                                 seal_key: str | None = None) -> list[tuple[DecisionRecord, bool]]:
    results = _keep_and_announce_many(r, recs, seal_key)
    twins = [twin(kept) for kept, published in results if published]
    if twins:
        _keep_and_announce_many(r, twins)
    return results


outbox.keep_and_announce = keep_and_announce_twice  # type: ignore[assignment]
outbox.keep_and_announce_many = keep_and_announce_many_twice  # type: ignore[assignment]

from zero_tasks.celery_app import app  # noqa: E402 - the worker's app, after the patch

__all__ = ["app"]

if __name__ == "__main__":
    from bridge.__main__ import main

    main()
