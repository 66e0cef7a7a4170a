"""Loaded at interpreter start when this directory is on PYTHONPATH (bench/files.py puts it
there for the bridge and the worker it starts); does nothing unless ZERO_TRACE_FILES names a
control directory.

Then every Python function call (every thread, coroutines resumed included) is seen by a
profile hook, which keeps the times each function of each source file ran, by thread,
while recording is on. Recording is switched by a file: `<dir>/on` present = on (the
record starts empty, and `<dir>/<pid>.ready` says so); removed = off, and
`<dir>/<pid>.json` holds [[file, function, thread name, [call times (time.time())]], ...].
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

_CONTROL = os.environ.get("ZERO_TRACE_FILES")


def _install(control: str) -> None:
    state: dict[str, Any] = {"on": False, "calls": {}}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and state["on"]:
            code = frame.f_code
            key = (code.co_filename, code.co_name, threading.current_thread().name)
            times = state["calls"].get(key)
            if times is None:
                state["calls"][key] = [time.time()]
            else:
                times.append(time.time())

    def watch() -> None:
        on_file = os.path.join(control, "on")
        pid = os.getpid()
        while True:
            time.sleep(0.005)
            wanted = os.path.exists(on_file)
            if wanted and not state["on"]:
                state["calls"] = {}
                state["on"] = True
                open(os.path.join(control, f"{pid}.ready"), "w").close()
            elif not wanted and state["on"]:
                state["on"] = False
                with open(os.path.join(control, f"{pid}.json.tmp"), "w") as out:
                    json.dump([[*key, times] for key, times in state["calls"].items()], out)
                os.replace(os.path.join(control, f"{pid}.json.tmp"), os.path.join(control, f"{pid}.json"))

    sys.setprofile(profile)
    threading.setprofile(profile)
    threading.Thread(target=watch, name="trace-files-control", daemon=True).start()


if _CONTROL:
    _install(_CONTROL)
