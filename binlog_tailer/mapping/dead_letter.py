"""Dead letters: a record that cannot be published goes here, with what went wrong.

The value is the original bytes (the outbox payload as stored, or the record Kafka refused),
truncated to ``max_value_bytes`` when larger (header ``dlq.truncated=true``); the headers name
the error, the table, the binlog position and the event id, which is enough to find the row
again in the binlog (``binlog-tailer run --from``) after fixing the cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from binlog_tailer.errors import BadRecord, RecordRejected
from binlog_tailer.model import Record, RowChange


@dataclass(frozen=True)
class DeadLetters:
    topic: str
    max_value_bytes: int = 900_000

    def record(
        self,
        change: RowChange,
        reason: str,
        error: str,
        original: bytes | None,
        *,
        event_id: str | None = None,
        original_topic: str | None = None,
        key: bytes | None = None,
    ) -> Record:
        size = len(original) if original is not None else 0
        truncated = size > self.max_value_bytes
        value = original[: self.max_value_bytes] if original is not None else None
        headers: list[tuple[str, str | bytes | None]] = [
            ("dlq.reason", reason),
            ("dlq.error", error[:2000]),
            ("dlq.db", change.schema.db),
            ("dlq.table", change.schema.table),
            ("dlq.position", f"{change.file}:{change.pos}")
            if change.file  # the polling relay's rows: their outbox sequence
            else ("dlq.outbox_seq", str(change.pos)),
            ("dlq.row", str(change.row)),
            ("dlq.original_size", str(size)),
            ("dlq.truncated", "true" if truncated else "false"),
        ]
        if change.gtid:
            headers.append(("dlq.gtid", change.gtid))
        if original_topic:
            headers.append(("dlq.original_topic", original_topic))
        if event_id:
            headers.append(("event_id", event_id))
        return Record(self.topic, key, value, headers, change.ts_ms or None)

    def bad_row(self, change: RowChange, exc: BadRecord) -> Record:
        """The dead letter of a row the mapper refused."""
        return self.record(change, exc.reason, str(exc), exc.original, event_id=exc.event_id)

    def rejected(self, exc: RecordRejected) -> Record:
        """The dead letter of a record Kafka refused for what it is (its row: `origin`)."""
        record: Record = exc.record
        assert record.origin is not None
        event_id = next(
            (v for k, v in record.headers if k == "event_id" and isinstance(v, str)), None
        )
        return self.record(
            record.origin, "rejected", str(exc), record.value,
            event_id=event_id, original_topic=record.topic, key=record.key,
        )  # fmt: skip
