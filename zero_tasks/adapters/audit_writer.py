"""The audit writer: turns the outbox's audit stream into execution_log rows, in batches.

Every decision is added to a Redis stream (`outbox.AUDIT_STREAM`) in the same Lua step
that keeps and announces it. Writers, one thread in every worker pool process, read the
stream as a consumer group and insert what they read in one transaction (up to
BATCH_MAX rows); only then are the entries acknowledged and deleted. So:

- nothing is lost: an entry leaves the stream only after its row is committed; a
  database that is down keeps the entries pending and the writer retries them with
  backoff (no Celery task per row, no worker stuck on a dead connection);
- nothing is written twice: the insert ignores an event_key that is already there, so a
  batch retried after a crash between commit and acknowledgement is harmless;
- a writer that died (SIGKILL) leaves its entries pending; another writer claims those
  idle for CLAIM_IDLE_MS (XAUTOCLAIM) and writes them;
- a row the database refuses for its content (a DataError) would be refused forever: it
  goes to the dead-letter list `key:execution_audit_dead_letter`, logged as an error; a
  batch PostgreSQL refuses for the schema (ProgrammingError: a missing column, a table it
  may not write) is no row's fault: it stays pending and is retried like a database away;
- while a writer cannot write, it says why in its failure key (audit_health.py), which
  makes /health degraded; the key is deleted when it writes again.

One row per decision used to be one transaction per decision; a batch of 500 is one.

The thread in every worker process is started by zero_tasks/worker/audit_thread.py;
`zero-ops reconcile` drains the stream itself (`AuditWriter.drain`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError, SQLAlchemyError

from zero_tasks.adapters import registry
from zero_tasks.adapters.audit import SchemaNotAtHead, insert_outcomes, insert_rows, outcome_row, require_schema
from zero_tasks.adapters.audit_health import FAILING_KEY, FAILURE_TTL_S, failure_key, failure_value, reason_of
from zero_tasks.adapters.outbox import AUDIT_STREAM
from zero_tasks.core.record import DecisionRecord

log = logging.getLogger(__name__)

GROUP = "audit-writers"
DEAD_LETTER = "key:execution_audit_dead_letter"
BATCH_MAX = 500
BLOCK_MS = 1000
CLAIM_IDLE_MS = 30_000
CLAIM_EVERY_S = 5.0
BACKOFF_MAX_S = 5.0
SWITCH_INTERVAL_S = 0.0005
Entry = tuple[str, dict[str, str]]


class AuditWriter:
    """One consumer of the audit stream; `run` until `stop` is set."""

    def __init__(self, r: redis.Redis, engine: Engine, name: str | None = None) -> None:
        self._r = r
        self._engine = engine
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._retry_own = True  # start with what this consumer left pending (a restart)
        self._schema_ready = False
        self._group_ready = False
        self._next_claim = 0.0
        self._failing_since: datetime | None = None
        self.written = 0

    def run(self, stop: threading.Event) -> None:
        log.info("audit writer %s started", self.name)
        backoff = 0.0
        while not stop.is_set():
            try:
                if self.step() and self._failing_since is not None:
                    self._recovered(self._failing_since)
                backoff = 0.0
            except (redis.RedisError, OperationalError, InterfaceError, ProgrammingError, SchemaNotAtHead) as exc:
                backoff = min(max(backoff * 2, 0.25), BACKOFF_MAX_S)
                log.warning("audit writer: %s; retrying in %.2fs", reason_of(exc), backoff)
                self._failed(exc)
                stop.wait(backoff)
            except Exception as exc:  # the writer thread must outlive any one batch
                log.exception("audit writer: unexpected failure; retrying in %.1fs", BACKOFF_MAX_S)
                self._failed(exc)
                stop.wait(BACKOFF_MAX_S)

    def _failed(self, exc: BaseException) -> None:
        """Say why in this writer's failure key (for /health); a Redis that is down
        cannot hold it, and /health is `down` then anyway."""
        if isinstance(exc, redis.RedisError):
            return
        self._schema_ready = False  # a broken or replaced schema: checked again at the next try
        self._failing_since = self._failing_since or datetime.now(UTC)
        try:
            pipe = self._r.pipeline(transaction=False)
            pipe.set(failure_key(self.name), failure_value(reason_of(exc), self._failing_since, self.name),
                     ex=FAILURE_TTL_S)
            registry.register(pipe, FAILING_KEY, self.name, time.time())
            pipe.execute()
        except redis.RedisError as redis_exc:
            log.warning("audit writer: failure not reported (%s)", type(redis_exc).__name__)

    def _recovered(self, since: datetime) -> None:
        pipe = self._r.pipeline(transaction=False)
        pipe.delete(failure_key(self.name))
        registry.unregister(pipe, FAILING_KEY, self.name)
        pipe.execute()
        log.warning("audit writer %s: writing again (failing since %s)", self.name, since.isoformat())
        self._failing_since = None

    def step(self, block_ms: int | None = BLOCK_MS) -> int:
        """Write one batch (own pending first, then abandoned, then new); the entries handled.

        `block_ms` None: do not wait for new entries."""
        entries = self._read(block_ms)
        if not entries:
            return 0
        self._retry_own = True  # until this batch is committed and acknowledged
        self.written += self._write(entries)
        self._ack([entry_id for entry_id, _ in entries])
        self._retry_own = False
        return len(entries)

    def drain(self) -> None:
        """Write everything in the stream now (the ops CLI; tests)."""
        while self.step(block_ms=None):
            pass

    def _read(self, block_ms: int | None) -> list[Entry]:
        if not self._group_ready:
            self._ensure_group()
        try:
            return self._read_entries(block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._ensure_group()  # the stream was deleted (FLUSHDB, a reset): start it again
            return self._read_entries(block_ms)

    def _read_entries(self, block_ms: int | None) -> list[Entry]:
        if self._retry_own:
            own = self._entries(self._r.xreadgroup(GROUP, self.name, {AUDIT_STREAM: "0"}, count=BATCH_MAX))
            if own:
                return own
            self._retry_own = False
        claimed = self._abandoned()
        if claimed:
            log.warning("audit writer %s: took over %d entries of a writer that stopped", self.name, len(claimed))
            return [(entry_id, fields) for entry_id, fields in claimed if fields]
        return self._entries(self._r.xreadgroup(GROUP, self.name, {AUDIT_STREAM: ">"}, count=BATCH_MAX,
                                                block=block_ms))

    def _abandoned(self) -> list[Entry]:
        """Entries a stopped writer left pending; looked for every CLAIM_EVERY_S."""
        if time.monotonic() < self._next_claim:
            return []
        self._next_claim = time.monotonic() + CLAIM_EVERY_S
        _, claimed, _ = self._r.xautoclaim(AUDIT_STREAM, GROUP, self.name, CLAIM_IDLE_MS, "0-0", count=BATCH_MAX)
        return claimed

    @staticmethod
    def _entries(reply: Any) -> list[Entry]:
        if not reply:
            return []
        _, entries = reply[0]
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    def _ensure_group(self) -> None:
        try:
            self._r.xgroup_create(AUDIT_STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _write(self, entries: list[Entry]) -> int:
        if not self._schema_ready:
            require_schema(self._engine)  # never migrates: `alembic upgrade head` does
            self._schema_ready = True
        rows, outcomes, refused = [], [], []
        for _, fields in entries:
            try:
                if "outcome" in fields:  # an execution's outcome (outbox.keep_outcome): its own table
                    outcomes.append(outcome_row(fields["outcome"]))
                else:
                    rows.append(DecisionRecord.from_json(fields["row"]).to_row())
            except (KeyError, ValueError, TypeError) as exc:
                refused.append((fields.get("row", repr(fields)), f"unreadable: {type(exc).__name__}"))
        try:
            insert_outcomes(self._engine, outcomes)  # one row per execution: a retry is a no-op
            written = insert_rows(self._engine, rows)
        except (OperationalError, InterfaceError):
            raise  # the database is away: keep the entries pending, retry
        except SQLAlchemyError as exc:
            if self._schema_refused(exc):
                raise  # no row's fault: keep the entries pending, retry
            written = self._write_one_by_one(rows, refused)
        for row, why in refused:
            self._dead_letter(row, why)
        return written

    def _write_one_by_one(self, rows: list[dict[str, Any]], refused: list[tuple[Any, str]]) -> int:
        """A batch the database refused: find the row(s) it refuses, write the others."""
        written = 0
        for row in rows:
            try:
                written += insert_rows(self._engine, [row])
            except (OperationalError, InterfaceError):
                raise
            except SQLAlchemyError as exc:
                if self._schema_refused(exc):
                    raise
                refused.append((row, type(exc).__name__))
        return written

    def _schema_refused(self, exc: SQLAlchemyError) -> bool:
        """PostgreSQL's ProgrammingError is about the statement against the schema
        (undefined column or table, insufficient privilege), never a row's values. On
        SQLite those are OperationalErrors, and its ProgrammingError can be a value."""
        return isinstance(exc, ProgrammingError) and self._engine.dialect.name == "postgresql"

    def _dead_letter(self, row: Any, why: str) -> None:
        event_key = row.get("event_key") if isinstance(row, dict) else None
        log.error("audit row %s refused (%s); kept in %s", event_key, why, DEAD_LETTER)
        self._r.rpush(DEAD_LETTER, row if isinstance(row, str) else json.dumps(row, default=str))

    def _ack(self, entry_ids: list[str]) -> None:
        pipe = self._r.pipeline()
        pipe.xack(AUDIT_STREAM, GROUP, *entry_ids)
        pipe.xdel(AUDIT_STREAM, *entry_ids)
        pipe.execute()


def backlog(r: redis.Redis) -> int:
    """Decisions not yet written to execution_log (for /health and /metrics)."""
    return int(r.xlen(AUDIT_STREAM))
