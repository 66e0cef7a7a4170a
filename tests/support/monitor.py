"""What clients sent to Redis while a scenario ran: the round-trip tests' witness."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable

from tests.support.procs import PrivateRedis


def commands_during(server: PrivateRedis, db: int, scenario: Callable[[], Any]) -> list[str]:
    """Every command clients sent (MONITOR; not those run inside scripts) while `scenario`
    (a function or a coroutine function) ran, upper-cased, without connection set-up
    (SELECT, HELLO, CLIENT)."""
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
            if seen.get("client_type") != "lua" and not command.upper().startswith(("SELECT", "HELLO", "CLIENT")):
                commands.append(command.upper())
