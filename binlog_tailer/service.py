"""Wiring: builds the pipeline's concrete parts from the settings (the only place that does)."""

from __future__ import annotations

from collections.abc import Iterable

from binlog_tailer.acks import AckTracker
from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.checkpoint.file import FileCheckpointStore
from binlog_tailer.checkpoint.kafka import KafkaCheckpointStore
from binlog_tailer.exactly_once import KafkaTransactions
from binlog_tailer.filtering import TableFilter
from binlog_tailer.heartbeat import Heartbeats
from binlog_tailer.mapping.dead_letter import DeadLetters
from binlog_tailer.mapping.envelope import EnvelopeMapper, EnvelopeOptions
from binlog_tailer.mapping.outbox import OutboxMapper, OutboxOptions
from binlog_tailer.mapping.router import RoutingMapper
from binlog_tailer.mapping.transactions import TransactionMetadata
from binlog_tailer.model import RowChange, TxnEnd
from binlog_tailer.pipeline import Pipeline
from binlog_tailer.position import BinlogPosition
from binlog_tailer.publisher import KafkaPublisher
from binlog_tailer.relay.relay import Relay
from binlog_tailer.relay.table import RelayTable
from binlog_tailer.settings import OutboxSettings, Settings
from binlog_tailer.snapshot.interleave import SnapshotInterleaver
from binlog_tailer.snapshot.reader import ChunkReader
from binlog_tailer.snapshot.signals import SignalListener
from binlog_tailer.source import BinlogSource
from binlog_tailer.topics import TopicCreator, TopicSpec, create_topic


def checkpoint_store(settings: Settings) -> CheckpointStore:
    cp = settings.checkpoint
    if cp.store == "kafka":
        return KafkaCheckpointStore(
            settings.kafka, cp.topic, settings.connector_name, cp.timeout_seconds
        )
    return FileCheckpointStore(cp.path)


def outbox_options(o: OutboxSettings) -> OutboxOptions:
    return OutboxOptions(
        id_column=o.id_column,
        aggregate_type_column=o.aggregate_type_column,
        aggregate_id_column=o.aggregate_id_column,
        event_type_column=o.event_type_column,
        payload_column=o.payload_column,
        timestamp_column=o.timestamp_column,
        shard_key_column=o.shard_key_column,
        header_columns=tuple(o.header_columns),
        topic_template=o.topic_template,
        allowed_topics=tuple(o.allowed_topics),
        payload_format=o.payload_format,
        envelope=o.envelope,
        on_update=o.on_update,
    )


def new_publisher(settings: Settings) -> tuple[KafkaPublisher, AckTracker[BinlogPosition]]:
    """The publisher and the tracker of its acknowledgements. Exactly-once: its producer is
    transactional and registered, so an older instance of this connector is fenced (and its
    open transaction finished) before the position is read."""
    tracker: AckTracker[BinlogPosition] = AckTracker()
    eos = settings.delivery == "exactly_once"
    topics = None
    if settings.topics.create:
        topics = TopicCreator(
            settings.topics,
            lambda: publisher.admin(),
            TableFilter(settings.outbox.tables),
            timeout=settings.kafka.delivery_timeout_ms / 1000,
        )
    publisher = KafkaPublisher(
        settings.kafka,
        on_ack=tracker.ack,
        transactional_id=settings.transactional_id if eos else None,
        transaction_timeout_ms=settings.exactly_once.transaction_timeout_ms,
        name=settings.connector_name,
        topics=topics,
    )
    publisher.check_reachable()
    if eos:
        publisher.init_transactions(settings.checkpoint.timeout_seconds)
    return publisher, tracker


# One long function on purpose: the only place that wires every part from the settings,
# read top to bottom in the order the parts depend on each other.
def build(
    settings: Settings,
    position: BinlogPosition,
    store: CheckpointStore,
    made: tuple[KafkaPublisher, AckTracker[BinlogPosition]] | None = None,
    stored: BinlogPosition | None = None,
) -> tuple[Pipeline, BinlogSource]:
    """The pipeline and its source, starting at `position`; `made`: from `new_publisher`
    (called here when not given); `stored`: the position in the store (exactly-once commits
    `position` first when it differs)."""
    publisher, tracker = made or new_publisher(settings)
    include, exclude = settings.captured_tables()
    mysql = settings.mysql
    if publisher.transactional:
        # The open Kafka transaction is committed at the source's ticks: while the server is
        # idle they are its heartbeats, so these come at the commit interval at least.
        interval = settings.exactly_once.transaction_interval_ms / 1000
        heartbeat = min(mysql.heartbeat_seconds, max(interval, 0.01))
        mysql = mysql.model_copy(update={"heartbeat_seconds": heartbeat})
    source = BinlogSource(mysql, position, TableFilter(include, exclude))
    items: Iterable[RowChange | TxnEnd | None] = source
    signals = signal_listener(settings, position, publisher)
    snapshot = None
    if signals is not None or position.snapshot is not None:
        snap = settings.snapshot
        reader = ChunkReader(settings.mysql, snap.chunk_size, snap.keys)
        captured = TableFilter(include, [*exclude, *settings.outbox.tables])
        items = snapshot = SnapshotInterleaver(
            source, reader, position, signals, captured, settings.progress_log_seconds or 10.0
        )
    cap = settings.capture
    meta = None
    if settings.transaction_topic is not None:
        meta = TransactionMetadata(settings.transaction_topic, position)
    data = EnvelopeMapper(
        EnvelopeOptions(cap.topic_prefix, cap.topic_template, cap.tombstones), meta
    )
    outbox = None
    if settings.outbox.tables:
        outbox = OutboxMapper(outbox_options(settings.outbox), meta)
    heartbeats = None
    if settings.heartbeat_topic is not None:
        heartbeats = Heartbeats(
            settings.heartbeat_topic,
            settings.connector_name,
            settings.heartbeat.interval_seconds,
            position,
        )
    mapper = RoutingMapper(TableFilter(settings.outbox.tables), outbox, data)
    dl = settings.dead_letter
    dead_letters = DeadLetters(dl.topic, dl.max_value_bytes) if dl.mode == "dead_letter" else None
    transactions = None
    if publisher.transactional:
        assert isinstance(store, KafkaCheckpointStore), "exactly-once needs the Kafka store"
        store.prepare()
        eo = settings.exactly_once
        transactions = KafkaTransactions(
            publisher,
            store.topic,
            store.name,
            position,
            interval=eo.transaction_interval_ms / 1000,
            max_records=eo.transaction_max_records,
            split_records=eo.split_records,
            commit_timeout=settings.kafka.delivery_timeout_ms / 1000,
            stored=stored,
            max_open=eo.transaction_timeout_ms / 2000,
        )
    pipeline = Pipeline(
        items,
        mapper,
        publisher,
        tracker,
        store,
        settings.checkpoint.interval_seconds,
        # a clean stop waits as long as Kafka may take to acknowledge (or fail) a record
        drain_timeout=settings.kafka.delivery_timeout_ms / 1000 + 5,
        dead_letters=dead_letters,
        transactions=transactions,
        transaction_metadata=meta,
        heartbeats=heartbeats,
    )
    if transactions is not None:
        publisher.before_new_producer = lambda: transactions.commit_now(pipeline.records)
    pipeline.snapshot = snapshot
    source.on_idle = pipeline.idle
    publisher.on_latency = pipeline.stats.latency.observe
    return pipeline, source


def signal_listener(
    settings: Settings, position: BinlogPosition, publisher: KafkaPublisher
) -> SignalListener | None:
    """The reader of snapshot signals (None: on-demand snapshots are off), its topic created
    when missing."""
    topic = settings.signal_topic
    if topic is None:
        return None
    if settings.topics.create:
        spec = TopicSpec(1, settings.topics.replication_factor)
        timeout = settings.kafka.delivery_timeout_ms / 1000
        create_topic(publisher.admin(), topic, spec, timeout, "snapshot signals")
    listener = SignalListener(settings.kafka, topic, settings.connector_name, position.signals)
    listener.start_reading()
    return listener


def relay_tables(settings: Settings) -> list[RelayTable]:
    """The outbox tables the polling relay reads (outbox.tables names them: db.table)."""
    r = settings.relay
    options = outbox_options(settings.outbox)
    sent = r.sent_column if r.after_publish == "mark" else None
    tables = []
    for name in settings.outbox.tables:
        db, table = name.split(".", 1)
        tables.append(RelayTable(db, table, options, r.sequence_column, sent))
    return tables


def build_relay(settings: Settings) -> Relay:
    """The polling relay (outbox.source = poll): the binlog path's mapper, dead letters and
    publisher over rows read with SELECT."""
    publisher, _ = new_publisher(settings)
    dl = settings.dead_letter
    dead_letters = DeadLetters(dl.topic, dl.max_value_bytes) if dl.mode == "dead_letter" else None
    relay = Relay(
        settings.mysql,
        settings.relay,
        relay_tables(settings),
        OutboxMapper(outbox_options(settings.outbox)),
        publisher,
        dead_letters,
        settings.connector_name,
        # as long as Kafka may take to acknowledge (or fail) a record
        ack_timeout=settings.kafka.delivery_timeout_ms / 1000 + 5,
    )
    publisher.on_latency = lambda seconds: None
    return relay
