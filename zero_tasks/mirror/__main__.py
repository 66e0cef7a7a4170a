"""`python -m zero_tasks.mirror`: one account-mirror consumer; runs until SIGTERM or SIGINT.

Refuses to start unless the settings are valid (paper only, as every process) and the
audit schema is at head (it writes order_status on execution_log rows)."""

from __future__ import annotations

import asyncio
import signal

from zero_tasks.adapters import redis_clock
from zero_tasks.logs import configure_logging
from zero_tasks.settings import settings_or_exit


async def _main() -> None:
    from zero_tasks.mirror.consumer import build

    settings = settings_or_exit()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await build(settings).run(stop)


def main() -> None:
    configure_logging()
    settings = settings_or_exit()
    from zero_tasks.adapters.schema_check import check_or_exit

    check_or_exit(settings.sqlalchemy_url)
    if settings.gateway_clock == "redis":
        redis_clock.CLOCK.start(settings.redis_url)  # the clock its sync record is judged by
    asyncio.run(_main())


if __name__ == "__main__":
    main()
