"""Pure mappers: row changes in, Kafka records out."""

from __future__ import annotations

from typing import Protocol

from binlog_tailer.model import Record, RowChange


class Mapper(Protocol):
    def map(self, change: RowChange) -> list[Record]: ...
