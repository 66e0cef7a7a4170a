"""Logging for both processes: JSON lines when not on a terminal, readable on one.

Secrets never reach a log: a filter on the one handler scrubs every record (message,
arguments, traceback) of every configured secret by value (zero_tasks.secrets), and the
formatters scrub the finished line once more, which also catches a secret that reached a
JSON field. Uncaught exceptions go through the same handler, not straight to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from types import TracebackType

from zero_tasks.secrets import scrub

redact = scrub  # the name earlier callers use
_PLAIN = logging.Formatter()


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
        return True



class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
                 "level": record.levelname, "logger": record.name}
        try:
            parsed = json.loads(message) if message.startswith("{") else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            entry.update(parsed)
        else:
            entry["message"] = message
        if record.exc_info:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
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
    logging.getLogger("uncaught").critical("uncaught %s", kind.__name__, exc_info=(kind, exc, tb))
