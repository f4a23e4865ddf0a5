"""Where the binlog position is stored. One small Protocol; stores in this package."""

from __future__ import annotations

from typing import Protocol

from binlog_tailer.position import BinlogPosition


class CheckpointStore(Protocol):
    def load(self) -> BinlogPosition | None:
        """The stored position, or None when nothing is stored."""

    def save(self, position: BinlogPosition) -> None:
        """Store `position` durably (it survives a crash right after this returns)."""

    def reset(self) -> None:
        """Forget the stored position."""

    def describe(self) -> str:
        """Where the position lives, for messages."""
