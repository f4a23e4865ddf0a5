"""One outbox table as the relay reads it: its statements, and its rows as row changes.

Nothing here talks to a server; `relay.py` runs the statements.

Why no high-water mark: an AUTO_INCREMENT value is taken at INSERT, not at COMMIT, so a row
with a smaller `seq` may commit after one with a larger `seq` was already published.
`WHERE seq > last_published` would skip it for ever. The relay instead reads every row still
in the table (delete mode) or still unsent (mark mode), oldest `seq` first: a late row is
simply found by a later poll.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.mapping.outbox import OutboxOptions
from binlog_tailer.model import Column, RowChange, TableSchema

_EPOCH = dt.datetime(1970, 1, 1)


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class RelayTable:
    db: str
    table: str
    options: OutboxOptions
    sequence_column: str = "seq"
    sent_column: str | None = None  # mark mode: the column set when a row was published

    @property
    def name(self) -> str:
        return f"{self.db}.{self.table}"

    @property
    def _from(self) -> str:
        return f"{quoted(self.db)}.{quoted(self.table)}"

    def columns(self) -> list[str]:
        """The columns the mapper uses, the sequence first."""
        ts = self.options.timestamp_column
        wanted = [self.sequence_column, *self.options.required_columns(), *([ts] if ts else [])]
        return list(dict.fromkeys(wanted))

    def select_batch(self, limit: int) -> str:
        """The next unsent rows, oldest first (an index range scan: the sequence's unique key,
        or (sent_at, seq) in mark mode)."""
        cols = ", ".join(quoted(c) for c in self.columns())
        seq = quoted(self.sequence_column)
        where = f" WHERE {quoted(self.sent_column)} IS NULL" if self.sent_column else ""
        return f"SELECT {cols} FROM {self._from}{where} ORDER BY {seq} LIMIT {int(limit)}"

    def remove(self, count: int) -> str:
        """Deletes (or marks sent) `count` rows given by sequence (%s placeholders)."""
        marks = ", ".join(["%s"] * count)
        seq = quoted(self.sequence_column)
        if self.sent_column:
            sent = quoted(self.sent_column)
            return (
                f"UPDATE {self._from} SET {sent} = CURRENT_TIMESTAMP(6)"
                f" WHERE {seq} IN ({marks}) AND {sent} IS NULL"
            )
        return f"DELETE FROM {self._from} WHERE {seq} IN ({marks})"

    def schema(self, description: Sequence[Sequence[Any]]) -> TableSchema:
        """The table as the mapper sees it, from a SELECT's cursor description. A JSON column
        arrives as the text MySQL's SELECT shows (what the binlog path publishes too): the
        mapper takes it as text."""
        columns = tuple(
            Column(d[0], FIELD_TYPE.VAR_STRING if d[1] == FIELD_TYPE.JSON else d[1])
            for d in description
        )
        return TableSchema(self.db, self.table, columns, (self.options.id_column,))

    def change(
        self, schema: TableSchema, row: Sequence[Any], now_ms: int | None = None
    ) -> RowChange:
        """A row read as an insert the mapper publishes; `pos` holds its sequence, `file` is
        empty (no binlog position)."""
        names = [c.name for c in schema.columns]
        after = dict(zip(names, row, strict=True))
        seq = int(after[self.sequence_column])
        ts = self.options.timestamp_column
        stamp = after.get(ts) if ts else None
        if isinstance(stamp, dt.datetime):
            ts_ms = (stamp.replace(tzinfo=None) - _EPOCH) // dt.timedelta(milliseconds=1)
        else:
            ts_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        return RowChange(schema, "c", None, after, "", seq, 0, None, 0, ts_ms)
