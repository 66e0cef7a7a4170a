"""Exact versions of a dependency whose non-public parts a module of ours relies on.

Such a module (alpaca_compat.py, kombu_fixes.py) names the version it was checked against
and calls `require_version` before it touches anything: another version stops the process
at start with what to re-check, instead of failing, or silently misbehaving, mid-order.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def installed_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "none"


def require_version(distribution: str, pinned: str, why: str, installed: str | None = None) -> None:
    """Stop the process (SystemExit, with `why`) unless `distribution` is exactly `pinned`."""
    found = installed if installed is not None else installed_version(distribution)
    if found != pinned:
        raise SystemExit(f"{distribution} {found} is installed, the gateway needs exactly {pinned}: {why}")
