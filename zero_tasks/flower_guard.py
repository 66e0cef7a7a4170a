"""Start Flower only with a password: `python -m zero_tasks.flower_guard [extra flower args]`.

Why this exists: Flower without `--basic-auth` serves its whole UI and API to anyone who
reaches the port, and that API can revoke and terminate tasks and shut workers down
(`/api/worker/shutdown/...`) - on a gateway that places orders. Flower itself starts happily
with no authentication at all, and a plain `celery -A zero_tasks flower` in a compose file or
a shell is one typo (an unset variable interpolated to an empty string) away from that.
So every way this project starts Flower (`scripts/devstack.py`, the compose `flower`
service) goes through this guard, which refuses to start (exit status 2, a message on
stderr that never contains the password) unless FLOWER_BASIC_AUTH is a usable credential
list, and only then execs the real Flower:

    celery -A zero_tasks flower --address=<FLOWER_ADDRESS, default 127.0.0.1>
           --port=<FLOWER_PORT, default 5555> [extra args]      (FLOWER_BASIC_AUTH from the environment)

FLOWER_BASIC_AUTH is `user:password`, or several comma-separated (Flower's own format:
it splits on ',' and compares each whole `user:password` with what the browser sends, so
a ':' inside a password is fine and a ',' is not possible). Each entry needs a non-empty
user and a password of at least 8 characters. The default address is loopback; the
compose file sets FLOWER_ADDRESS=0.0.0.0 inside the container and publishes the port on
the host's 127.0.0.1 only.

The credentials never go on Flower's command line, where any local user could read them
with `ps`: Flower reads FLOWER_BASIC_AUTH from its environment by itself.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

EXIT_REFUSED = 2
MIN_PASSWORD_LEN = 8
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = "5555"
# Extra arguments may not replace the checked credentials (on tornado's command line the last one wins).
_FORBIDDEN_EXTRA = ("--basic-auth", "--basic_auth")


class Refused(Exception):
    """Why Flower must not start. The message never contains a credential."""


def check_basic_auth(value: str | None) -> list[str]:
    """Return the users of a valid FLOWER_BASIC_AUTH value; raise Refused otherwise."""
    if value is None:
        raise Refused("FLOWER_BASIC_AUTH is not set")
    if not value.strip():
        raise Refused("FLOWER_BASIC_AUTH is empty")
    users = []
    entries = value.split(",")
    for number, entry in enumerate(entries, start=1):
        where = f"entry {number} of FLOWER_BASIC_AUTH" if len(entries) > 1 else "FLOWER_BASIC_AUTH"
        if ":" not in entry:
            raise Refused(f"{where} has no ':' (expected user:password)")
        user, _, password = entry.partition(":")
        if not user.strip():
            raise Refused(f"{where} has an empty user")
        if not password.strip():
            raise Refused(f"{where} has an empty password")
        if len(password) < MIN_PASSWORD_LEN:
            raise Refused(f"{where} has a password shorter than {MIN_PASSWORD_LEN} characters")
        users.append(user)
    return users


def check_port(value: str) -> str:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise Refused(f"FLOWER_PORT must be a port number (1-65535), got {value!r}")
    return value


def check_extra(extra: Sequence[str]) -> list[str]:
    for arg in extra:
        name = arg.partition("=")[0]
        if name in _FORBIDDEN_EXTRA:
            raise Refused(f"{name} may not be passed through the guard (FLOWER_BASIC_AUTH sets the authentication)")
    return list(extra)


def celery_executable() -> str:
    """The `celery` installed next to this Python (the venv's or the image's), else PATH's."""
    beside = Path(sys.executable).with_name("celery")
    if beside.exists():
        return str(beside)
    return shutil.which("celery") or "celery"


def flower_argv(environ: Mapping[str, str], extra: Sequence[str]) -> list[str]:
    """The Flower command line for this environment; raises Refused when it must not start."""
    auth = environ.get("FLOWER_BASIC_AUTH")
    check_basic_auth(auth)
    address = environ.get("FLOWER_ADDRESS") or DEFAULT_ADDRESS
    port = check_port(environ.get("FLOWER_PORT") or DEFAULT_PORT)
    # The credentials stay in the environment (Flower reads FLOWER_BASIC_AUTH itself):
    # on the command line any local user could read them with `ps`.
    return [celery_executable(), "-A", "zero_tasks", "flower",
            f"--address={address}", f"--port={port}", *check_extra(extra)]


def main(argv: Sequence[str] | None = None) -> None:
    extra = list(sys.argv[1:] if argv is None else argv)
    try:
        command = flower_argv(os.environ, extra)
    except Refused as exc:
        print(f"refusing to start Flower: {exc}. Set FLOWER_BASIC_AUTH=user:password "
              f"(password at least {MIN_PASSWORD_LEN} characters; several users comma-separated). "
              "Flower without authentication would let anyone who reaches its port control the workers.",
              file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
