"""Least privilege in `make run` (issue 25, finding 9): each process of scripts/devstack.py
has only the secrets its job needs, read from its own /proc/<pid>/environ. Flower watches
the queue (the Redis password) but can neither seal a task (no TASK_SIGNING_KEY) nor call
the broker (no Alpaca keys); the simulator needs no secret of the gateway at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.devstack import command_of, descendants, devstack, environ_of

pytestmark = pytest.mark.e2e

SIGNING_KEY = "least-privilege-signing-key-0123456789abcdef"


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """`make run`'s processes' environments by role, read once every process is up."""
    with devstack(tmp_path_factory.mktemp("devstack"), TASK_SIGNING_KEY=SIGNING_KEY) as stack:
        found: dict[str, dict[str, str]] = {}
        for pid in descendants(stack.pid):
            try:
                command, environ = command_of(pid), environ_of(pid)
            except OSError:
                continue
            role = ("simulator" if "alpaca_paper_sim" in command else "flower-guard" if "flower_guard" in command
                    else "flower" if " flower" in command else "bridge" if "-m bridge" in command else None)
            if role:
                found.setdefault(role, environ)
        yield found


def test_the_bridge_holds_the_signing_key_and_the_alpaca_keys(roles: dict[str, dict[str, str]]) -> None:
    """The witness: the environment read is the one the process runs with. (The Celery
    worker renames itself with setproctitle, which reuses the memory /proc/<pid>/environ
    shows: its environment cannot be read this way.)"""
    assert roles["bridge"]["TASK_SIGNING_KEY"] == SIGNING_KEY
    assert roles["bridge"]["ALPACA_API_KEY"] == "simulator"


@pytest.mark.parametrize("role", ["flower-guard", "flower"])
def test_flower_gets_no_signing_key_and_no_alpaca_keys(roles: dict[str, dict[str, str]], role: str) -> None:
    environ = roles[role]
    assert environ["REDIS_PASSWORD"] == roles["bridge"]["REDIS_PASSWORD"]  # read for real; it watches the queue
    assert not environ.get("TASK_SIGNING_KEY") and SIGNING_KEY not in "\n".join(environ.values())
    assert environ.get("ALPACA_API_KEY") != "simulator" and environ.get("ALPACA_SECRET_KEY") != "simulator"


def test_the_simulator_gets_no_secret_of_the_gateway(roles: dict[str, dict[str, str]]) -> None:
    environ = roles["simulator"]
    assert environ["ALPACA_PAPER"] == "true"  # read for real
    for name in ("TASK_SIGNING_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "REDIS_PASSWORD", "DATABASE_URL"):
        assert name not in environ, name
    assert roles["bridge"]["REDIS_PASSWORD"] not in "\n".join(environ.values())
