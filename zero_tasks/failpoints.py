"""Named crash points for the fault tests: `ZERO_FAILPOINTS=after_submit:/tmp/marker`.

A failpoint listed in ZERO_FAILPOINTS SIGKILLs the whole process group (a worker, or a
bridge: `bridge_after_claim`) when reached, once: the marker file records that it fired.
`after_submit:/tmp/marker:pause` holds the process there instead, until `/tmp/marker.go`
exists: the several-hosts tests cut its host off at that moment, then let it go on.
Unset (always, in production), a failpoint costs its call site one attribute read: every
site is `if failpoints.ARMED: failpoints.hit(name)`, so no test hook runs on an order's path.
This is how a test puts a crash exactly between the broker's accept and the audit write,
which no timing trick can hit reliably.
"""

from __future__ import annotations

import os
import signal
import time

_SPEC = os.environ.get("ZERO_FAILPOINTS", "")
ARMED = bool(_SPEC)


def hit(name: str) -> None:
    if not _SPEC:
        return
    for item in _SPEC.split(","):
        point, _, rest = item.partition(":")
        marker, _, mode = rest.partition(":")
        if point != name:
            continue
        if marker:
            if os.path.exists(marker):
                return
            with open(marker, "w") as fh:
                fh.write(str(os.getpid()))
        if mode == "pause" and marker:
            _hold_until(marker + ".go")
            return
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _hold_until(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.05)
