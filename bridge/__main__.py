"""`python -m bridge`: refuses to start unless paper-only and the audit schema is at head,
then runs until SIGTERM."""

import asyncio

from zero_tasks.logs import configure_logging
from zero_tasks.settings import settings_or_exit


def main() -> None:
    settings = settings_or_exit()
    configure_logging()
    from zero_tasks.adapters.schema_check import check_or_exit

    check_or_exit(settings.sqlalchemy_url)
    from .app import Bridge

    asyncio.run(Bridge(settings).run())


if __name__ == "__main__":
    main()
