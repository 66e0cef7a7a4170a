"""The Lua script registry (zero_tasks/adapters/scripts.py): every script in a .lua file with
its header, every library it needs found, every one compiled by the real Redis, and no Lua
left in Python strings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.procs import PrivateRedis
from tests.support.redis_dbs import redis_db
from zero_tasks.adapters import scripts
from zero_tasks.adapters.scripts import LUA_DIR, Registry, ScriptError

ROOT = Path(__file__).resolve().parents[1]
NO_LUA_IN = ("zero_tasks", "bridge", "zero_ops")


@pytest.fixture
def r(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    yield from private_redis.clean_db(redis_db(__name__))


def write(directory: Path, name: str, text: str) -> None:
    path = directory / f"{name}.lua"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


GOOD_HEADER = "-- s: does a thing.\n-- KEYS[1] a key\n-- ARGV[1] a value\n-- returns 1\n"


@pytest.mark.parametrize("path", sorted(LUA_DIR.glob("*.lua")), ids=lambda p: p.stem)
def test_every_script_has_a_header_naming_its_keys_its_argv_and_what_it_returns(path: Path) -> None:
    script = scripts.REGISTRY.script(path.stem)
    assert script.summary and script.keys.startswith("KEYS") and script.argv.startswith("ARGV") and script.returns
    header = [line for line in path.read_text().splitlines() if line.startswith("--")]
    assert any(line.startswith("-- KEYS") for line in header)
    assert any(line.startswith("-- ARGV") for line in header)
    assert any(line.startswith("-- returns") for line in header)


@pytest.mark.parametrize("name", scripts.names())
def test_every_library_a_script_needs_resolves(name: str) -> None:
    script = scripts.REGISTRY.script(name)
    for lib in script.needs:
        assert (LUA_DIR / "lib" / f"{lib}.lua").is_file()
        assert scripts.library(lib) in script.source


@pytest.mark.parametrize("path", sorted((LUA_DIR / "lib").glob("*.lua")), ids=lambda p: p.stem)
def test_every_library_holds_local_functions_of_their_arguments_only(path: Path) -> None:
    assert "local function" in scripts.library(path.stem)


def test_every_script_compiles_on_redis(r: redis.Redis) -> None:
    shas = scripts.load_all(r)
    assert len(shas) == len(scripts.names())
    assert all(r.script_exists(*shas))
    assert shas == [scripts.register(r, name).sha for name in scripts.names()]  # what the adapters run


@pytest.mark.parametrize("missing", ["KEYS", "ARGV", "returns"])
def test_a_header_without_its_keys_argv_or_returns_line_is_refused(tmp_path: Path, missing: str) -> None:
    header = "".join(line + "\n" for line in GOOD_HEADER.splitlines() if not line.startswith(f"-- {missing}"))
    write(tmp_path, "s", header + "return 1\n")
    with pytest.raises(ScriptError, match=f"no '-- {missing}' line"):
        Registry(tmp_path)


def test_a_script_whose_first_line_does_not_name_it_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "s", GOOD_HEADER.replace("-- s:", "-- other:") + "return 1\n")
    with pytest.raises(ScriptError, match="first line"):
        Registry(tmp_path)


def test_a_numbered_key_or_value_the_header_does_not_name_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "s", GOOD_HEADER + "return redis.call('GET', KEYS[2])\n")
    with pytest.raises(ScriptError, match=re.escape("KEYS[2] is used but not named")):
        Registry(tmp_path)


def test_a_library_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "s", GOOD_HEADER + "-- needs: nowhere\nreturn 1\n")
    with pytest.raises(ScriptError, match="no such library"):
        Registry(tmp_path)


@pytest.mark.parametrize("body, reason", [
    ("-- needs: other\nlocal function f(k) return k end\n", "needs no other library"),
    ("local function f() return KEYS[1] end\n", "never KEYS or ARGV"),
    ("function f(k) return k end\n", "local functions only"),
], ids=["needs a library", "reads KEYS", "global function"])
def test_a_library_that_breaks_the_rules_is_refused(tmp_path: Path, body: str, reason: str) -> None:
    write(tmp_path / "lib", "bad", "-- bad: a library.\n" + body)
    write(tmp_path, "s", GOOD_HEADER + "-- needs: bad\nreturn 1\n")
    with pytest.raises(ScriptError, match=reason):
        Registry(tmp_path)


def test_an_unknown_script_name_is_refused() -> None:
    with pytest.raises(ScriptError, match="no Lua script 'nothing'"):
        scripts.source("nothing")


def test_no_python_module_holds_lua() -> None:
    """Lua lives in .lua files: no `redis.call(` in the product's Python."""
    found = [f"{path.relative_to(ROOT)}:{n}" for top in NO_LUA_IN for path in sorted((ROOT / top).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if "redis.call(" in line]
    assert found == []
