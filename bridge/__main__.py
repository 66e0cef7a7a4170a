"""`python -m bridge`: refuses to start unless paper-only, then runs until SIGTERM."""

import asyncio

from zero_tasks.logs import configure_logging
from zero_tasks.settings import settings_or_exit


def main() -> None:
    settings = settings_or_exit()
    configure_logging()
    from .app import Bridge

    asyncio.run(Bridge(settings).run())


if __name__ == "__main__":
    main()
