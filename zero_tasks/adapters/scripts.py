"""The one registry of the gateway's Redis Lua scripts.

Every script is a file `lua/<name>.lua` that opens with a header of comment lines:

    -- admit: claim the execution_id, reserve the cooldown, take the day's slot (rows 7-8).
    -- KEYS[1] claim key  KEYS[2] cooldown ...
    -- ARGV[1] message_id ...
    -- returns {claim, refusal, ...}
    -- needs: take_slots

The first line names the script (its file name) and says what it does; the KEYS, ARGV and
returns lines are required (`-- KEYS none` for a script without keys), and every KEYS[n]
or ARGV[n] the script uses by number is named there. A `needs` line names libraries,
files `lua/lib/<lib>.lua` of `local function`s that take their keys and values as
arguments; their text goes before the script's body, so the script calls them as its own.
A library needs no other library and never reads KEYS or ARGV.

The files are read and checked when this module is imported: a header without its lines,
a library that does not exist, or a library that breaks its rules stops the process with
ScriptError, before any script reaches Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).with_name("lua")

_NAME_LINE = re.compile(r"--\s*([a-z0-9_]+)\s*:\s*(\S.*)$")
_FIELD = re.compile(r"--\s*(KEYS|ARGV|returns|needs)\b:?\s*(.*)$")
_NUMBERED = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")
_GLOBAL_FUNCTION = re.compile(r"^\s*function\s", re.MULTILINE)


class ScriptError(ValueError):
    """A Lua file the registry refuses (named, with the reason)."""


@dataclass(frozen=True)
class Script:
    name: str
    summary: str
    keys: str
    argv: str
    returns: str
    needs: tuple[str, ...]
    source: str  # what Redis runs: the header, the libraries it needs, the body


def _header(path: Path) -> tuple[list[str], str]:
    """The leading comment lines of a file and the rest of it."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].lstrip().startswith("--"):
        n += 1
    return [line.strip() for line in lines[:n]], "".join(lines[n:])


def _named(path: Path, header: list[str]) -> tuple[str, str]:
    first = _NAME_LINE.match(header[0]) if header else None
    if first is None or first.group(1) != path.stem:
        raise ScriptError(f"{path}: the first line must be '-- {path.stem}: what it does'")
    return first.group(1), first.group(2)


def _fields(path: Path, header: list[str]) -> dict[str, str]:
    """KEYS, ARGV, returns and needs; a field may take several lines, and a comment line that
    starts with none of them continues the one before."""
    found: dict[str, str] = {}
    current = None
    for line in header[1:]:
        field = _FIELD.match(line)
        if field:  # KEYS and ARGV keep their own name: the text says KEYS[1], ARGV[2], ...
            current = field.group(1)
            text = line[2:].strip() if current in ("KEYS", "ARGV") else field.group(2).strip()
            found[current] = f"{found[current]} {text}" if current in found else text
        elif current is not None:
            found[current] += " " + line.lstrip("-").strip()
    return found


def _library(path: Path) -> str:
    """A library's text, once it is known to follow the rules."""
    if not path.is_file():
        raise ScriptError(f"{path}: no such library")
    header, body = _header(path)
    _named(path, header)
    if "needs" in _fields(path, header):
        raise ScriptError(f"{path}: a library needs no other library")
    if _NUMBERED.search(body) or re.search(r"\b(KEYS|ARGV)\b", body):
        raise ScriptError(f"{path}: a library takes its keys and values as arguments, never KEYS or ARGV")
    if _GLOBAL_FUNCTION.search(body) or "local function" not in body:
        raise ScriptError(f"{path}: a library holds local functions only ('local function name(...)')")
    return "".join(line + "\n" for line in header) + body


def _script(path: Path, libraries: dict[str, str]) -> Script:
    header, body = _header(path)
    name, summary = _named(path, header)
    fields = _fields(path, header)
    for required in ("KEYS", "ARGV", "returns"):
        if not fields.get(required):
            raise ScriptError(f"{path}: the header has no '-- {required}' line")
    for kind, number in set(_NUMBERED.findall(body)):
        if f"{kind}[{number}]" not in fields[kind]:
            raise ScriptError(f"{path}: {kind}[{number}] is used but not named in the header")
    needs = tuple(n for n in re.split(r"[\s,]+", fields.get("needs", "")) if n)
    for lib in needs:
        if lib not in libraries:
            libraries[lib] = _library(path.parent / "lib" / f"{lib}.lua")
    source = "".join(line + "\n" for line in header) + "".join(libraries[lib] for lib in needs) + body
    return Script(name, summary, fields["KEYS"], fields["ARGV"], fields["returns"], needs, source)


class Registry:
    """The scripts of one directory (`<name>.lua`, libraries in `lib/`), read and checked at once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._libraries: dict[str, str] = {}
        self._scripts = {s.name: s for s in (_script(p, self._libraries) for p in sorted(directory.glob("*.lua")))}

    def names(self) -> list[str]:
        return sorted(self._scripts)

    def script(self, name: str) -> Script:
        try:
            return self._scripts[name]
        except KeyError:
            raise ScriptError(f"no Lua script {name!r} in {self.directory}") from None

    def library(self, name: str) -> str:
        if name not in self._libraries:
            self._libraries[name] = _library(self.directory / "lib" / f"{name}.lua")
        return self._libraries[name]


REGISTRY = Registry(LUA_DIR)


def names() -> list[str]:
    """Every script's name."""
    return REGISTRY.names()


def source(name: str) -> str:
    """The text Redis runs for script `name`."""
    return REGISTRY.script(name).source


def library(name: str) -> str:
    """The text of library `name` (its local functions)."""
    return REGISTRY.library(name)


def register(client: Any, name: str) -> Any:
    """Script `name` bound to a redis-py client, sync (Script) or asyncio (AsyncScript):
    called with keys= and args=, it runs by EVALSHA and loads itself after a NOSCRIPT."""
    return client.register_script(source(name))


def load_all(client: Any, only: list[str] | None = None) -> list[str]:
    """SCRIPT LOAD every script (or those named) on a sync client, so no first call pays for it."""
    return [client.script_load(source(name)) for name in (only or names())]


async def load_all_async(client: Any, only: list[str] | None = None) -> list[str]:
    """`load_all` for an asyncio client."""
    return [await client.script_load(source(name)) for name in (only or names())]
