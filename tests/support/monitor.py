"""What clients sent to Redis while a scenario ran: the round-trip tests' witness."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from tests.support.procs import PrivateRedis


def commands_during(server: PrivateRedis, db: int, scenario: Callable[[], Any]) -> list[str]:
    """Every command clients sent to database `db` (MONITOR; not those run inside scripts)
    while `scenario` (a function or a coroutine function) ran, upper-cased, without
    connection set-up (SELECT, HELLO, CLIENT). Other databases are left out: a gateway
    another test left running on the same server (its audit writer polls every second)
    is not the scenario's."""
    monitor_client = server.client(db=db)
    commands: list[str] = []
    with monitor_client.monitor() as monitor:
        outcome = scenario()
        if inspect.isawaitable(outcome):
            asyncio.run(outcome)  # type: ignore[arg-type]
        marker = monitor_client.connection_pool.get_connection()
        marker.send_command("ECHO", "end-of-scenario")
        while True:
            seen = monitor.next_command()
            command = seen["command"]
            if command == "ECHO end-of-scenario":
                return commands
            if seen.get("db") != db or seen.get("client_type") == "lua":
                continue
            if not command.upper().startswith(("SELECT", "HELLO", "CLIENT")):
                commands.append(command.upper())
