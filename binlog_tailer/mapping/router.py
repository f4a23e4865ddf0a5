"""Picks the mapper of a row change: the outbox router for outbox tables, else the envelope."""

from __future__ import annotations

from collections.abc import Callable

from binlog_tailer.mapping import Mapper
from binlog_tailer.model import SCHEMA_CACHE_LIMIT, Record, RowChange, TableSchema


class RoutingMapper:
    def __init__(
        self, is_outbox: Callable[[str, str], bool], outbox: Mapper | None, data: Mapper
    ) -> None:
        self._is_outbox = is_outbox
        self._outbox = outbox
        self._data = data
        self._choice: dict[TableSchema, Mapper] = {}

    def map(self, change: RowChange) -> list[Record]:
        mapper = self._choice.get(change.schema)
        if mapper is None:
            s = change.schema
            mapper = self._outbox if self._outbox and self._is_outbox(s.db, s.table) else self._data
            if len(self._choice) > SCHEMA_CACHE_LIMIT:
                self._choice.clear()
            self._choice[change.schema] = mapper
        return mapper.map(change)
