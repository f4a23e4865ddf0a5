"""Creating the topics binlog-tailer writes to, instead of relying on broker auto-creation
(which may be off, and gives the broker's defaults).

The publisher creates each topic at its first record (the topics it already knows are a dict
lookup on the hot path): with `topics.partitions`, `topics.replication_factor` and
`topics.config`, and `cleanup.policy=compact` for the topics of keyed data tables with
`topics.compact_data_topics`. Outbox event topics, the dead-letter, transaction and heartbeat
topics are never compacted by that setting: an outbox topic is a history of events (compaction
would keep one event per aggregate), and the others take records without keys or want them all.
A topic that exists already (another instance created it first) is fine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from binlog_tailer.errors import TopicNotCreated
from binlog_tailer.kafka_client import unreachable
from binlog_tailer.model import Record
from binlog_tailer.settings import TopicsSettings

log = logging.getLogger(__name__)

_AUTHORIZATION = frozenset(
    {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}
)


@dataclass(frozen=True)
class TopicSpec:
    partitions: int = 1  # -1: the broker's num.partitions
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    config: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = "broker default" if self.partitions < 0 else str(self.partitions)
        rf = "broker default" if self.replication_factor < 0 else str(self.replication_factor)
        text = f"partitions {parts}, replication factor {rf}"
        if self.config:
            text += ", " + ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        return text


def create_topic(
    admin: AdminClient, topic: str, spec: TopicSpec, timeout: float, purpose: str = ""
) -> bool:
    """Create `topic`: True when created, False when it existed already (a race with another
    instance). TopicNotCreated, one line naming the topic and its fix, when Kafka refuses."""
    new = NewTopic(
        topic,
        num_partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        config=dict(spec.config),
    )
    futures = admin.create_topics([new], request_timeout=timeout, operation_timeout=timeout)
    try:
        futures[topic].result(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        if unreachable(exc):  # not a refusal: the caller may wait for Kafka
            raise
        raise TopicNotCreated(creation_failure(topic, exc, spec, purpose)) from exc
    return True


def creation_failure(topic: str, exc: KafkaException, spec: TopicSpec, purpose: str) -> str:
    err = exc.args[0] if exc.args else None
    text = err.str() if isinstance(err, KafkaError) else str(exc)
    what = f"Kafka topic {topic}{f' ({purpose})' if purpose else ''}"
    if isinstance(err, KafkaError) and err.code() in _AUTHORIZATION:
        return (
            f"not authorized to create {what} ({text}): create it yourself ({spec.describe()})"
            " or grant binlog-tailer's principal Create on it (or on the cluster)"
        )
    return (
        f"cannot create {what} ({text}): create it yourself ({spec.describe()}), or fix the"
        " topics.* settings"
    )


class TopicCreator:
    """Which settings a new topic gets, by what it is for; creates it."""

    def __init__(
        self,
        settings: TopicsSettings,
        admin: Callable[[], AdminClient],
        is_outbox: Callable[[str, str], bool],
        timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self._admin = admin
        self._is_outbox = is_outbox
        self.timeout = timeout
        self.base = TopicSpec(
            settings.partitions,
            settings.replication_factor,
            {k: _config_text(v) for k, v in settings.config.items()},
        )
        self.compacted = TopicSpec(
            self.base.partitions,
            self.base.replication_factor,
            self.base.config | {"cleanup.policy": "compact"},
        )

    def spec_for(self, record: Record) -> TopicSpec:
        """Compacted: a data table's topic (not an outbox's) whose first record has a key, with
        topics.compact_data_topics. Records without `origin` are the connector's own (dead
        letters, transaction and heartbeat records)."""
        origin = record.origin
        if (
            self.settings.compact_data_topics
            and origin is not None
            and record.key is not None
            and not self._is_outbox(origin.schema.db, origin.schema.table)
        ):
            return self.compacted
        return self.base

    def create(self, record: Record) -> TopicSpec | None:
        """Create the missing topic of `record`: its spec, or None when another instance
        created it meanwhile (its settings are then read from Kafka)."""
        spec = self.spec_for(record)
        if not create_topic(self._admin(), record.topic, spec, self.timeout):
            return None
        log.info("created Kafka topic %s: %s", record.topic, spec.describe())
        return spec


def _config_text(v: str | int | float | bool) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
