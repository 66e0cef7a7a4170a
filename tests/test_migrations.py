"""The audit schema: ZERO's own M6 table adopted in place, a gateway on it, and /health
while the audit fails. The `alembic` commands and the processes' schema check at start:
tests/test_alembic_cli.py.

PostgreSQL tests each use a schema of their own (`options=-csearch_path=...`), so they
never meet another test's execution_log.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from tests.support.gateway import PG_URL, Gateway, collect, opportunity, ranking, sqlalchemy_url
from tests.support.procs import CELERY, ROOT, PrivateRedis, health, wait_for
from zero_tasks.adapters.audit import make_engine

ALEMBIC = str(Path(CELERY).with_name("alembic"))
HEAD = "0005"

# ZERO's infra/db/init.sql (and migrations/001_add_execution_log.sql) at 0a64d61, as is.
ZERO_EXECUTION_LOG = """
CREATE TABLE execution_log (
    id BIGSERIAL PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    execution_id TEXT NOT NULL UNIQUE,  -- Idempotency key
    ticker VARCHAR(10) NOT NULL,
    horizon VARCHAR(10) NOT NULL,  -- H30, H2H, HDAY, or HWEEK
    probability NUMERIC(5,4),  -- From opportunity
    opportunity_score NUMERIC(5,2),  -- From opportunity
    status VARCHAR(20) NOT NULL,  -- SUBMITTED, BLOCKED, SKIPPED, REJECTED, ERROR
    alpaca_order_id TEXT,  -- Alpaca order ID if submitted
    why JSONB,  -- Array of reason strings
    market_state_snapshot JSONB,  -- Market state at execution time
    created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_execution_log_time ON execution_log (time);
CREATE INDEX idx_execution_log_execution_id ON execution_log (execution_id);
CREATE INDEX idx_execution_log_ticker ON execution_log (ticker);
CREATE INDEX idx_execution_log_status ON execution_log (status);
CREATE INDEX idx_execution_log_time_ticker ON execution_log (time, ticker);
"""

ZERO_COLUMNS = ("id", "time", "execution_id", "ticker", "horizon", "probability", "opportunity_score", "status",
                "alpaca_order_id", "why", "market_state_snapshot", "created_at")
M6_STATE = {"schema_version": "1.0", "timestamp": "2026-11-24T14:29:31.402117+00:00", "state": "GREEN",
            "vix_level": 14.2, "reason": "Prime Window"}
# What ZERO's M6 gateway writes (services/execution/main.py): one row per execution_id,
# why a JSON array whose first line is its reason, the market state as read.
M6_ROWS = [
    ("2026-11-24T14:30:01.120443+00:00", "SPY:H30:2026-11-24T14:30:00", "SPY", "H30", 0.95, 95, "SUBMITTED",
     "61e69015-8549-4bfd-b9c3-01e75843f47d", ["Order submitted successfully", "breakout above VWAP"], M6_STATE),
    ("2026-11-24T14:35:00.998001+00:00", "QQQ:H30:2026-11-24T14:35:00", "QQQ", "H30", 0.8712, 71.5, "BLOCKED",
     None, ["Probability 0.8712 below threshold 0.90"], M6_STATE),
    ("2026-11-24T14:40:00.500000+00:00", "AAPL:H2H:2026-11-24T14:40:00", "AAPL", "H2H", 0.95, 88, "SKIPPED",
     None, ["Cooldown active (last trade: 2026-11-24T14:10:00+00:00)"], None),
]


# --- helpers ----------------------------------------------------------------------------

@pytest.fixture
def pg_url() -> Iterator[str]:
    """A private schema on the test PostgreSQL, dropped afterwards."""
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    base = os.environ.get("TEST_POSTGRES_URL", PG_URL)
    admin = make_engine(sqlalchemy_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlalchemy_url(pg_url))
    yield engine
    engine.dispose()


def zero_table_with_m6_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(ZERO_EXECUTION_LOG))
        for row in M6_ROWS:
            conn.execute(text(
                "INSERT INTO execution_log (time, execution_id, ticker, horizon, probability, opportunity_score, "
                "status, alpaca_order_id, why, market_state_snapshot) VALUES (:t, :e, :tk, :h, :p, :s, :st, :o, "
                "CAST(:why AS JSONB), CAST(:ms AS JSONB))"),
                {"t": row[0], "e": row[1], "tk": row[2], "h": row[3], "p": row[4], "s": row[5], "st": row[6],
                 "o": row[7], "why": json.dumps(row[8]), "ms": json.dumps(row[9])})


def zero_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        query = text(f"SELECT {', '.join(ZERO_COLUMNS)} FROM execution_log ORDER BY id")
        return [tuple(r) for r in conn.execute(query)]


def table_shape(engine: Engine) -> dict[str, Any]:
    """Columns, keys and indexes of execution_log, as PostgreSQL describes them."""
    with engine.connect() as conn:
        columns = [tuple(r) for r in conn.execute(text(
            "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'execution_log' "
            "ORDER BY ordinal_position"))]
        constraints = sorted(tuple(r) for r in conn.execute(text(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'execution_log'::regclass")))
        indexes = sorted(tuple(r) for r in conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'execution_log'")))
    return {"columns": columns, "constraints": constraints, "indexes": indexes}


def alembic(url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `alembic` command, from the repository root, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    return subprocess.run([ALEMBIC, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def current(url: str) -> str:
    result = alembic(url, "current")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- A. ZERO's table adopted in place ----------------------------------------------------

def test_zero_m6_table_is_adopted_with_every_row_kept(pg_url: str, pg: Engine) -> None:
    zero_table_with_m6_rows(pg)
    before = zero_rows(pg)

    result = alembic(pg_url, "upgrade", "head")

    assert result.returncode == 0, result.stderr
    assert current(pg_url) == f"{HEAD} (head)"
    assert zero_rows(pg) == before  # every M6 row, every ZERO column, unchanged
    with pg.connect() as conn:
        adopted = conn.execute(text(
            "SELECT id, event_key, reason, decided_at = time FROM execution_log ORDER BY id")).all()
    assert [tuple(r) for r in adopted] == [(row[0], f"zero-m6:{row[0]}", m6[8][0], True)
                                           for row, m6 in zip(before, M6_ROWS, strict=True)]
    shape = table_shape(pg)
    constraints = {definition for _, _, definition in shape["constraints"]}
    assert "UNIQUE (execution_id)" not in constraints
    assert "UNIQUE (event_key, \"time\")" in constraints
    assert "PRIMARY KEY (id)" in constraints  # ZERO's key kept (plain PostgreSQL: no hypertable here)
    # ZERO's indexes are all still there.
    names = {name for name, _ in shape["indexes"]}
    assert {"idx_execution_log_time", "idx_execution_log_execution_id", "idx_execution_log_ticker",
            "idx_execution_log_status", "idx_execution_log_time_ticker"} <= names


def test_adopted_table_takes_a_blocked_and_a_submitted_row_for_one_execution_id(pg_url: str, pg: Engine) -> None:
    """What the UNIQUE on execution_id forbade; the event key still refuses a second copy."""
    zero_table_with_m6_rows(pg)
    assert alembic(pg_url, "upgrade", "head").returncode == 0
    insert = text("INSERT INTO execution_log (time, execution_id, ticker, horizon, status, why, event_key, reason, "
                  "decided_at) VALUES ('2026-11-24T14:30:01+00:00', 'SPY:H30:2026-11-24T14:30:00', 'SPY', 'H30', "
                  ":status, '[]', :key, :status, now()) ON CONFLICT (event_key, time) DO NOTHING")
    with pg.begin() as conn:
        assert conn.execute(insert, {"status": "BLOCKED", "key": "k1"}).rowcount == 1
        assert conn.execute(insert, {"status": "SUBMITTED", "key": "k2"}).rowcount == 1
        assert conn.execute(insert, {"status": "SUBMITTED", "key": "k2"}).rowcount == 0
        statuses = conn.execute(text("SELECT status FROM execution_log WHERE execution_id = "
                                     "'SPY:H30:2026-11-24T14:30:00' ORDER BY id")).scalars().all()
    assert statuses == ["SUBMITTED", "BLOCKED", "SUBMITTED"]  # the M6 row and both new ones


def test_zero_table_stamped_by_the_earlier_migration_is_adopted_too(pg_url: str, pg: Engine) -> None:
    """Gateways before 0003 skipped ZERO's table and stamped 0002: the next upgrade repairs it."""
    zero_table_with_m6_rows(pg)
    assert alembic(pg_url, "upgrade", "0002").returncode == 0
    assert "event_key" not in {c["name"] for c in inspect(pg).get_columns("execution_log")}

    assert alembic(pg_url, "upgrade", "head").returncode == 0

    assert "event_key" in {c["name"] for c in inspect(pg).get_columns("execution_log")}
    assert len(zero_rows(pg)) == len(M6_ROWS)


def test_adoption_that_fails_halfway_leaves_the_table_and_its_rows_as_they_were(pg_url: str, pg: Engine) -> None:
    """A conflicting object made beforehand: the last step (an index) fails after the
    UNIQUE was dropped, the columns added and the rows filled in. One transaction: none of it stays."""
    zero_table_with_m6_rows(pg)
    with pg.begin() as conn:
        conn.execute(text("CREATE TABLE squatter (x int)"))
        conn.execute(text("CREATE INDEX ix_execution_log_status_time ON squatter (x)"))
    shape, rows = table_shape(pg), zero_rows(pg)

    result = alembic(pg_url, "upgrade", "head")

    assert result.returncode != 0
    assert "ix_execution_log_status_time" in result.stderr and "already exists" in result.stderr
    assert table_shape(pg) == shape  # UNIQUE (execution_id) back, no gateway column, same indexes
    assert zero_rows(pg) == rows
    with pg.connect() as conn:
        assert not inspect(conn).has_table("zero_execution_schema_version")  # not even 0001 recorded


# --- A (end to end). A real gateway on ZERO's table ---------------------------------------

def start_on_existing_table(gw: Gateway) -> Gateway:
    """Gateway.start, except that the table there is kept and migrated as an operator does
    (the processes never migrate: they refuse a schema that is behind)."""
    result = alembic(gw.database_url, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    gw.sim("POST", "/_sim/reset")  # the suite's simulator: no position an earlier module left
    for proc in [*gw.workers, *gw.bridges]:
        proc.start()
    gw.wait_ready()
    return gw


@pytest.mark.e2e
def test_gateway_on_zero_table_keeps_m6_rows_and_writes_blocked_then_submitted(
        pg_url: str, pg: Engine, log_dir: Path, sim: Any) -> None:
    zero_table_with_m6_rows(pg)
    before = zero_rows(pg)
    server = PrivateRedis(log_dir).start()
    gw = Gateway(log_dir, server, sim.url, pg_url, workers=1)
    try:
        start_on_existing_table(gw)
        rank = ranking(opportunity("SPY"))
        gw.green(enabled=False)
        blocked = gw.decide(rank)  # kill switch off
        gw.green()
        submitted = gw.decide(rank)  # the same ranking, now allowed
        third = gw.decide(ranking(opportunity("QQQ", probability=0.5)))
        rows = gw.wait_rows(len(M6_ROWS) + 3)
        assert [e["status"] for e in blocked + submitted + third] == ["BLOCKED", "SUBMITTED", "BLOCKED"]
        assert zero_rows(pg)[:len(before)] == before  # old rows kept
        same_id = [r["status"] for r in rows if r["execution_id"] == blocked[0]["execution_id"]]
        assert same_id == ["BLOCKED", "SUBMITTED"]
        assert _status(gw)["checks"]["audit"]["ok"] is True
    finally:
        gw.stop()
        server.stop()


def _status(gw: Gateway) -> dict[str, Any]:
    return health(gw.api_port)[1]


# --- B. /health while the audit cannot be written -----------------------------------------

@pytest.mark.e2e
def test_health_degraded_with_the_reason_while_the_audit_cannot_be_written_then_ok(
        pg_url: str, pg: Engine, log_dir: Path, sim: Any) -> None:
    """The schema broken for real (a column the writer needs renamed): every insert fails,
    the rows stay in the stream, /health says why; repaired, the rows land and /health is ok."""
    server = PrivateRedis(log_dir).start()
    gw = Gateway(log_dir, server, sim.url, pg_url, workers=1)
    try:
        gw.start()
        assert _status(gw)["checks"]["audit"] == {"ok": True, "detail": "written"}
        with pg.begin() as conn:
            conn.execute(text("ALTER TABLE execution_log RENAME COLUMN event_key TO event_key_gone"))
        pubsub = gw.subscribe()
        try:
            for payload in (ranking(opportunity("SPY")), ranking(opportunity("QQQ"))):  # BLOCKED: kill switch off
                gw.publish(payload)
            events = collect(pubsub, 2, 20)  # not settled: the audit cannot be written until it is repaired
        finally:
            pubsub.close()

        body = wait_for(lambda: (b := _status(gw))["status"] == "degraded" and not b["checks"]["audit"]["ok"] and b,
                        30, "/health degraded by the audit")
        detail = body["checks"]["audit"]["detail"]
        assert detail.startswith("audit not written: UndefinedColumn") and "event_key" in detail, detail
        assert body["audit_backlog"] >= 1
        with pg.begin() as conn:
            conn.execute(text("ALTER TABLE execution_log RENAME COLUMN event_key_gone TO event_key"))

        rows = gw.wait_rows(2, timeout=30)  # settled: exactly the two, nothing more
        assert sorted(r["event_key"] for r in rows) == sorted(e["decision_id"] for e in events)
        wait_for(lambda: _status(gw)["checks"]["audit"]["ok"], 30, "the audit check ok again")
        assert gw.r.lrange("key:execution_audit_dead_letter", 0, -1) == []  # nothing dead-lettered
    finally:
        gw.stop()
        server.stop()
