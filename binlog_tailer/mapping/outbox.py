"""The outbox event router: each committed INSERT into an outbox table becomes one event.

Semantics follow Debezium's Outbox Event Router, with stricter handling of bad rows:

- topic: ``topic_template`` over ``aggregate_type``, ``event_type``, ``db``, ``table``;
  with ``allowed_topics`` set, any other topic is a bad record (never a new topic)
- key: the aggregate id (or the shard key column, when configured and not NULL), so every
  event of one aggregate lands on one partition, in commit order
- value: the payload as stored (``payload_format=json`` checks it is JSON, ``raw`` does not);
  a NULL payload gives a tombstone; ``envelope=true`` wraps it with the event's metadata
- headers: ``event_id`` (for consumer de-duplication), ``event_type``, ``aggregate_type``,
  ``binlog_position`` (``file:pos``), ``gtid`` when known, and each of ``header_columns``
- record timestamp: the timestamp column (DATETIME read as UTC) when present, else commit time

DELETEs are ignored (insert-then-delete in one transaction keeps the table empty and still
publishes); UPDATEs follow ``on_update``: warn (default), error, ignore.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.errors import BadRecord, MappingError
from binlog_tailer.mapping.encode import MYSQL_JSON_SEPARATORS, dumps
from binlog_tailer.mapping.transactions import TransactionMetadata
from binlog_tailer.model import SCHEMA_CACHE_LIMIT, Record, RowChange, TableSchema

log = logging.getLogger(__name__)

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True)
class OutboxOptions:
    """The outbox table's columns and how its rows become records (the outbox.* settings)."""

    id_column: str = "id"
    aggregate_type_column: str = "aggregate_type"
    aggregate_id_column: str = "aggregate_id"
    event_type_column: str = "event_type"
    payload_column: str = "payload"
    timestamp_column: str | None = "created_at"
    shard_key_column: str | None = None
    header_columns: tuple[str, ...] = ()
    topic_template: str = "outbox.event.{aggregate_type}"
    allowed_topics: tuple[str, ...] = ()
    payload_format: Literal["json", "raw"] = "json"
    envelope: bool = False
    on_update: Literal["warn", "error", "ignore"] = "warn"

    def required_columns(self) -> list[str]:
        """The columns every outbox row must have (the timestamp column is optional)."""
        return [
            self.id_column,
            self.aggregate_type_column,
            self.aggregate_id_column,
            self.event_type_column,
            self.payload_column,
            *self.header_columns,
            *([self.shard_key_column] if self.shard_key_column else []),
        ]


def _text(v: Any) -> str | None:
    """A column value as text: ids may be CHAR, BINARY(16) UUIDs, or integers."""
    if v is None:
        return None
    if isinstance(v, bytes | bytearray):
        if len(v) == 16:
            return str(uuid.UUID(bytes=bytes(v)))
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(v).hex()
    return str(v)


_EPOCH = dt.datetime(1970, 1, 1)
_MS = dt.timedelta(milliseconds=1)


def _epoch_ms(v: Any) -> int | None:
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            return int(v.timestamp() * 1000)
        return (v - _EPOCH) // _MS  # a naive DATETIME/TIMESTAMP: UTC
    if isinstance(v, int | float):
        return int(v)
    return None


# Bad records: the rows the mapper rejects, one by one (a dead-letter topic may keep them).
def _missing_value(
    schema: TableSchema, column: str, payload: bytes | None, event_id: str | None
) -> BadRecord:
    return BadRecord(
        "missing_value",
        f"outbox row in {schema.db}.{schema.table} has no {column} (NULL)",
        payload,
        event_id,
    )


def _check_json(payload: bytes, event_id: str | None) -> None:
    """A bad record when a text payload is not JSON. orjson answers most payloads several
    times faster; what it refuses (NaN, numbers beyond a double, a byte order mark, UTF-16)
    the standard library decides, so exactly what json.loads accepts passes."""
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        _parse_json(payload, event_id)


def _parse_json(payload: bytes, event_id: str | None) -> Any:
    """A text payload parsed as JSON (every digit of its integers kept); a bad record when it
    is not JSON."""
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise BadRecord(
            "invalid_json", f"outbox payload of event {event_id} is not JSON: {exc}",
            payload, event_id,
        ) from None  # fmt: skip


def _bad_topic(topic: str, payload: bytes | None, event_id: str | None) -> BadRecord:
    """An event routed to an invalid topic name, or to a topic not in outbox.allowed_topics."""
    if not _TOPIC_NAME.match(topic):
        return BadRecord(
            "invalid_topic", f"event {event_id} routes to {topic!r}, not a valid topic name",
            payload, event_id,
        )  # fmt: skip
    return BadRecord(
        "topic_not_allowed",
        f"event {event_id} routes to topic {topic!r}, which is not in outbox.allowed_topics",
        payload,
        event_id,
    )


class OutboxMapper:
    def __init__(
        self, options: OutboxOptions, transactions: TransactionMetadata | None = None
    ) -> None:
        self.o = options
        self.transactions = transactions  # adds the transaction headers to each record
        self._allowed = frozenset(options.allowed_topics)
        # tables whose shape was checked -> whether the payload column is a MySQL JSON column
        self._checked: dict[TableSchema, bool] = {}
        self._topics: dict[tuple[str, str, TableSchema], tuple[str, bool]] = {}
        self.updates_seen = 0

    def _check_shape(self, schema: TableSchema) -> bool:
        """Raises MappingError when a configured column is missing; returns whether the
        payload column is MySQL's binary JSON (decoded to a value, not text)."""
        json_payload = self._checked.get(schema)
        if json_payload is not None:
            return json_payload
        o = self.o
        required = o.required_columns()
        names = {c.name for c in schema.columns}
        missing = [c for c in required if c not in names]
        if missing:
            # Every row of this table would fail the same way: a shape error, not a bad row.
            raise MappingError(
                f"outbox table {schema.db}.{schema.table} has no column(s) {', '.join(missing)}"
                f" (it has {', '.join(sorted(names))}); set the outbox.*_column settings to"
                " its column names"
            )
        if len(self._checked) > SCHEMA_CACHE_LIMIT:
            self._checked.clear()
        json_payload = any(
            c.name == o.payload_column and c.type_code == FIELD_TYPE.JSON for c in schema.columns
        )
        self._checked[schema] = json_payload
        return json_payload

    def map(self, change: RowChange) -> list[Record]:
        if change.op == "d":
            return []
        schema = change.schema
        json_payload = self._check_shape(schema)
        if change.op == "u":
            return self._update(change)
        o = self.o
        row = change.after or {}
        raw_payload = row.get(o.payload_column)
        payload = self._payload_bytes(raw_payload, json_payload)
        event_id = _text(row.get(o.id_column))
        for column in (o.id_column, o.aggregate_type_column, o.aggregate_id_column,
                       o.event_type_column):  # fmt: skip
            if row.get(column) is None:
                raise _missing_value(schema, column, payload, event_id)
        aggregate_type = _text(row[o.aggregate_type_column]) or ""
        aggregate_id = _text(row[o.aggregate_id_column]) or ""
        event_type = _text(row[o.event_type_column]) or ""
        parsed: Any = None
        if payload is not None and o.payload_format == "json":
            if json_payload:
                parsed = raw_payload
            elif o.envelope:  # the envelope holds the parsed value: the exact parser
                parsed = _parse_json(payload, event_id)
            else:
                _check_json(payload, event_id)
        topic, allowed = self._topic(aggregate_type, event_type, schema)
        if not allowed:
            raise _bad_topic(topic, payload, event_id)
        key_value = row.get(o.shard_key_column) if o.shard_key_column else None
        key = (_text(key_value) or aggregate_id).encode("utf-8")
        headers = self._headers(change, row, event_id, event_type, aggregate_type)
        ts = _epoch_ms(row.get(o.timestamp_column)) if o.timestamp_column else None
        value = payload
        if o.envelope and payload is not None:
            value = dumps(
                {
                    "id": event_id,
                    "aggregate_type": aggregate_type,
                    "aggregate_id": aggregate_id,
                    "event_type": event_type,
                    "timestamp_ms": ts or change.ts_ms,
                    "payload": parsed if parsed is not None else payload.decode("utf-8", "replace"),
                }
            )
        if self.transactions is not None:
            headers += self.transactions.headers(change)
        return [Record(topic, key, value, headers, ts or change.ts_ms or None)]

    def _topic(self, aggregate_type: str, event_type: str, schema: TableSchema) -> tuple[str, bool]:
        """The event's topic, and whether it is a valid and allowed one. Remembered for each
        (aggregate type, event type, table): formatting and checking it cost more than the
        lookup."""
        key = (aggregate_type, event_type, schema)
        known = self._topics.get(key)
        if known is not None:
            return known
        topic = self.o.topic_template.format(
            aggregate_type=aggregate_type, event_type=event_type, db=schema.db, table=schema.table
        )
        allowed = bool(_TOPIC_NAME.match(topic)) and (not self._allowed or topic in self._allowed)
        if len(self._topics) > SCHEMA_CACHE_LIMIT:
            self._topics.clear()
        self._topics[key] = (topic, allowed)
        return topic, allowed

    def _headers(
        self, change: RowChange, row: dict[str, Any], event_id: str | None, event_type: str,
        aggregate_type: str,
    ) -> list[tuple[str, str | bytes | None]]:  # fmt: skip
        headers: list[tuple[str, str | bytes | None]] = [
            ("event_id", event_id),
            ("event_type", event_type),
            ("aggregate_type", aggregate_type),
            # a row the polling relay read has no binlog position: its outbox sequence
            ("binlog_position", f"{change.file}:{change.pos}")
            if change.file
            else ("outbox_seq", str(change.pos)),
        ]
        if change.gtid:
            headers.append(("gtid", change.gtid))
        for column in self.o.header_columns:
            v = row.get(column)
            headers.append((column, v if isinstance(v, bytes) or v is None else str(v)))
        return headers

    def _payload_bytes(self, v: Any, json_payload: bool) -> bytes | None:
        if v is None:
            return None
        if json_payload:  # a MySQL JSON column, decoded by the binlog reader: its SELECT text
            return dumps(v, MYSQL_JSON_SEPARATORS)
        if isinstance(v, bytes | bytearray):
            return bytes(v)
        return str(v).encode("utf-8")

    def _update(self, change: RowChange) -> list[Record]:
        s = change.schema
        mode = self.o.on_update
        if mode == "error":
            raise MappingError(
                f"UPDATE of outbox row in {s.db}.{s.table} at {change.file}:{change.pos}: outbox"
                " rows must only be inserted (set outbox.on_update=warn or ignore to go on)"
            )
        if mode == "warn":
            self.updates_seen += 1
            log.warning(
                "ignored an UPDATE of an outbox row in %s.%s at %s:%s (outbox rows should only"
                " be inserted)", s.db, s.table, change.file, change.pos,
            )  # fmt: skip
        return []
