"""The Kafka checkpoint store: the position is a record in a compacted topic (records.py).

- The topic is created when missing: one partition (one order for all records), compacted
  (the last record of each name stays; a delete policy would drop an idle connector's
  position with its segment), replication factor min(3, brokers), min.insync.replicas one
  less than that (at least 1). An existing topic of another policy or with more partitions is
  refused.
- `load` reads the partition from its start to its high watermark measured first, with
  isolation.level=read_committed, assigned, not in a consumer group; the last record of our
  name wins. A record of an aborted transaction never counts; a transaction still open there
  (another connector's) is waited for, since records after it may be ours.
- `save` produces with the idempotent, acks=all producer settings of the data and waits for
  the acknowledgement: a position is stored when `save` returns.
- Every wait on Kafka ends within checkpoint.timeout_seconds, with one clear line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec, ResourceType

from binlog_tailer.checkpoint.records import (
    UnreadableOffsetRecord,
    last_position,
    offset_record,
    offset_tombstone,
)
from binlog_tailer.errors import CheckpointError, TopicNotCreated
from binlog_tailer.model import Record
from binlog_tailer.position import BinlogPosition
from binlog_tailer.publisher import connection_config, producer_config, redact
from binlog_tailer.settings import KafkaSettings
from binlog_tailer.topics import TopicSpec, create_topic

log = logging.getLogger(__name__)

# Small segments: compaction never cleans the active segment, and `load` reads it all.
SEGMENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication_factor: int
    cleanup_policy: str
    min_insync_replicas: str


def new_topic_settings(brokers: int) -> tuple[int, dict[str, str]]:
    """(replication factor, topic configuration) of a new offsets topic on `brokers` brokers."""
    replication = max(1, min(3, brokers))
    return replication, {
        "cleanup.policy": "compact",
        "min.insync.replicas": str(max(1, replication - 1)),
        "segment.bytes": str(SEGMENT_BYTES),
    }


def topic_problem(topic: str, state: TopicState) -> str | None:
    """Why an existing topic cannot hold offsets (one line with its fix), or None."""
    fix = "set checkpoint.topic to a topic of its own (created as needed when missing)"
    if {p.strip() for p in state.cleanup_policy.split(",")} != {"compact"}:
        return (
            f"Kafka topic {topic} has cleanup.policy={state.cleanup_policy}: offsets need"
            f" cleanup.policy=compact alone (otherwise an idle connector's position is deleted"
            f" with its segment); {fix}"
        )
    if state.partitions != 1:
        return (
            f"Kafka topic {topic} has {state.partitions} partitions: offsets need exactly one"
            f" (read whole, in one order); {fix}"
        )
    return None


class KafkaCheckpointStore:
    def __init__(self, kafka: KafkaSettings, topic: str, name: str, timeout: float = 30.0) -> None:
        self.kafka = kafka
        self.topic = topic
        self.name = name
        self.timeout = timeout
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._fatal: str | None = None
        self._ready = False  # the topic exists and is fit for offsets

    def describe(self) -> str:
        return f"Kafka topic {self.topic} (key {self.name!r})"

    def check(self) -> str:
        deadline = self._deadline()
        brokers, state = self._inspect(deadline)
        if state is None:
            replication, _ = new_topic_settings(brokers)
            return (
                f"Kafka topic {self.topic} (key {self.name!r}) does not exist yet: the first"
                f" save creates it (compacted, 1 partition, replication factor {replication})"
            )
        self._verify(state)
        return (
            f"Kafka topic {self.topic} (key {self.name!r}): compacted, 1 partition, replication"
            f" factor {state.replication_factor}, min.insync.replicas"
            f" {state.min_insync_replicas}"
        )

    def prepare(self) -> None:
        """Make sure the topic exists, fit for offsets (created when missing)."""
        self._ensure_topic(self._deadline(), create=True)

    def load(self) -> BinlogPosition | None:
        deadline = self._deadline()
        if not self._ensure_topic(deadline, create=False):
            return None
        try:
            return last_position(self._read(deadline), self.name)
        except UnreadableOffsetRecord as exc:
            raise CheckpointError(
                f"the position of {self.name!r} in Kafka topic {self.topic} is not readable"
                f" ({exc}); store one with 'binlog-tailer offsets set', or remove it with"
                " 'binlog-tailer offsets reset'"
            ) from exc

    def save(self, position: BinlogPosition) -> None:
        deadline = self._deadline()
        self._ensure_topic(deadline, create=True)
        self._produce(offset_record(self.topic, self.name, position), deadline)

    def reset(self) -> None:
        deadline = self._deadline()
        if self._ensure_topic(deadline, create=False):  # no topic: nothing stored
            self._produce(offset_tombstone(self.topic, self.name), deadline)

    # -- the topic

    def _ensure_topic(self, deadline: float, create: bool) -> bool:
        """Whether the topic exists (verified fit for offsets); created first with `create`."""
        if self._ready:
            return True
        brokers, state = self._inspect(deadline)
        if state is None:
            if not create:
                return False
            state = self._create(brokers, deadline)
        self._verify(state)
        self._ready = True
        return True

    def _verify(self, state: TopicState) -> None:
        problem = topic_problem(self.topic, state)
        if problem is not None:
            raise CheckpointError(problem)

    def _inspect(self, deadline: float) -> tuple[int, TopicState | None]:
        """(number of brokers, the topic's state or None when it does not exist)."""
        admin = self._admin_client()
        try:
            meta = admin.list_topics(topic=self.topic, timeout=_left(deadline))
        except KafkaException as exc:
            raise CheckpointError(self._unreachable(exc)) from exc
        found = meta.topics.get(self.topic)
        err = found.error if found is not None else None
        if found is None or (err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            return len(meta.brokers), None
        if err is not None:
            raise CheckpointError(f"cannot describe Kafka topic {self.topic}: {err.str()}")
        configs = self._configs(deadline)
        partitions = list(found.partitions.values())
        return len(meta.brokers), TopicState(
            partitions=len(partitions),
            replication_factor=len(partitions[0].replicas) if partitions else 0,
            cleanup_policy=configs.get("cleanup.policy") or "delete",
            min_insync_replicas=configs.get("min.insync.replicas") or "1",
        )

    def _configs(self, deadline: float) -> dict[str, str | None]:
        resource = ConfigResource(ResourceType.TOPIC, self.topic)
        try:
            futures = self._admin_client().describe_configs(
                [resource], request_timeout=_left(deadline)
            )
            entries = next(iter(futures.values())).result(timeout=_left(deadline))
        except KafkaException as exc:
            raise CheckpointError(
                f"cannot read the configuration of Kafka topic {self.topic}"
                f" ({self._text(exc)}): binlog-tailer needs DescribeConfigs on it"
            ) from exc
        return {key: entry.value for key, entry in entries.items()}

    def _create(self, brokers: int, deadline: float) -> TopicState:
        replication, config = new_topic_settings(brokers)
        spec = TopicSpec(1, replication, config)
        try:
            admin = self._admin_client()
            created = create_topic(admin, self.topic, spec, _left(deadline), "offsets")
        except TopicNotCreated as exc:
            raise CheckpointError(redact(str(exc), self.kafka.producer)) from exc
        if not created:
            _, state = self._inspect(deadline)  # another instance created it just now
            if state is None:
                msg = f"Kafka topic {self.topic} vanished as it was created"
                raise CheckpointError(msg) from None
            return state
        log.info(
            "created Kafka topic %s for offsets: compacted, 1 partition, replication factor %d",
            self.topic,
            replication,
        )
        return TopicState(1, replication, "compact", config["min.insync.replicas"])

    # -- reading and writing

    def _read(self, deadline: float) -> Iterator[tuple[bytes | None, bytes | None]]:
        """(key, value) of every committed record from the partition's start to its end as
        it is now (read committed, the end is the last stable offset)."""
        consumer = Consumer(
            connection_config(self.kafka)
            | {
                "group.id": "binlog-tailer.offsets-reader",  # required; never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "allow.auto.create.topics": False,
                "error_cb": self._on_error,
            }
        )
        try:
            partition = TopicPartition(self.topic, 0)
            low, _ = consumer.get_watermark_offsets(
                partition, timeout=_left(deadline), cached=False
            )
            high = self._end_offset(deadline)
            if high > low:
                consumer.assign([TopicPartition(self.topic, 0, low)])
                yield from self._records(consumer, high, deadline)
        except KafkaException as exc:
            raise CheckpointError(self._unreachable(exc)) from exc
        finally:
            consumer.close()

    def _end_offset(self, deadline: float) -> int:
        """The partition's end, past every record written (its high watermark). Not the last
        stable offset that a read_committed consumer is told: a transaction still open there
        (another connector's) would hide the records after it, ours among them, and the
        position read would be an older one. Reading up to here waits for such a transaction
        to end instead (it ends within its transaction timeout)."""
        partition = TopicPartition(self.topic, 0)
        futures = self._admin_client().list_offsets(
            {partition: OffsetSpec.latest()},
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=_left(deadline),
        )
        return int(futures[partition].result(timeout=_left(deadline)).offset)

    def _records(
        self, consumer: Consumer, high: int, deadline: float
    ) -> Iterator[tuple[bytes | None, bytes | None]]:
        """The assigned consumer's records until offset `high` (exclusive) is passed."""
        while True:
            for msg in consumer.consume(500, timeout=min(0.05, _left(deadline))):
                err, offset = msg.error(), msg.offset() or 0
                if err is None:
                    yield msg.key(), msg.value()
                    if offset >= high - 1:
                        return
                elif err.code() == KafkaError._PARTITION_EOF:
                    if offset >= high:
                        return
                else:
                    raise CheckpointError(
                        f"cannot read Kafka topic {self.topic}: {self._text(err.str())}"
                    )
            if time.monotonic() >= deadline:
                raise CheckpointError(
                    f"Kafka topic {self.topic} was not read up to offset {high} within"
                    f" {self.timeout:g}s (checkpoint.timeout_seconds): is Kafka overloaded?"
                )

    def _produce(self, record: Record, deadline: float) -> None:
        producer = self._producer_client()
        failed: list[KafkaError] = []

        def delivered(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                failed.append(err)

        try:
            producer.produce(
                record.topic,
                key=record.key,
                value=record.value,
                timestamp=record.timestamp_ms or 0,
                on_delivery=delivered,
            )
        except (KafkaException, BufferError) as exc:
            raise CheckpointError(f"cannot write to Kafka topic {self.topic}: {exc}") from exc
        remaining = producer.flush(_left(deadline))
        if self._fatal is not None or failed:
            reason = self._fatal or failed[0].str()
            self._producer, self._fatal = None, None  # a fresh producer for the next attempt
            raise CheckpointError(
                f"Kafka did not store the position in topic {self.topic}: {self._text(reason)}"
            )
        if remaining:
            raise CheckpointError(
                f"Kafka at {self.kafka.bootstrap_servers} did not acknowledge the position in"
                f" topic {self.topic} within {self.timeout:g}s (checkpoint.timeout_seconds):"
                " check that it is reachable"
            )

    # -- clients

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self._client_config(connection_config(self.kafka)))
        return self._admin

    def _producer_client(self) -> Producer:
        if self._producer is None:
            config = self._client_config(producer_config(self.kafka))
            config.pop("transactional.id", None)
            config |= {"linger.ms": 0, "delivery.timeout.ms": int(self.timeout * 1000)}
            self._producer = Producer(config)
        return self._producer

    def _client_config(self, base: dict[str, Any]) -> dict[str, Any]:
        return base | {"allow.auto.create.topics": False, "error_cb": self._on_error}

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
        else:
            log.debug("Kafka (offsets): %s", self._text(err.str()))

    def _text(self, exc: KafkaException | str) -> str:
        err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
        return redact(err.str() if isinstance(err, KafkaError) else str(err), self.kafka.producer)

    def _unreachable(self, exc: KafkaException) -> str:
        return (
            f"Kafka at {self.kafka.bootstrap_servers} is not reachable within {self.timeout:g}s"
            f" ({self._text(exc)}): the position is in topic {self.topic}; check"
            " kafka.bootstrap_servers (checkpoint.timeout_seconds bounds the wait)"
        )

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())
