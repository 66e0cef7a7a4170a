"""The horizon exit leaves at the right trading minute of the broker's calendar, through
the real processes: an H30 ranked 20 minutes before the close leaves at 09:40 the next
session (held overnight on purpose, not sold at the close), and an HWEEK ranked on a
Wednesday leaves 1950 trading minutes later, across a weekend and a holiday.

The gateway's processes run under libfaketime (FAKETIME, an offset from the real clock,
the same for every process) at the ranking's moment, so its signal age and market-state
checks pass; the simulator's clock stands at the same moment and is moved on by the test.
The arithmetic itself is pinned against the real NYSE calendar in test_lifecycle_core.py.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alpaca_paper_sim import BrokerState, SimServer, TradingSession
from tests.support.gateway import Gateway, isolated_gateway, opportunity, ranking
from tests.support.lifecycle import steps_taken
from tests.support.procs import CELERY, TEST_SIGNING_KEY, Proc, wait_for
from zero_tasks.adapters import lifecycle_store
from zero_tasks.core.contract import exit_client_order_id

pytestmark = [pytest.mark.e2e]

NY = ZoneInfo("America/New_York")
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
MLK_2027 = date(2027, 1, 18)


@dataclass(frozen=True)
class Case:
    name: str
    moment: datetime  # the ranking, on the simulator's and the gateway's clocks
    horizon: str
    not_yet: datetime  # a moment before the horizon exit: nothing sold yet
    due: datetime  # the trading minute the exit is due (the ranking's seconds added)


def ny(y: int, m: int, d: int, hh: int, mm: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(UTC)


CASES = [
    # 20 minutes on Monday, 10 on Tuesday: 09:40, not at Monday's close
    Case("H30 20 minutes before the close", ny(2026, 12, 7, 15, 40), "H30", ny(2026, 12, 7, 15, 58),
         ny(2026, 12, 8, 9, 40)),
    # 60 Wed + 390 Thu + 390 Fri, the weekend, MLK day, 390 Tue + 390 Wed, the last 330 on Thursday
    Case("HWEEK across a weekend and a holiday", ny(2027, 1, 13, 15, 0), "HWEEK", ny(2027, 1, 19, 15, 0),
         ny(2027, 1, 21, 15, 0)),
]


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def case_gateway(request: pytest.FixtureRequest, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Case, Gateway, SimServer, float]]:
    if not LIBFAKETIME.exists() or shutil.which("faketime") is None:
        pytest.skip("libfaketime is needed (apt-get install faketime)")
    case: Case = request.param
    sim = SimServer(state=BrokerState(fill_delay_s=0, session=TradingSession.new_york([MLK_2027]),
                                      rate_limit=1_000_000, synthetic_assets=True)).start()
    offset = int((case.moment - datetime.now(UTC)).total_seconds())
    clock = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": f"{offset:+d}", "FAKETIME_NO_CACHE": "1"}
    # each process judges by its own (faked) clock: redis-server does not run under libfaketime
    faked = {**clock, "GATEWAY_CLOCK": "local", "LIFECYCLE_TICK_S": "1", "LIFECYCLE_LOOK_EVERY_S": "2"}
    tmp = tmp_path_factory.mktemp("calendar")
    try:
        requests_post(sim, "/_sim/clock", {"now": case.moment.isoformat()})
        with isolated_gateway(log_dir, sim.url, tmp, workers=1, **faked) as gw:
            beat = Proc(f"beat-{gw.api_port}", [CELERY, "-A", "zero_tasks", "beat", "-s",
                                               str(tmp / "beat-schedule"), "-l", "INFO"], gw.env, log_dir).start()
            try:
                yield case, gw, sim, offset
            finally:
                beat.stop()
    finally:
        sim.stop()


def requests_post(sim: SimServer, path: str, body: Any) -> Any:
    import requests

    response = requests.post(sim.url + path, json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def faked_now(offset: float) -> datetime:
    return datetime.fromtimestamp(time.time() + offset, UTC)


@pytest.mark.guarantee  # needs libfaketime: .ci/run installs it, and under CI=true a skip fails
def test_the_horizon_exit_leaves_at_the_right_trading_minute(
        case_gateway: tuple[Case, Gateway, SimServer, float]) -> None:
    case, gw, sim, offset = case_gateway
    requests_post(sim, "/_sim/prices", {"SPY": 100.0})  # pinned: neither leg of the protect fills
    now = faked_now(offset)
    gw.r.set("key:execution_enabled", "true")
    gw.r.set("key:market_state", json.dumps({"schema_version": "1.0", "timestamp": now.isoformat(),
                                             "state": "GREEN", "reason": "Prime Window"}))
    gw.r.delete("key:execution_session")
    (entry,) = gw.decide(ranking(opportunity("SPY", horizon=case.horizon), rank_time=now, horizon=case.horizon))
    assert entry["status"] == "SUBMITTED", entry
    exec_id = entry["execution_id"]
    rank_time = datetime.fromisoformat(exec_id.split(":", 2)[2]).replace(tzinfo=UTC)
    due = case.due + timedelta(seconds=rank_time.second)  # the ranking's seconds carry to the due time

    def due_at() -> datetime | None:
        rec = lifecycle_store.load(gw.r, exec_id, TEST_SIGNING_KEY)
        return rec.due_at if rec else None

    assert wait_for(due_at, 30, "the due time") == due
    sell_cid = exit_client_order_id(exec_id)

    def sells() -> list[dict[str, Any]]:
        return [o for o in gw.orders() if o["client_order_id"] == sell_cid]

    requests_post(sim, "/_sim/clock", {"now": case.not_yet.isoformat()})
    steps_taken(gw, exec_id, 2)  # two steps at a moment before the horizon: nothing may be sold
    assert sells() == []
    requests_post(sim, "/_sim/clock", {"now": (due - timedelta(seconds=30)).isoformat()})
    steps_taken(gw, exec_id, 2)
    assert sells() == []
    requests_post(sim, "/_sim/clock", {"now": (due + timedelta(seconds=1)).isoformat()})
    (sell,) = wait_for(sells, 30, "the horizon sell")
    assert sell["side"] == "sell" and float(sell["qty"]) == 1
    assert due <= datetime.fromisoformat(sell["submitted_at"]) <= due + timedelta(seconds=1)
