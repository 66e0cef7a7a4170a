"""`make mutate`'s summary: mutmut's results over zero_tasks/core as docs/mutation.md.

Reads `mutmut results --all true` (run after `mutmut run`), prints the score, the count per
module and every mutant not killed, each with why it survives when that is known
(SURVIVORS below: equivalent mutants, kept by hand, checked again at every run: an entry
whose mutant is now killed is listed as stale so the list never claims more than is true).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

MUTMUT = str(Path(sys.executable).with_name("mutmut"))
KILLED = {"killed", "timeout", "segfault", "caught by type check"}

# Mutants that survive because no input can tell them apart from the code (equivalent),
# by mutmut's name for them. Each reason says why.
SURVIVORS: dict[str, str] = {}


def results() -> dict[str, str]:
    out = subprocess.run([MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            found[name] = status.strip()
    return found


def module_of(name: str) -> str:
    return name.split(".x_")[0].split(".xǁ")[0]


def report(found: dict[str, str]) -> str:
    total = len(found)
    killed = sum(status in KILLED for status in found.values())
    lines = ["# Mutation testing of the pure core", "",
             "`make mutate` (mutmut 3.8.1 over `zero_tasks/core/`, the tests named in pyproject's `[tool.mutmut]`;",
             "this file is its output: `scripts/mutation_report.py`).", "",
             f"**Score: {killed} of {total} mutants killed ({100 * killed / total:.1f} %).**", "",
             "| module | mutants | killed | not killed |", "|---|---:|---:|---:|"]
    per_module: Counter[str] = Counter()
    per_module_killed: Counter[str] = Counter()
    for name, status in found.items():
        per_module[module_of(name)] += 1
        per_module_killed[module_of(name)] += status in KILLED
    for module in sorted(per_module):
        n, k = per_module[module], per_module_killed[module]
        lines.append(f"| `{module}` | {n} | {k} | {n - k} |")
    survivors = sorted(name for name, status in found.items() if status not in KILLED)
    lines += ["", f"## Not killed ({len(survivors)})", "",
              "`mutmut show NAME` prints the mutant's diff.", ""]
    for name in survivors:
        why = SURVIVORS.get(name, "not explained yet: a test should kill it")
        lines.append(f"- `{name}` ({found[name]}): {why}")
    stale = sorted(name for name in SURVIVORS if found.get(name) in KILLED or name not in found)
    if stale:
        lines += ["", "## Explanations no longer needed (the mutant is killed or gone)", ""]
        lines += [f"- `{name}`" for name in stale]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(report(results()), end="")
