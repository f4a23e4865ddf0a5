"""What flows through the pipeline: row changes, transaction ends, Kafka records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from binlog_tailer.position import BinlogPosition


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_code: int  # pymysqlreplication.constants.FIELD_TYPE
    set_values: tuple[str, ...] = ()  # SET columns: members in definition order
    is_json: bool = False  # MariaDB JSON (a LONGTEXT with a json_valid check)


# Caches keyed by TableSchema are cleared past this size: a new table map (the binlog reader
# re-parses after its own cache is cleared) makes a new schema object, so they would grow.
SCHEMA_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True, eq=False)
class TableSchema:
    """A table as the binlog's table map describes it (binlog_row_metadata=FULL).

    Compared and hashed by identity: one object per parsed table map, used as a cache key on
    the hot path (hashing its columns for every row cost more than the lookups saved)."""

    db: str
    table: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]


@dataclass(slots=True)
class RowChange:
    """One changed row of a committed transaction."""

    schema: TableSchema
    op: str  # "c" insert, "u" update, "d" delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    file: str  # "" for a row the polling relay read (no binlog position)
    pos: int  # start offset of the rows event in `file` (the relay: the row's outbox sequence)
    row: int  # index of this row within its rows event
    gtid: str | None  # GTID of the transaction, when the server writes them
    server_id: int
    ts_ms: int  # when the transaction was written to the binlog (second resolution)


@dataclass(slots=True)
class TxnEnd:
    """A commit (or a standalone statement) ended: `position` is the boundary after it."""

    position: BinlogPosition


@dataclass(slots=True)
class Record:
    """A Kafka record, ready to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)
    timestamp_ms: int | None = None
    origin: RowChange | None = None  # the row it came from (for dead letters)
