"""Summarise py-spy raw (collapsed) profiles taken by `python -m bench --profile`.

`python -m bench.pyspy_summary FILE...` prints, per process, where the wall-clock samples go:
for worker pool processes, inside the Celery task only, by gateway step (the innermost
zero_tasks frame) and by kind of work (Redis I/O, HTTP, SQL, pydantic, Celery, logging).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

KINDS = [  # first match wins, searched from the leaf upwards
    ("celery publish (apply_async/send_task)", ("kombu/", "apply_async", "send_task")),
    ("redis round trip", ("redis/connection.py", "redis/_parsers", "redis/asyncio/connection.py")),
    ("HTTP to the broker", ("urllib3/", "http/client.py", "requests/")),
    ("SQL (audit)", ("sqlalchemy/", "sqlite3", "psycopg2")),
    ("pydantic", ("pydantic",)),
    ("logging", ("logging/",)),
    ("json", ("json/",)),
]
_FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^:]*)(?::\d+)?\)$")


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def kind_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in KINDS:
            if any(n in frame for n in needles):
                return name
    return "python (other)"


def step_of(frames: list[str], package: str) -> str:
    inner = [f for f in frames if f"({package}/" in f or f"{package}/" in f.split("(")[-1]]
    if not inner:
        return "(outside " + package + ")"
    m = _FRAME.match(inner[-1])
    return f"{m['fn']} ({m['file']})" if m else inner[-1]


def summarise(path: Path) -> str:
    stacks = parse(path)
    total = sum(c for _, c in stacks)
    role = path.stem.split("-")[0]
    if role == "pool":
        busy = [(f, c) for f, c in stacks if any("fast_trace_task" in x or "trace_task" in x for x in f)]
        label, package = "inside the Celery task", "zero_tasks"
    elif role == "bridge":
        path_frames = ("Bridge.on_batch", "MessageIdentity.claim", "Enqueuer._send", "message_from_bytes")
        busy = [(f, c) for f, c in stacks if any(x.startswith(path_frames) for x in f)]
        label, package = "bridge message path", "bridge"
    else:
        busy = [(f, c) for f, c in stacks if not any(k in f[-1] for k in ("poll", "select", "epoll", "wait", "sleep"))]
        label, package = "not waiting", "celery"
    n = sum(c for _, c in busy) or 1
    out = [f"== {path.name}: {total} samples, {sum(c for _, c in busy)} {label}"]
    kinds: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    for frames, count in busy:
        kinds[kind_of(frames)] += count
        steps[step_of(frames, package)] += count
    out.append("  by kind of work:")
    out += [f"    {100 * c / n:5.1f}%  {k}" for k, c in kinds.most_common(10)]
    out.append(f"  by innermost {package} frame:")
    out += [f"    {100 * c / n:5.1f}%  {k}" for k, c in steps.most_common(18)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    for name in argv if argv is not None else sys.argv[1:]:
        print(summarise(Path(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
