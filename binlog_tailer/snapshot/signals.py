"""Snapshot signals: requests to a running service, as records of a Kafka topic.

`binlog-tailer snapshot db.table` (and `snapshot stop`) produce a record keyed by the
connector's name to `snapshot.signal_topic`; the running service reads that topic from the
offset its checkpoint stores (`BinlogPosition.signals`) and applies each signal at the next
transaction boundary. The offset advances in the checkpoint with the snapshot state the signal
made, so a signal is applied once: never lost in a crash (read again from the stored offset),
never applied twice once that state is stored.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from binlog_tailer.errors import BinlogTailerError, ConfigError
from binlog_tailer.publisher import connection_config
from binlog_tailer.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signal:
    action: str  # "snapshot" | "stop"
    tables: tuple[str, ...] = ()
    where: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def to_json(self) -> bytes:
        data: dict[str, object] = {"action": self.action, "id": self.id}
        if self.action == "snapshot":
            data |= {"tables": list(self.tables), "where": self.where}
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, value: bytes) -> Signal:
        """A signal's record value; ValueError when it is not one."""
        try:
            data = json.loads(value)
            action = data["action"]
            if action == "snapshot":
                tables = tuple(str(t) for t in data["tables"])
                if not tables or any(t.count(".") != 1 for t in tables):
                    raise ValueError(f"tables must be db.table names, not {data['tables']!r}")
                where = data.get("where")
                return cls(action, tables, str(where) if where else None, str(data.get("id")))
            if action == "stop":
                return cls(action, id=str(data.get("id")))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a snapshot signal: {exc}") from exc
        raise ValueError(f"unknown signal action {action!r}")


def send(kafka: KafkaSettings, topic: str, name: str, signal: Signal, timeout: float) -> int:
    """Produce `signal` for connector `name`; its offset once Kafka acknowledged it."""
    producer = Producer(connection_config(kafka) | {"enable.idempotence": True})
    result: dict[str, object] = {}

    def delivered(err: KafkaError | None, msg: object) -> None:
        result["err"], result["msg"] = err, msg

    producer.produce(topic, signal.to_json(), name.encode(), on_delivery=delivered)
    producer.flush(timeout)
    err, msg = result.get("err"), result.get("msg")
    if not result or err is not None or msg is None:
        reason = err.str() if isinstance(err, KafkaError) else "no acknowledgement in time"
        raise BinlogTailerError(f"cannot send the signal to Kafka topic {topic}: {reason}")
    return int(msg.offset())  # type: ignore[attr-defined]


class SignalListener:
    """Reads the signal topic in a thread of its own; `pending` holds (offset, Signal) of this
    connector in topic order, for the stream's thread to apply."""

    def __init__(self, kafka: KafkaSettings, topic: str, name: str, start: int | None) -> None:
        self.topic, self.name = topic, name.encode()
        self.pending: deque[tuple[int, Signal]] = deque()
        self.start = start  # None: from the partition's first record
        self.read_to = start or 0  # the offset after the last record read
        self._stop = threading.Event()
        self._consumer = Consumer(
            connection_config(kafka)
            | {
                "group.id": "binlog-tailer.signal-reader",  # required; never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        self._thread = threading.Thread(target=self._run, name="binlog-tailer-signals", daemon=True)

    def start_reading(self, timeout: float = 10.0) -> None:
        """Read from the stored offset; without one (a first run), from the topic's end as it
        is now (the offset becomes part of the checkpoint from here on)."""
        if self.start is None:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=timeout, cached=False
                )
                self.start = self.read_to = int(high)
            except KafkaException as exc:  # no topic yet: from its first record, when made
                log.warning("signal topic %s: %s; reading from its start", self.topic, exc)
        offset = self.start if self.start is not None else -2  # OFFSET_BEGINNING
        self._consumer.assign([TopicPartition(self.topic, 0, offset)])
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._consumer.close()

    def _run(self) -> None:
        warned = False
        while not self._stop.is_set():
            try:
                msgs = self._consumer.consume(100, timeout=0.2)
            except KafkaException as exc:  # pragma: no cover - the client retries itself
                log.debug("signal topic: %s", exc)
                continue
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF and not warned:
                        warned = True  # the client keeps retrying; say it once
                        log.warning("cannot read the signal topic %s: %s", self.topic, err.str())
                    continue
                offset = int(msg.offset() or 0)
                self.read_to = offset + 1
                if msg.key() != self.name or msg.value() is None:
                    self.pending.append((offset, Signal("ignore")))
                    continue
                try:
                    signal = Signal.from_json(msg.value() or b"")
                except ValueError as exc:
                    log.warning("signal at offset %d of %s ignored: %s", offset, self.topic, exc)
                    signal = Signal("ignore")
                self.pending.append((offset, signal))


def check_tables(tables: list[str]) -> tuple[str, ...]:
    bad = [t for t in tables if t.count(".") != 1 or any(c in t for c in "*?[")]
    if bad:
        raise ConfigError(f"snapshot: name tables in full as db.table: {', '.join(bad)}")
    return tuple(tables)
