"""Transaction metadata, as Debezium's (`capture.transaction_metadata`).

For each MySQL transaction that produced records, a BEGIN record before its first record and
an END record after its last, on the transaction topic, keyed by ``{"id": <transaction id>}``
(so both land on one partition, in order):

    {"status": "BEGIN", "id": "0-1-42", "ts_ms": 1795566939000,
     "event_count": null, "data_collections": null}
    {"status": "END", "id": "0-1-42", "ts_ms": 1795566939000, "event_count": 3,
     "data_collections": [{"data_collection": "shop.orders", "event_count": 2},
                          {"data_collection": "shop.users", "event_count": 1}]}

The id is the transaction's GTID, else ``file:pos`` of the boundary before it (where a replay
of it starts). Every record of the transaction carries its place in it: data records a
``"transaction": {"id", "total_order", "data_collection_order"}`` block in their value
(orders count from 1), outbox records the headers ``transaction_id``,
``transaction_total_order`` and ``transaction_data_collection_order``. A data collection is a
table, ``db.table``. Tombstones carry no block and are not counted.
"""

from __future__ import annotations

from typing import Any

from binlog_tailer.mapping.encode import dumps
from binlog_tailer.model import SCHEMA_CACHE_LIMIT, Record, RowChange, TableSchema
from binlog_tailer.position import BinlogPosition


class TransactionMetadata:
    def __init__(self, topic: str, start: BinlogPosition) -> None:
        self.topic = topic
        self._start = start  # the boundary before the transaction being read
        self._id: str | None = None  # of the transaction being read, once it has a record
        self._announced = False  # its BEGIN was taken
        self._ts_ms = 0
        self._total = 0
        self._counts: dict[str, int] = {}  # data collection -> its records so far
        self._names: dict[TableSchema, str] = {}

    @property
    def current(self) -> str | None:
        """The id of the transaction being read, when it has produced a record."""
        return self._id

    def order(self, change: RowChange) -> dict[str, Any]:
        """The transaction block of the next record of `change` (counted)."""
        if self._id is None:
            self._open(change)
        schema = change.schema
        name = self._names.get(schema)
        if name is None:
            if len(self._names) > SCHEMA_CACHE_LIMIT:
                self._names.clear()
            name = self._names[schema] = f"{schema.db}.{schema.table}"
        n = self._counts.get(name, 0) + 1
        self._counts[name] = n
        self._total += 1
        return {"id": self._id, "total_order": self._total, "data_collection_order": n}

    def headers(self, change: RowChange) -> list[tuple[str, str | bytes | None]]:
        """The transaction headers of the next (outbox) record of `change` (counted)."""
        block = self.order(change)
        return [
            ("transaction_id", block["id"]),
            ("transaction_total_order", str(block["total_order"])),
            ("transaction_data_collection_order", str(block["data_collection_order"])),
        ]

    def begin(self) -> Record | None:
        """The BEGIN record of the transaction being read, once, after its first record was
        counted (to be published before that record)."""
        if self._id is None or self._announced:
            return None
        self._announced = True
        return self._record("BEGIN", None, None)

    def end(self, position: BinlogPosition) -> Record | None:
        """The transaction ended at `position`: its END record, when it produced records."""
        record = None
        if self._id is not None:
            collections = [
                {"data_collection": name, "event_count": n} for name, n in self._counts.items()
            ]
            record = self._record("END", self._total, collections)
            self._id = None
            self._announced = False
            self._total = 0
            self._counts = {}
        self._start = position
        return record

    def _open(self, change: RowChange) -> None:
        start = self._start
        if change.gtid:
            self._id = change.gtid
        elif start.file is not None:
            self._id = f"{start.file}:{start.pos}"
        else:
            self._id = str(start.gtid)
        self._ts_ms = change.ts_ms

    def _record(
        self, status: str, count: int | None, collections: list[dict[str, Any]] | None
    ) -> Record:
        value = {
            "status": status,
            "id": self._id,
            "ts_ms": self._ts_ms,
            "event_count": count,
            "data_collections": collections,
        }
        key = dumps({"id": self._id})
        return Record(self.topic, key, dumps(value), timestamp_ms=self._ts_ms or None)
