"""Where the binlog position is stored. One small Protocol; stores in this package.

Every store keeps the same JSON document: ``{"position": BinlogPosition.to_dict(), "saved_at":
unix time, "format": 1}`` (`checkpoint_document`, `position_from_document`).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from binlog_tailer.errors import CheckpointError
from binlog_tailer.position import BinlogPosition

# Of the checkpoint document; a newer one is refused, never misread. Format 2 adds the
# position's "done" (a split transaction): a document without it is written as format 1, so
# that an older binlog-tailer still reads every position it could.
# Format 3 adds the position's "snapshot" (a snapshot's progress) and "signals" (the offset of
# the next snapshot signal).
FORMAT = 3


class CheckpointStore(Protocol):
    def load(self) -> BinlogPosition | None:
        """The stored position, or None when nothing is stored."""

    def save(self, position: BinlogPosition) -> None:
        """Store `position` durably (it survives a crash right after this returns)."""

    def reset(self) -> None:
        """Forget the stored position."""

    def describe(self) -> str:
        """Where the position lives, for messages."""

    def check(self) -> str:
        """Verify, changing nothing, that the store can be used as configured: a line saying
        what was found, or CheckpointError."""


def checkpoint_document(position: BinlogPosition, saved_at: float | None = None) -> dict[str, Any]:
    """The stored form of `position` (JSON-serialisable)."""
    return {
        "position": position.to_dict(),
        "saved_at": time.time() if saved_at is None else saved_at,
        "format": _format(position),
    }


def _format(position: BinlogPosition) -> int:
    """The oldest format that holds `position`: older binlog-tailers read what they can."""
    if position.snapshot is not None or position.signals is not None:
        return 3
    return 2 if position.done is not None else 1


def position_from_document(data: Any) -> BinlogPosition:
    """The position a checkpoint document holds. Raises CheckpointError for a document of a
    newer format, ValueError, KeyError, TypeError or ConfigError for one that is not valid."""
    if not isinstance(data, dict):
        raise TypeError(f"a checkpoint is a JSON object, not {type(data).__name__}")
    version = data.get("format", FORMAT)
    if not isinstance(version, int) or version > FORMAT:
        raise CheckpointError(
            f"the checkpoint has format {version!r}, written by a newer binlog-tailer (this one"
            f" reads format {FORMAT}): run the newer version"
        )
    return BinlogPosition.from_dict(data["position"])
