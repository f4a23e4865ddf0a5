"""The records of the offsets topic, as pure functions (no Kafka client here).

One compacted topic holds the positions of any number of connectors: the key is the
connector's name (UTF-8), the value the checkpoint document of the file store
(``{"position": ..., "saved_at": ..., "format": 1}``) as JSON, and a tombstone (no value)
forgets the position. The last record of a key wins: compaction keeps exactly that one.

The Kafka store produces these records on their own; exactly-once delivery commits the same
record in the Kafka transaction that carries the rows up to its position.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from binlog_tailer.checkpoint import checkpoint_document, position_from_document
from binlog_tailer.errors import BinlogTailerError, CheckpointError
from binlog_tailer.model import Record
from binlog_tailer.position import BinlogPosition


def offset_record(
    topic: str, name: str, position: BinlogPosition, saved_at: float | None = None
) -> Record:
    """The record that stores `position` as the position of connector `name`."""
    doc = checkpoint_document(position, saved_at)
    value = json.dumps(doc, separators=(",", ":")).encode()
    return Record(topic, name.encode(), value, timestamp_ms=int(doc["saved_at"] * 1000))


def offset_tombstone(topic: str, name: str) -> Record:
    """The record that forgets the position of connector `name`."""
    return Record(topic, name.encode(), None)


class UnreadableOffsetRecord(CheckpointError):
    """The last offset record of a name holds no position binlog-tailer can read."""


def decode_offset_value(value: bytes) -> BinlogPosition:
    """The position an offset record's value holds; UnreadableOffsetRecord when it holds none."""
    try:
        return position_from_document(json.loads(value))
    except (ValueError, KeyError, TypeError, BinlogTailerError) as exc:
        raise UnreadableOffsetRecord(str(exc)) from exc


def last_position(
    records: Iterable[tuple[bytes | None, bytes | None]], name: str
) -> BinlogPosition | None:
    """The position of connector `name` among (key, value) records in topic order: that of
    its last record; None without one, or when the last is a tombstone. Only that last value
    is decoded (earlier ones are history, whatever they hold)."""
    key = name.encode()
    last: bytes | None = None
    for k, v in records:
        if k == key:
            last = v
    return None if last is None else decode_offset_value(last)
