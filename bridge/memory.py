"""Give a burst's memory back to the system once the bridge is idle again.

A 10,000-message burst grows the bridge by ~7 MB (socket and parse buffers, batch
objects) that Python frees but glibc keeps in its heap, so the RSS stays at its peak
for the life of the process. After a burst, once a whole tick has passed with no new
message, the bridge asks glibc to return its free pages (`malloc_trim(0)`). Where there
is no glibc (musl, macOS) nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def glibc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim(0), from the symbols the interpreter already has loaded."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class IdleTrimmer:
    """Call `tick(received)` every second or so with the count of messages received so far."""

    def __init__(self, min_messages: int = 1000, trim: Callable[[], int] | None = None) -> None:
        self._trim = trim if trim is not None else glibc_trim()
        self._min_messages = min_messages  # a few messages are not worth a trim
        self._last_seen = 0
        self._since_trim = 0
        self.trims = 0

    async def tick(self, received: int) -> bool:
        """True when this tick trimmed: a burst happened and nothing arrived since the last tick.

        The trim runs in a thread (ctypes releases the GIL; ~3 ms on an 80 MB heap), so the
        event loop keeps hearing messages meanwhile. No `gc.collect()`: a full collection
        holds the loop for ~20 ms, and a burst's objects are freed by reference counting.
        """
        new, self._last_seen = received - self._last_seen, received
        self._since_trim += new
        if new or self._since_trim < self._min_messages or self._trim is None:
            return False
        self._since_trim = 0
        await asyncio.to_thread(self._trim)
        self.trims += 1
        log.debug("idle after a burst: free heap pages returned to the system")
        return True
