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
    return [command for _, command in sent_during(server, db, scenario)]


def sent_during(server: PrivateRedis, db: int, scenario: Callable[[], Any]) -> list[tuple[str, str]]:
    """`commands_during`, each with the client (address:port) that sent it."""
    monitor_client = server.client(db=db)
    sent: list[tuple[str, str]] = []
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
                return sent
            if seen.get("db") != db or seen.get("client_type") == "lua":
                continue
            if not command.upper().startswith(("SELECT", "HELLO", "CLIENT")):
                sent.append((f"{seen.get('client_address')}:{seen.get('client_port')}", command.upper()))
