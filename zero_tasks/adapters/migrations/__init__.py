"""execution_log's Alembic migrations, and what a process needs to check them without Alembic.

The bridge never loads SQLAlchemy or Alembic (its memory budget), yet refuses to start on a
schema that is not at head, like the worker: `head_and_known` reads the revision files'
`revision` / `down_revision` assignments (what Alembic itself reads), `refusal` says why.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

VERSIONS = Path(__file__).with_name("versions")
VERSION_TABLE = "zero_execution_schema_version"  # env.py configures Alembic with it
UPGRADE_HINT = "Run `alembic upgrade head` with this DATABASE_URL (compose: the migrate service)."


@dataclass(frozen=True)
class SchemaVersion:
    """Where the database is against this code's migrations."""

    current: tuple[str, ...]  # the revisions in the version table (empty: never migrated)
    head: tuple[str, ...]  # this code's latest revision(s)
    unknown: tuple[str, ...]  # current revisions this code has no migration for (a newer gateway's)

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.head)


def head_and_known() -> tuple[tuple[str, ...], frozenset[str]]:
    """This code's head revision(s) and every revision it has, from the files in versions/."""
    parents: dict[str, tuple[str, ...]] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        names: dict[str, object] = {}
        for node in ast.parse(path.read_text()).body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                names[target.id] = ast.literal_eval(node.value)
        if "revision" in names:
            down = names.get("down_revision")
            parents[str(names["revision"])] = tuple(down) if isinstance(down, (tuple, list)) else (
                (str(down),) if down else ())
    referenced = {parent for ups in parents.values() for parent in ups}
    return tuple(sorted(set(parents) - referenced)), frozenset(parents)


def version_of(current: tuple[str, ...]) -> SchemaVersion:
    head, known = head_and_known()
    return SchemaVersion(current=current, head=head, unknown=tuple(rev for rev in current if rev not in known))


def refusal(version: SchemaVersion) -> str | None:
    """Why a process of this code must not run against the table at `version`, or None (at head)."""
    current, head = ", ".join(version.current) or "no revision", ", ".join(version.head)
    if version.unknown:
        return (f"execution_log is at schema revision {', '.join(version.unknown)}, which this gateway does not "
                f"know (its latest is {head}): a newer gateway migrated it. Run that version, or downgrade the "
                "schema with its code (`alembic downgrade <revision>`).")
    if version.at_head:
        return None
    return f"execution_log schema is behind: at {current}, this gateway needs {head}. {UPGRADE_HINT}"
