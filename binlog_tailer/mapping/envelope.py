"""Data tables: a Debezium-like change envelope per row.

key   = ``{"<pk column>": value, ...}`` (JSON), or no key when the table has no primary key
value = ``{"op", "before", "after", "source": {...}, "ts_ms"}``
topic = ``topic_template`` over ``prefix``, ``db``, ``table`` (default ``{prefix}.{db}.{table}``)

A delete may be followed by a tombstone (same key, null value) for log compaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from binlog_tailer import __version__
from binlog_tailer.errors import MappingError
from binlog_tailer.mapping.encode import RowEncoder, dumps_floatless, holds_no_float
from binlog_tailer.mapping.encode import dumps as dumps_exact
from binlog_tailer.mapping.transactions import TransactionMetadata
from binlog_tailer.model import SCHEMA_CACHE_LIMIT, Record, RowChange, TableSchema


@dataclass(frozen=True)
class EnvelopeOptions:
    topic_prefix: str = "cdc"
    topic_template: str = "{prefix}.{db}.{table}"
    tombstones: bool = False


class EnvelopeMapper:
    def __init__(
        self, options: EnvelopeOptions, transactions: TransactionMetadata | None = None
    ) -> None:
        self.options = options
        self.transactions = transactions  # adds a "transaction" block to each value
        self._encoder = RowEncoder()
        self._topics: dict[tuple[str, str], str] = {}
        self._writers: dict[TableSchema, Callable[[Any], bytes]] = {}

    def topic_for(self, db: str, table: str) -> str:
        topic = self._topics.get((db, table))
        if topic is None:
            try:
                topic = self.options.topic_template.format(
                    prefix=self.options.topic_prefix, db=db, table=table
                )
            except (KeyError, IndexError) as exc:
                raise MappingError(
                    f"topic template {self.options.topic_template!r} uses an unknown field"
                    f" {exc}; available: {{prefix}}, {{db}}, {{table}}"
                ) from None
            self._topics[(db, table)] = topic
        return topic

    def _dumps(self, schema: TableSchema) -> Callable[[Any], bytes]:
        """The JSON writer for the records of `schema`: orjson when its rows hold no float."""
        writer = self._writers.get(schema)
        if writer is None:
            writer = dumps_floatless if holds_no_float(schema) else dumps_exact
            if len(self._writers) > SCHEMA_CACHE_LIMIT:
                self._writers.clear()
            self._writers[schema] = writer
        return writer

    def map(self, change: RowChange) -> list[Record]:
        schema = change.schema
        before = self._encoder.encode(schema, change.before)
        after = self._encoder.encode(schema, change.after)
        dumps = self._dumps(schema)
        topic = self.topic_for(schema.db, schema.table)
        ts = change.ts_ms or None
        if not schema.primary_key:
            return [
                Record(topic, None, self._value(change, change.op, before, after), timestamp_ms=ts)
            ]
        key = dumps(_key_of(schema.primary_key, after if after is not None else before))
        if change.op == "u" and before is not None:
            old_key = dumps(_key_of(schema.primary_key, before))
            if old_key != key:
                # The primary key changed: as Debezium, a delete of the old key (then its
                # tombstone) and a create of the new one, so compacted topics drop the old.
                return [
                    Record(topic, old_key, self._value(change, "d", before, None), timestamp_ms=ts),
                    *self._tombstone(topic, old_key, ts),
                    Record(topic, key, self._value(change, "c", None, after), timestamp_ms=ts),
                ]
        records = [
            Record(topic, key, self._value(change, change.op, before, after), timestamp_ms=ts)
        ]
        if change.op == "d":
            records += self._tombstone(topic, key, ts)
        return records

    def _tombstone(self, topic: str, key: bytes, ts: int | None) -> list[Record]:
        return [Record(topic, key, None, timestamp_ms=ts)] if self.options.tombstones else []

    def _value(
        self, change: RowChange, op: str, before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> bytes:  # fmt: skip
        schema = change.schema
        value = {
            "op": op,
            "before": before,
            "after": after,
            "source": {
                "connector": "binlog-tailer",
                "version": __version__,
                "server_id": change.server_id,
                "file": change.file,
                "pos": change.pos,
                "row": change.row,
                "gtid": change.gtid,
                "db": schema.db,
                "table": schema.table,
                "ts_ms": change.ts_ms,
            },
            "ts_ms": int(time.time() * 1000),
        }
        if self.transactions is not None:
            value["transaction"] = self.transactions.order(change)
        return self._dumps(schema)(value)


def _key_of(primary_key: tuple[str, ...], image: dict[str, Any] | None) -> dict[str, Any]:
    assert image is not None
    return {c: image.get(c) for c in primary_key}
