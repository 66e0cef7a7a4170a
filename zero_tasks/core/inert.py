"""Text from outside the gateway made inert before a terminal or a log line shows it.

A reason written by another service (the market state's, a stand-down's, a block-list
entry's, a broker's error) is data, but a terminal obeys the control characters in it:
`ESC[1A ESC[2K CR` rewrites the line above, OSC sets the window title or plants a link,
a newline fakes a second line. So every such text is shown with its control characters
spelled out (`\\x1b`, `\\x0d`, `\\u202e`), on a terminal or not: C0, DEL, C1, and the
Unicode line separators and bidirectional overrides that reorder what is read.

Pure: strings in, strings out.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 and DEL, C1, line/paragraph separators, bidi marks, embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _spelled(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(text: str) -> str:
    """`text` with every control character spelled out; nothing else changes."""
    return _CONTROL.sub(_spelled, text)


def inert_any(value: Any) -> Any:
    """The same through the strings of a JSON-like value (keys included)."""
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, list | tuple):
        return [inert_any(v) for v in value]
    if isinstance(value, dict):
        return {inert_any(k): inert_any(v) for k, v in value.items()}
    return value


def inert_json_line(text: str) -> str:
    """A message printed as JSON: as received when it is valid JSON, with its control
    characters written as JSON escapes (strict JSON has raw ones only as whitespace between
    tokens, which becomes a space, or as C1/bidi characters inside strings, which become
    `\\u0085`-style escapes): the line still parses to what was sent. A message that is not
    JSON is shown as inert text."""
    try:
        json.loads(text)
    except ValueError:
        return inert(text)
    return text.translate(_JSON_ESCAPES)


_JSON_ESCAPES = {**{c: f"\\u{c:04x}" for c in [*range(0x7f, 0xa0), 0x2028, 0x2029, 0x200e, 0x200f,
                                                *range(0x202a, 0x202f), *range(0x2066, 0x206a)]},
                 **dict.fromkeys((0x09, 0x0a, 0x0d), " ")}
