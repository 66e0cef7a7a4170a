"""Logging for every process: JSON lines when not on a terminal, readable on one.

The JSON is python-json-logger's standard formatter: `time`, `level`, `logger`, `message`,
`exc` when there is an exception, and every `extra={...}` field of the record as a
top-level key (`log.info("decision", extra={"ticker": "SPY"})` gives `"ticker": "SPY"`).

The level is the caller's: the bridge's default INFO, and in a worker the `-l/--loglevel`
Celery passes to its `setup_logging` signal (zero_tasks/celery_app.py), so `-l DEBUG` shows DEBUG.

Secrets never reach a log: a filter on the one handler scrubs every record (message,
arguments, traceback, extra fields) of every configured secret by value
(zero_tasks.secrets), and the formatters scrub the finished line once more. Uncaught
exceptions go through the same handler, not straight to stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as StandardJsonFormatter

from zero_tasks.core.inert import inert
from zero_tasks.secrets import scrub, scrub_any

redact = scrub  # the name earlier callers use
_PLAIN = logging.Formatter()
_STANDARD = frozenset(RESERVED_ATTRS) | {"taskName"}  # a record's own attributes: not extra fields


class SecretFilter(logging.Filter):
    """Scrubs a record before any formatter or handler sees it; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # logging would print the raw arguments to stderr
            message = f"{record.msg} (log arguments did not fit the format)"
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for name, value in record.__dict__.items():
            if name not in _STANDARD:
                record.__dict__[name] = scrub_any(value)
        return True


class JsonFormatter(StandardJsonFormatter):
    """python-json-logger with the gateway's field names; the finished line scrubbed."""

    def __init__(self) -> None:
        super().__init__(["levelname", "name", "message"], timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger", "exc_info": "exc"})

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextFormatter(logging.Formatter):
    """The terminal's format: a logged text may quote another service's words, so its control
    characters are spelled out (zero_tasks.core.inert); only a traceback keeps its line breaks.
    (The JSON lines escape them already: python-json-logger writes ASCII-only JSON.)"""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return inert(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        kept = record.exc_text, record.stack_info
        record.exc_text, record.stack_info = (_inert_lines(kept[0]), _inert_lines(kept[1]))
        try:
            return redact(super().format(record))
        finally:
            record.exc_text, record.stack_info = kept


def _inert_lines(text: str | None) -> str | None:
    return None if text is None else "\n".join(inert(line) for line in text.split("\n"))


def configure_logging(level: int | str = "INFO", logfile: str | None = None) -> None:
    """One handler on the root logger at `level` (a name or a number), on stderr or `logfile`."""
    handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    if not logfile and sys.stderr.isatty():
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _log_uncaught(kind: type[BaseException], exc: BaseException | None, tb: TracebackType | None) -> None:
    """An exception nobody caught is logged (scrubbed) instead of printed raw."""
    info: Any = (kind, exc, tb)  # exc is None for some thread exits: logging prints the type then
    logging.getLogger("uncaught").critical("uncaught %s", kind.__name__, exc_info=info)
