"""Rules of the suite itself: a guarantee cannot pass untested, modules cannot share a
Redis database, and a wait cannot swallow a failed assertion."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT, wait_for
from tests.support.redis_dbs import OWNERS, shared_numbers

TESTS = ROOT / "tests"


def guarantees_section() -> str:
    """The faults table of docs/guarantees.md (the README keeps one line per guarantee)."""
    guarantees = (ROOT / "docs" / "guarantees.md").read_text()
    return guarantees.split("\n## Faults and promises", 1)[1].split("\n## ", 1)[0]


def named_tests() -> set[str]:
    """The tests the Guarantees table names, without their parameter ids."""
    table = [line for line in guarantees_section().splitlines() if line.startswith("|")]
    return {name for line in table for name in re.findall(r"`(test_\w+)", line)}


def marks_of(name: str) -> set[str]:
    for path in sorted(TESTS.glob("test_*.py")):
        if f"def {name}(" in path.read_text():
            module = importlib.import_module(f"tests.{path.stem}")
            module_marks = getattr(module, "pytestmark", [])
            module_marks = module_marks if isinstance(module_marks, list) else [module_marks]
            return {m.name for m in [*module_marks, *getattr(getattr(module, name), "pytestmark", [])]}
    raise AssertionError(f"docs/guarantees.md names {name}, which no test module defines")


def test_every_test_the_guarantees_table_names_is_marked_guarantee() -> None:
    names = named_tests()
    assert len(names) >= 10, names
    assert {name for name in names if "guarantee" not in marks_of(name)} == set()


SKIPPING = '''
import pytest

@pytest.mark.guarantee
def test_a_guarantee_that_skips():
    pytest.skip("service missing")

@pytest.mark.guarantee
@pytest.mark.xfail(reason="known broken")
def test_a_guarantee_that_xfails():
    assert False

def test_an_ordinary_test_that_skips():
    pytest.skip("not applicable here")
'''


def run_skipping(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(ROOT)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-c", os.devnull,
                           "--rootdir", str(tmp_path), str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_under_ci_a_skipped_or_xfailed_guarantee_fails(tmp_path: Path) -> None:
    result = run_skipping(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "2 failed, 1 skipped" in result.stdout, result.stdout
    assert "a guarantee test may not skip under CI=true: Skipped: service missing" in result.stdout


def test_outside_ci_a_skipped_guarantee_is_reported_as_a_skip(tmp_path: Path) -> None:
    result = run_skipping(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "2 skipped, 1 xfailed" in result.stdout, result.stdout


def test_no_two_owners_share_a_redis_database() -> None:
    assert shared_numbers() == []
    assert 0 in OWNERS["gateway"]


# database 0 is the gateways' own (their Celery broker): a test may talk to a gateway there
HARD_CODED_DB = re.compile(r"\bdb=[1-9]|port\}/[1-9]|clean_db\([1-9]|commands_during\([^,]+, [1-9]")


def test_no_test_module_picks_a_redis_database_number_by_hand() -> None:
    """Numbers come from tests/support/redis_dbs.py, where a second owner is refused."""
    found = {path.name: HARD_CODED_DB.findall(path.read_text()) for path in TESTS.glob("test_*.py")}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_wait_for_lets_a_failed_assertion_through_at_once() -> None:
    calls = []

    def broken() -> bool:
        calls.append(1)
        assert 1 == 2, "a broken promise"
        return True

    with pytest.raises(AssertionError, match="a broken promise"):
        wait_for(broken, 30, "something")
    assert calls == [1]


def test_wait_for_names_the_last_error_when_it_gives_up() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("nobody listens on 6390")

    with pytest.raises(TimeoutError, match="nobody listens on 6390") as info:
        wait_for(refused, 0.2, "a server")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
