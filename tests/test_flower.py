"""Flower never runs without a password: zero_tasks/flower_guard.py.

The refusals run the guard as the compose file and `make run` do (`python -m
zero_tasks.flower_guard`); the e2e test starts a real Flower through it against a private
redis-server and checks basic auth over HTTP.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.procs import PYTHON, PrivateRedis, Proc, base_env, free_port
from zero_tasks import flower_guard
from zero_tasks.flower_guard import Refused, check_basic_auth, flower_argv

GUARD = [PYTHON, "-m", "zero_tasks.flower_guard"]


def guard_env(value: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    if value is not None:
        env["FLOWER_BASIC_AUTH"] = value
    return env


REFUSED = [
    pytest.param(None, "is not set", None, id="unset"),
    pytest.param("", "is empty", None, id="empty"),
    pytest.param("   ", "is empty", None, id="blank"),
    pytest.param("operator:", "empty password", None, id="no-password"),
    pytest.param(":Secret-Pass-1", "empty user", "Secret-Pass-1", id="no-user"),
    pytest.param("operator", "no ':'", None, id="no-colon"),
    pytest.param("operator:Sh0rt-7", "shorter than 8", "Sh0rt-7", id="short"),
    pytest.param("alice:Long-enough-1,bob:tiny", "entry 2", "tiny", id="second-entry-short"),
    pytest.param("alice:Long-enough-1,", "entry 2", "Long-enough-1", id="trailing-comma"),
]


@pytest.mark.parametrize("value, why, password", REFUSED)
def test_guard_refuses_to_start_without_a_usable_password(value: str | None, why: str, password: str | None) -> None:
    result = subprocess.run(GUARD, env=guard_env(value), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert "refusing to start Flower" in result.stderr
    assert "FLOWER_BASIC_AUTH" in result.stderr
    assert why in result.stderr
    assert result.stdout == ""
    if password:
        assert password not in result.stderr
        assert password not in result.stdout


def test_guard_refuses_an_extra_basic_auth_flag() -> None:
    """An extra `--basic-auth=` on the command line would override FLOWER_BASIC_AUTH."""
    result = subprocess.run([*GUARD, "--basic-auth=x:y"], env=guard_env("zero:Long-enough-1"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--basic-auth may not be passed" in result.stderr
    assert "Long-enough-1" not in result.stderr


def test_guard_builds_the_flower_command_line() -> None:
    argv = flower_argv({"FLOWER_BASIC_AUTH": "zero:Long-enough-1"}, ["--purge_offline_workers=60"])
    assert argv == [str(Path(sys.executable).with_name("celery")), "-A", "zero_tasks", "flower",
                    "--address=127.0.0.1", "--port=5555", "--purge_offline_workers=60"]
    assert not any("Long-enough-1" in arg for arg in argv)  # the password never shows in `ps`
    argv = flower_argv({"FLOWER_BASIC_AUTH": "a:Long-enough-1,b:pass:with:colons", "FLOWER_ADDRESS": "0.0.0.0",
                        "FLOWER_PORT": "5600"}, [])
    assert argv[4:] == ["--address=0.0.0.0", "--port=5600"]
    assert check_basic_auth("a:Long-enough-1,b:pass:with:colons") == ["a", "b"]
    with pytest.raises(Refused, match="FLOWER_PORT"):
        flower_argv({"FLOWER_BASIC_AUTH": "zero:Long-enough-1", "FLOWER_PORT": "http"}, [])
    assert flower_guard.EXIT_REFUSED == 2


@pytest.mark.e2e
def test_flower_through_the_guard_answers_only_with_the_password(tmp_path: Path) -> None:
    """A real Flower (exec'd by the guard) on a private Redis: 401 without or with a wrong password."""
    redis_server = PrivateRedis(tmp_path).start()
    password = secrets.token_urlsafe(12)
    second_password = secrets.token_urlsafe(12)
    port = free_port()
    env = base_env(redis_server.port, "http://127.0.0.1:9", f"sqlite:///{tmp_path / 'audit.db'}", free_port(),
                   FLOWER_BASIC_AUTH=f"zero:{password},ops:{second_password}", FLOWER_PORT=str(port))
    env.pop("FLOWER_ADDRESS", None)
    flower = Proc("flower", GUARD, env, tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        flower.start()

        deadline = time.monotonic() + 60  # bounded: Flower answers within a few seconds
        while True:
            if not flower.alive():
                pytest.fail(f"Flower exited ({flower.popen.returncode}): {flower.output()[-2000:]}")
            try:
                requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Flower did not answer on port {port} within 60 s: {flower.output()[-2000:]}")
            time.sleep(0.2)
        # The guard exec'd Flower in its own process, loopback only by default.
        cmdline = Path(f"/proc/{flower.pid}/cmdline").read_bytes().split(b"\0")
        assert b"flower" in cmdline and b"--address=127.0.0.1" in cmdline

        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, auth=("zero", password + "x"), timeout=5).status_code == 401
        assert requests.get(url, auth=("ops", password), timeout=5).status_code == 401
        assert requests.get(url, auth=("zero", ""), timeout=5).status_code == 401
        assert requests.get(f"http://127.0.0.1:{port}/api/workers", timeout=5).status_code == 401
        assert requests.get(url, auth=("zero", password), timeout=5).status_code == 200
        assert requests.get(url, auth=("ops", second_password), timeout=5).status_code == 200
    finally:
        flower.stop()
        redis_server.stop()
    assert not flower.alive()
    output = flower.output()
    assert password not in output and second_password not in output
