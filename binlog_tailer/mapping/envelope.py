"""Data tables: a Debezium-like change envelope per row.

key   = ``{"<pk column>": value, ...}`` (JSON), or no key when the table has no primary key
value = ``{"op", "before", "after", "source": {...}, "ts_ms"}``
topic = ``topic_template`` over ``prefix``, ``db``, ``table`` (default ``{prefix}.{db}.{table}``)

A delete may be followed by a tombstone (same key, null value) for log compaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from binlog_tailer import __version__
from binlog_tailer.errors import MappingError
from binlog_tailer.mapping.encode import RowEncoder, dumps
from binlog_tailer.model import Record, RowChange


@dataclass(frozen=True)
class EnvelopeOptions:
    topic_prefix: str = "cdc"
    topic_template: str = "{prefix}.{db}.{table}"
    tombstones: bool = False


class EnvelopeMapper:
    def __init__(self, options: EnvelopeOptions) -> None:
        self.options = options
        self._encoder = RowEncoder()
        self._topics: dict[tuple[str, str], str] = {}

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

    def map(self, change: RowChange) -> list[Record]:
        schema = change.schema
        before = self._encoder.encode(schema, change.before)
        after = self._encoder.encode(schema, change.after)
        key = None
        if schema.primary_key:
            image = after if after is not None else before
            assert image is not None
            key = dumps({c: image.get(c) for c in schema.primary_key})
        value = {
            "op": change.op,
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
        topic = self.topic_for(schema.db, schema.table)
        records = [Record(topic, key, dumps(value), timestamp_ms=change.ts_ms or None)]
        if change.op == "d" and self.options.tombstones and key is not None:
            records.append(Record(topic, key, None, timestamp_ms=change.ts_ms or None))
        return records
