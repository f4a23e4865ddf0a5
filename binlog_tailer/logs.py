"""Logging set-up: text or JSON lines on stderr, and a live progress line that log lines do
not garble.

The JSON formatter is a few lines of our own rather than a dependency: it writes exactly the
fields a log shipper needs, and nothing of a record's extra attributes can slip into it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CLEAR = "\r\x1b[K"  # back to the line's start, erase it


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """A stderr handler that can keep one live line (progress) under the log lines: a log line
    first erases it, then redraws it below itself."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.live = ""

    def emit(self, record: logging.LogRecord) -> None:
        if self.live:  # handle() holds self.lock here, as show() does
            self.stream.write(_CLEAR)
        super().emit(record)
        if self.live:
            self.stream.write(self.live)
            self.flush()

    def show(self, line: str) -> None:
        """Replace the live line ("" erases it)."""
        with self.lock or _NO_LOCK:
            if line or self.live:
                self.stream.write(_CLEAR + line)
                self.flush()
            self.live = line


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def setup_logging(level: str, fmt: str = "text", stream: TextIO | None = None) -> ConsoleHandler:
    handler = ConsoleHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return handler
