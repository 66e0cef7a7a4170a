"""Flower for watching only, and only with a password: `python -m zero_ops.flower_guard [options]`.

Why this exists: Flower's UI and API act as well as watch. Anyone who reaches its port (and,
with `--basic-auth`, anyone who has the password) can send any task - `POST
/api/task/send-task/zero.place_order` places an order on a gateway that trades - revoke and
terminate tasks, and shut workers down or resize their pools. So every way this project
starts Flower (`scripts/devstack.py`, the compose `flower` service) goes through this guard:

1. It refuses to start (exit status 2, a message on stderr that never contains a password
   or an option's value) unless FLOWER_BASIC_AUTH is a usable credential list, FLOWER_PORT
   a port, no other FLOWER_* variable is set (Flower reads each of them as an option:
   FLOWER_AUTH, FLOWER_CONF, FLOWER_UNIX_SOCKET, FLOWER_READ_ONLY, ...), and every extra
   argument is one of EXTRA_OPTIONS, spelled exactly `--name=value`. An allow-list, because
   Flower's parser accepts any number of leading dashes and either `-` or `_` in a name
   (`-basic_auth=`, `---basic-auth=`): a deny-list of spellings cannot be complete.
2. It starts Flower as its child on a unix socket inside a fresh directory that only this
   user can enter (mode 0700), with `--conf=` this package's empty flower_conf.py (so no
   `flowerconfig.py` from the working directory is ever executed), `--read_only=True`, and
   FLOWER_BASIC_AUTH in its environment (never on a command line `ps` shows): Flower's own
   checks stay on as a second layer.
3. Once Flower listens, it serves FLOWER_ADDRESS:FLOWER_PORT (default 127.0.0.1:5555)
   through zero_ops/flower_proxy.py, which checks the password itself and passes on
   only watching requests; every control request is answered 403 and never reaches Flower.
4. It stops Flower when it gets SIGTERM/SIGINT, and exits (non-zero) when Flower exits.

FLOWER_BASIC_AUTH is `user:password`, or several comma-separated (Flower's own format:
it splits on ',' and compares each whole `user:password` with what the browser sends, so
a ':' inside a password is fine and a ',' is not possible). Each entry needs a non-empty
user and a password of at least 8 characters. The compose file sets FLOWER_ADDRESS=0.0.0.0
inside the container and publishes the port on the host's 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from zero_ops.flower_proxy import MAX_REQUEST_BODY_BYTES, make_app

EXIT_REFUSED = 2
MIN_PASSWORD_LEN = 8
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = "5555"
GUARD_VARIABLES = ("FLOWER_BASIC_AUTH", "FLOWER_ADDRESS", "FLOWER_PORT")
CONFIG_FILE = Path(__file__).with_name("flower_conf.py")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
SOCKET_NAME = "flower.sock"

log = logging.getLogger("zero.flower_guard")

_OPTION = re.compile(r"--([a-z_]+)=(.*)", re.DOTALL)
_OPTION_NAME = re.compile(r"-+[A-Za-z0-9_-]{1,40}")
_BOOL_WORDS = ("true", "false")
_TASK_COLUMNS = frozenset({"name", "uuid", "state", "args", "kwargs", "result", "received", "started", "runtime",
                           "worker", "exchange", "routing_key", "retries", "revoked", "exception", "expires", "eta"})


def _whole_number(value: str) -> bool:
    return value.isdigit() and int(value) > 0


def _milliseconds(value: str) -> bool:
    return re.fullmatch(r"\d{1,7}(\.\d{1,3})?", value) is not None and float(value) > 0


def _columns(value: str) -> bool:
    return bool(value) and all(name in _TASK_COLUMNS for name in value.split(","))


# What an operator may tune through the guard: display and memory limits, nothing that binds,
# authenticates, reads a file or changes what Flower lets a user do.
EXTRA_OPTIONS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "purge_offline_workers": ("seconds, a whole number", _whole_number),
    "max_tasks": ("a whole number", _whole_number),
    "max_workers": ("a whole number", _whole_number),
    "inspect_timeout": ("milliseconds", _milliseconds),
    "natural_time": ("true or false", lambda value: value in _BOOL_WORDS),
    "auto_refresh": ("true or false", lambda value: value in _BOOL_WORDS),
    "tasks_columns": ("comma-separated column names", _columns),
}


class Refused(Exception):
    """Why Flower must not start. The message never contains a credential or an option's value."""


@dataclass(frozen=True)
class GuardPlan:
    """What the guard will run, from a checked environment and command line."""

    credentials: tuple[str, ...]
    address: str
    port: int
    extra: tuple[str, ...]


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


def check_port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise Refused(f"FLOWER_PORT must be a port number (1-65535), got {value[:20]!r}")
    return int(value)


def check_environment(environ: Mapping[str, str]) -> None:
    """Flower takes every FLOWER_<option> variable as an option: only the guard's own may be set."""
    for name in sorted(environ):
        if name.startswith("FLOWER_") and name not in GUARD_VARIABLES:
            raise Refused(f"{name} is set; the guard passes no Flower setting but {', '.join(GUARD_VARIABLES)} "
                          "(unset it)")


def _label(number: int, arg: str) -> str:
    """How a refused argument is named in the message: its option name, never its value."""
    name = arg.partition("=")[0]
    return name if _OPTION_NAME.fullmatch(name) else f"argument {number}"


def check_extra(extra: Sequence[str]) -> list[str]:
    allowed = ", ".join(f"--{name}=<{what}>" for name, (what, _) in EXTRA_OPTIONS.items())
    for number, arg in enumerate(extra, start=1):
        match = _OPTION.fullmatch(arg)
        if match is None or match.group(1) not in EXTRA_OPTIONS:
            raise Refused(f"{_label(number, arg)} is not an option the guard passes on to Flower "
                          f"(allowed, spelled exactly so: {allowed})")
        what, valid = EXTRA_OPTIONS[match.group(1)]
        if not valid(match.group(2)):
            raise Refused(f"--{match.group(1)} needs {what}")
    return list(extra)


def plan(environ: Mapping[str, str], extra: Sequence[str]) -> GuardPlan:
    """Everything checked before anything starts; raises Refused when Flower must not start."""
    auth = environ.get("FLOWER_BASIC_AUTH")
    check_basic_auth(auth)
    check_environment(environ)
    port = check_port(environ.get("FLOWER_PORT") or DEFAULT_PORT)
    assert auth is not None
    return GuardPlan(credentials=tuple(auth.split(",")), address=environ.get("FLOWER_ADDRESS") or DEFAULT_ADDRESS,
                     port=port, extra=tuple(check_extra(extra)))


def celery_executable() -> str:
    """The `celery` installed next to this Python (the venv's or the image's), else PATH's."""
    beside = Path(sys.executable).with_name("celery")
    if beside.exists():
        return str(beside)
    return shutil.which("celery") or "celery"


def flower_argv(socket_path: str, extra: Sequence[str]) -> list[str]:
    """Flower's command line: on the private socket, our empty config file, read-only."""
    return [celery_executable(), "-A", "zero_tasks", "flower", f"--conf={CONFIG_FILE}",
            f"--unix_socket={socket_path}", "--read_only=True", *extra]


NOT_FOR_FLOWER = ("TASK_SIGNING_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY")
NO_ALPACA_KEY = "flower-holds-no-alpaca-key"  # Celery's settings want a non-empty value; Flower never calls Alpaca


def flower_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Flower's environment: no FLOWER_* option but the credentials (kept off the command
    line), and none of the gateway's secrets it has no use for (least privilege: a Flower
    process that is broken into can neither seal a task nor call the broker), whatever
    the guard was given."""
    env = {name: value for name, value in environ.items()
           if not name.startswith("FLOWER_") and name not in NOT_FOR_FLOWER}
    env.update(ALPACA_API_KEY=NO_ALPACA_KEY, ALPACA_SECRET_KEY=NO_ALPACA_KEY)
    env["FLOWER_BASIC_AUTH"] = environ["FLOWER_BASIC_AUTH"]
    return env


async def _flower_listening(socket_path: str, flower: asyncio.subprocess.Process, stop: asyncio.Event) -> bool:
    """Wait until Flower accepts on its socket; False if it exits, we are stopped, or it never does."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while not stop.is_set() and flower.returncode is None:
        try:
            _, writer = await asyncio.open_unix_connection(socket_path)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                log.error("Flower did not listen within %.0f s", START_TIMEOUT_S)
                return False
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False


async def _serve(run_plan: GuardPlan, socket_path: str, flower: asyncio.subprocess.Process) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if not await _flower_listening(socket_path, flower, stop):
        if stop.is_set():
            return 0
        if flower.returncode is not None:
            log.error("Flower exited with status %s before it listened", flower.returncode)
        return flower.returncode or 1
    try:
        sockets = bind_sockets(run_plan.port, address=run_plan.address)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", run_plan.address, run_plan.port, exc.strerror)
        return 1
    server = HTTPServer(make_app(run_plan.credentials, socket_path), max_body_size=MAX_REQUEST_BODY_BYTES,
                        decompress_request=False)
    server.add_sockets(sockets)
    log.info("Flower for watching on http://%s:%d (basic auth; every control request is refused)",
             run_plan.address, run_plan.port)
    stopped, exited = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(flower.wait())
    await asyncio.wait({stopped, exited}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    exited.cancel()
    server.stop()
    if stop.is_set():
        return 0
    log.error("Flower exited with status %s", flower.returncode)
    return flower.returncode or 1


async def _stop(flower: asyncio.subprocess.Process) -> None:
    if flower.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # exited between the check and the signal; wait() reaps it
        flower.terminate()
    try:
        await asyncio.wait_for(flower.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.error("Flower did not stop within %.0f s of SIGTERM; killing it", STOP_TIMEOUT_S)
        flower.kill()
        await flower.wait()


async def run(run_plan: GuardPlan) -> int:
    """Flower on a private socket, the proxy on the public port; returns the exit status."""
    with tempfile.TemporaryDirectory(prefix="zero-flower-") as private:  # mode 0700: only we can enter
        socket_path = os.path.join(private, SOCKET_NAME)
        flower = await asyncio.create_subprocess_exec(*flower_argv(socket_path, run_plan.extra),
                                                      env=flower_env(os.environ))
        try:
            return await _serve(run_plan, socket_path, flower)
        finally:
            await _stop(flower)


def main(argv: Sequence[str] | None = None) -> None:
    extra = list(sys.argv[1:] if argv is None else argv)
    try:
        run_plan = plan(os.environ, extra)
    except Refused as exc:
        hint = (f" Set FLOWER_BASIC_AUTH=user:password (password at least {MIN_PASSWORD_LEN} characters; "
                "several users comma-separated). Flower without authentication would let anyone who reaches "
                "its port control the workers." if "FLOWER_BASIC_AUTH" in str(exc) else "")
        print(f"refusing to start Flower: {exc}.{hint}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # refusals and errors, not every page
    sys.exit(asyncio.run(run(run_plan)))


if __name__ == "__main__":
    main()
