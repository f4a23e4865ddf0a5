"""Kafka producer adapter: idempotent, acks=all, delivery reports feed the AckTracker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from binlog_tailer.errors import PublishError, RecordRejected
from binlog_tailer.model import Record
from binlog_tailer.settings import KafkaSettings, is_secret

log = logging.getLogger(__name__)


def producer_config(s: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": s.bootstrap_servers,
        # Idempotence gives acks=all, retries without duplicates and per-partition order.
        "enable.idempotence": True,
        "acks": "all",
        "delivery.timeout.ms": s.delivery_timeout_ms,
        "linger.ms": 5,
        "compression.type": "lz4",
        "client.id": "binlog-tailer",
        # Bound what waits for Kafka (librdkafka's defaults: 100,000 records, 1 GiB): every
        # record in flight also keeps its row alive here, for dead-lettering.
        "queue.buffering.max.kbytes": s.max_buffered_kbytes,
        "queue.buffering.max.messages": 50_000,
    }
    config.update(s.producer)
    return config


# librdkafka properties only a producer knows (aliases included): a consumer warns of each.
PRODUCER_ONLY = frozenset(
    {
        "transactional.id",
        "transaction.timeout.ms",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.ms",
        "queue.buffering.backpressure.threshold",
        "linger.ms",
        "message.send.max.retries",
        "retries",
        "compression.codec",
        "compression.type",
        "compression.level",
        "batch.num.messages",
        "batch.size",
        "delivery.report.only.error",
        "sticky.partitioning.linger.ms",
        "request.required.acks",
        "acks",
        "request.timeout.ms",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "queuing.strategy",
        "produce.offset.report",
        "partitioner",
    }
)


def connection_config(s: KafkaSettings) -> dict[str, Any]:
    """What any client of the cluster needs (brokers, TLS, SASL, ...): the producer's settings
    without those only a producer knows. For consumers; admin clients take producer_config."""
    return {k: v for k, v in producer_config(s).items() if k not in PRODUCER_ONLY}


def redact(text: str, config: dict[str, Any]) -> str:
    """`text` without the value of any secret in `config` (a SASL password, an OAuth secret),
    for messages built from what a Kafka client reported."""
    for key, value in config.items():
        if is_secret(key) and isinstance(value, str) and len(value) >= 3:
            text = text.replace(value, "***")
    return text


class KafkaPublisher:
    def __init__(self, settings: KafkaSettings, on_ack: Callable[[int], None]) -> None:
        self.settings = settings
        self._on_ack = on_ack
        self._failure: PublishError | None = None
        self._rejected: list[RecordRejected] = []
        try:
            self._producer = Producer(producer_config(settings) | {"error_cb": self._on_error})
        except KafkaException as exc:
            raise PublishError(
                f"invalid Kafka producer settings: {redact(str(exc), settings.producer)}"
            ) from exc

    def check_reachable(self, timeout: float = 10.0) -> None:
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise PublishError(
                f"Kafka at {self.settings.bootstrap_servers} is not reachable within {timeout:.0f}s"
                f" ({_describe(exc)}): check kafka.bootstrap_servers"
            ) from exc

    def publish(self, record: Record, seq: int) -> None:
        def delivered(err: KafkaError | None, msg: Any) -> None:
            if err is None:
                self._on_ack(seq)
            elif err.code() in _RECORD_ERRORS:
                self._rejected.append(RecordRejected(_rejection(record, err), record, seq))
            else:
                if self._failure is None:
                    self._failure = PublishError(
                        f"Kafka did not accept a record for topic {record.topic!r}: {err.str()}"
                    )

        while True:
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers or None,
                    timestamp=record.timestamp_ms or 0,
                    on_delivery=delivered,
                )
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.1)
                self.raise_failure()
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() in _RECORD_ERRORS:
                    raise RecordRejected(_rejection(record, err), record, seq) from exc
                raise PublishError(
                    f"cannot produce to topic {record.topic!r}: {_describe(exc)}"
                ) from exc

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports; raise the first failed delivery."""
        self._producer.poll(timeout)
        self.raise_failure()

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still not acknowledged."""
        remaining = self._producer.flush(timeout)
        return int(remaining)

    def take_rejected(self) -> list[RecordRejected]:
        """Records Kafka refused for what they are, since the last call."""
        out, self._rejected = self._rejected, []
        return out

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            if self._failure is None:
                self._failure = PublishError(f"fatal Kafka producer error: {err.str()}")
        else:
            log.warning("Kafka: %s", err.str())


# Errors about one record itself: other records still go through.
_RECORD_ERRORS = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG_SIZE}
)


def _rejection(record: Record, err: KafkaError) -> str:
    size = len(record.value or b"") + len(record.key or b"")
    return f"Kafka refused a {size}-byte record for topic {record.topic!r}: {err.str()}"


def _describe(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else str(exc)
