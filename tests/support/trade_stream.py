"""A trade_updates websocket over the in-process simulator's state, as Alpaca speaks it.

Stands in for the simulator's own stream (issue 26) in the account mirror's tests and the
bench: alpaca-py's TradingStream connects to it unchanged (authenticate, listen, then
`trade_updates` messages whose `data` is a TradeUpdate). It looks at the simulator's book
(every 20 ms after a request reached the simulator, else every second) and sends one event
per order whose state changed (the event named by the new status), with the position's
quantity after a fill. `drop_all` closes every connection (a network cut); `hold` refuses
new ones until `release` (the consumer stays disconnected meanwhile).
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from alpaca_paper_sim import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, BrokerState

EVENTS = {"new": "new", "accepted": "new", "pending_new": "pending_new", "partially_filled": "partial_fill",
          "filled": "fill", "canceled": "canceled", "expired": "expired", "rejected": "rejected",
          "replaced": "replaced", "pending_cancel": "pending_cancel", "done_for_day": "done_for_day"}
POLL_S = 0.02


class TradeStream:
    def __init__(self, state: BrokerState, key_id: str = DEFAULT_KEY_ID, secret_key: str = DEFAULT_SECRET_KEY) -> None:
        self.state = state
        self.keys = (key_id, secret_key)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._listeners: set[ServerConnection] = set()
        self._held = False
        self._seen: dict[str, tuple[str, str, str]] = {}
        self._thread = threading.Thread(target=self._loop.run_forever, name="trade-stream", daemon=True)
        self.connections = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    def start(self) -> TradeStream:
        self._thread.start()
        self._seen = {o["id"]: self._mark(o) for o in self.state.all_orders()}
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def drop_all(self) -> None:
        """Close every connection now, as a network cut would."""
        self._call(self._drop())

    def hold(self) -> None:
        """Drop every connection and refuse new ones until `release`."""
        self._held = True
        self.drop_all()

    def release(self) -> None:
        self._held = False

    def listening(self) -> int:
        return len(self._listeners)

    # ----------------------------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _stop(self) -> None:
        self._watcher.cancel()
        await self._drop()
        if self._server is not None:
            self._server.close()

    async def _drop(self) -> None:
        for conn in list(self._listeners):
            await conn.close()
        self._listeners.clear()

    async def _handle(self, conn: ServerConnection) -> None:
        if self._held:
            await conn.close()
            return
        self.connections += 1
        try:
            auth = json.loads(await conn.recv())
            data = auth.get("data") or {}
            if auth.get("action") != "authenticate" or (data.get("key_id"), data.get("secret_key")) != self.keys:
                await conn.send(json.dumps({"stream": "authorization",
                                            "data": {"status": "unauthorized", "action": "authenticate"}}))
                return
            await conn.send(json.dumps({"stream": "authorization",
                                        "data": {"status": "authorized", "action": "authenticate"}}))
            listen = json.loads(await conn.recv())
            streams = (listen.get("data") or {}).get("streams") or []
            if listen.get("action") == "listen" and "trade_updates" in streams:
                self._listeners.add(conn)
                await conn.send(json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}))
            await conn.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            self._listeners.discard(conn)

    @staticmethod
    def _mark(order: dict[str, Any]) -> tuple[str, str, str]:
        return order["status"], order["filled_qty"], order["updated_at"] or ""

    def _requests(self) -> int:
        return sum(self.state.stats()["requests"].values())

    async def _watch(self) -> None:
        """Every POLL_S, the book again, when a request reached the simulator since the last
        look (a fill, a cancel or an order comes with one) or a second has passed: cheap
        enough to run beside a benchmark."""
        seen_requests, last_scan = -1, 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL_S)
            requests_now = self._requests()
            if requests_now == seen_requests and loop.time() - last_scan < 1.0:
                continue
            seen_requests, last_scan = requests_now, loop.time()
            changed = []
            for order in self.state.all_orders():
                mark = self._mark(order)
                if self._seen.get(order["id"]) != mark:
                    before = self._seen.get(order["id"])
                    self._seen[order["id"]] = mark
                    changed.append((order, before))
            if not changed:
                continue
            positions = {p["symbol"]: p["qty"] for p in self.state.positions_json()}
            for order, before in changed:
                await self._send(self._event(order, before, positions))

    @staticmethod
    def _event(order: dict[str, Any], before: tuple[str, str, str] | None,
               positions: dict[str, str]) -> dict[str, Any]:
        event = EVENTS.get(order["status"], order["status"])
        data: dict[str, Any] = {"event": event, "order": order, "timestamp": datetime.now(UTC).isoformat()}
        if event in ("fill", "partial_fill"):
            filled_before = float(before[1]) if before else 0.0
            data.update(price=order["filled_avg_price"], qty=str(float(order["filled_qty"]) - filled_before),
                        position_qty=positions.get(order["symbol"], "0"))
        return {"stream": "trade_updates", "data": data}

    async def _send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for conn in list(self._listeners):
            try:
                await conn.send(text)
            except ConnectionClosed:
                self._listeners.discard(conn)
