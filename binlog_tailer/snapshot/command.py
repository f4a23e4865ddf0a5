"""`binlog-tailer snapshot`: ask the running service for a snapshot, stop one, show progress."""

from __future__ import annotations

from confluent_kafka import KafkaException, TopicPartition

from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.errors import BinlogTailerError, ConfigError
from binlog_tailer.filtering import TableFilter
from binlog_tailer.settings import Settings
from binlog_tailer.snapshot.reader import ChunkReader
from binlog_tailer.snapshot.signals import Signal, check_tables, send


def _topic(settings: Settings) -> str:
    topic = settings.signal_topic
    if topic is None:
        raise ConfigError(f"on-demand snapshots are off: {settings.signals_off()}")
    return topic


def request(settings: Settings, action: str, tables: tuple[str, ...], where: str | None) -> str:
    """Send a signal (its tables checked first); what was sent, for the terminal."""
    topic = _topic(settings)
    if where is not None and not where.strip():
        raise ConfigError("snapshot --where: an empty condition")
    if action == "snapshot":
        tables = check_tables(list(tables))
        _check_readable(settings, tables, where)
    signal = Signal(action, tables, where)
    if settings.topics.create:
        _ensure_topic(settings, topic)
    offset = send(
        settings.kafka, topic, settings.connector_name, signal, settings.checkpoint.timeout_seconds
    )
    what = (
        f"snapshot of {', '.join(tables)}" + (f" where {where}" if where else "")
        if action == "snapshot"
        else "stop of the running snapshot"
    )
    return (
        f"requested the {what} (signal {signal.id}, offset {offset} of {topic}); the running"
        " service applies it at its next transaction boundary: follow it with"
        " 'binlog-tailer snapshot status'"
    )


def _check_readable(settings: Settings, tables: tuple[str, ...], where: str | None) -> None:
    include, exclude = settings.captured_tables()
    captured = TableFilter(include, [*exclude, *settings.outbox.tables])
    missed = [t for t in tables if not captured(*t.split("."))]
    if missed:
        raise ConfigError(
            f"snapshot: {', '.join(missed)} not captured (capture.include / capture.exclude);"
            " a snapshot reads captured data tables only"
        )
    snap = settings.snapshot
    reader = ChunkReader(settings.mysql, snap.chunk_size, snap.keys)
    try:
        for t in tables:
            reader.table(t)  # exists, has a key to read it by
            if where is not None:
                reader.check_condition(t, where)
    finally:
        reader.close()


def _ensure_topic(settings: Settings, topic: str) -> None:
    from binlog_tailer.publisher import KafkaPublisher
    from binlog_tailer.topics import TopicSpec, create_topic

    publisher = KafkaPublisher(settings.kafka, on_ack=lambda seq: None)
    try:
        spec = TopicSpec(1, settings.topics.replication_factor)
        create_topic(publisher.admin(), topic, spec, settings.checkpoint.timeout_seconds)
    except KafkaException as exc:
        raise BinlogTailerError(f"cannot reach Kafka to create {topic}: {exc}") from exc


def status(settings: Settings, store: CheckpointStore) -> str:
    """The stored snapshot progress, and signals not yet applied."""
    position = store.load()
    lines = []
    state = position.snapshot if position is not None else None
    if state is None:
        lines.append("no snapshot running")
    else:
        lines.append(f"running: {state}, {state.rows:,} rows of it read")
        if len(state.tables) > 1:
            lines.append(f"then: {', '.join(state.tables[1:])}")
    waiting = _signals_waiting(settings, position.signals if position is not None else None)
    if waiting:
        lines.append(f"{waiting} signal(s) sent, not yet applied (is the service running?)")
    return "\n".join(lines)


def _signals_waiting(settings: Settings, applied: int | None) -> int:
    topic = settings.signal_topic
    if topic is None or applied is None:
        return 0
    from confluent_kafka import Consumer

    from binlog_tailer.publisher import connection_config

    consumer = Consumer(connection_config(settings.kafka) | {"group.id": "binlog-tailer.status"})
    try:
        _, high = consumer.get_watermark_offsets(
            TopicPartition(topic, 0), timeout=settings.checkpoint.timeout_seconds
        )
    except KafkaException:
        return 0
    finally:
        consumer.close()
    return max(0, int(high) - applied)
