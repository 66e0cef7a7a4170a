"""The design card's bridge: it hears, claims, seals and hands over; the worker decides.

Read from the bridge's source (every `import` of every module in bridge/): no module of
the bridge imports the decision table (`core/pipeline.py`), a worker module, or a check.
One view is the exception, named here: /health shows what row 3 would say about the market state now
(`check_market_state`), which decides nothing, since nothing the bridge hands over depends
on it. That the bridge hands every message over is tested end to end
(test_acceptance_e2e.py: `test_the_bridge_decides_nothing_every_message_goes_to_the_worker`).
"""

from __future__ import annotations

import ast
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[1] / "bridge"
DECISION_MODULES = ("zero_tasks.core.pipeline", "zero_tasks.core.checks", "zero_tasks.worker")
VIEWS = {("health.py", "zero_tasks.core.checks.market_state"): {"check_market_state", "parse_market_state"}}


def imported(path: Path) -> list[tuple[str, str | None]]:
    """(module, name taken from it, or None) of every import in one file, nested ones too."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def decision_imports(root: Path = BRIDGE) -> list[str]:
    """Each import of decision code by a module of `root`, but the named views."""
    out = []
    for path in sorted(root.glob("*.py")):
        for module, name in imported(path):
            full = f"{module}.{name}" if name else module
            if full.startswith(DECISION_MODULES) and name not in VIEWS.get((path.name, module), set()):
                out.append(f"{path.name}: {full}")
    return out


def test_the_bridge_imports_no_decision_code() -> None:
    assert decision_imports() == []


def test_the_check_reports_a_bridge_module_that_takes_decision_code(tmp_path: Path) -> None:
    """The test above can fail: the veto, the table, a worker module, or a second name
    from the one view's module, each is reported."""
    (tmp_path / "app.py").write_text("from zero_tasks.core.pipeline import veto\n"
                                     "def f():\n    from zero_tasks.core import pipeline\n"
                                     "import zero_tasks.worker.flow\n")
    (tmp_path / "health.py").write_text("from zero_tasks.core.checks.market_state import check_market_state, "
                                        "market_state_snapshot\n")
    assert decision_imports(tmp_path) == [
        "app.py: zero_tasks.core.pipeline.veto",
        "app.py: zero_tasks.worker.flow",
        "app.py: zero_tasks.core.pipeline",
        "health.py: zero_tasks.core.checks.market_state.market_state_snapshot",
    ]
