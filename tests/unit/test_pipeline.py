"""The pipeline loop with in-memory parts: what gets checkpointed, and when."""

import contextlib
import logging

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.acks import AckTracker
from binlog_tailer.errors import PublishError, PublishInterrupted
from binlog_tailer.mapping.envelope import EnvelopeMapper, EnvelopeOptions
from binlog_tailer.model import Column, RowChange, TableSchema, TxnEnd
from binlog_tailer.pipeline import Pipeline
from binlog_tailer.position import BinlogPosition

SCHEMA = TableSchema("d", "t", (Column("id", FIELD_TYPE.LONG),), ("id",))


class MemoryPublisher:
    """Acks everything on poll, except the record numbers listed in `fail`."""

    def __init__(self, tracker, fail=()):
        self.tracker, self.fail = tracker, set(fail)
        self.pending: list[int] = []
        self.sent: list = []
        self.failure = None

    def publish(self, record, seq, give_up):
        self.sent.append(record)
        self.pending.append(seq)

    def poll(self, timeout=0.0):
        for seq in self.pending:
            if seq in self.fail:
                self.failure = self.failure or PublishError(f"record {seq} refused")
            else:
                self.tracker.ack(seq)
        self.pending.clear()
        if self.failure:
            raise self.failure

    def take_rejected(self):
        return []

    def flush(self, timeout):
        with contextlib.suppress(PublishError):
            self.poll()
        return 0


class MemoryStore:
    def __init__(self):
        self.saved: list[BinlogPosition] = []

    def save(self, p):
        self.saved.append(p)


def row(i):
    return RowChange(SCHEMA, "c", None, {"id": i}, "b.000001", 100 + i, 0, None, 1, 0)


def end(pos):
    return TxnEnd(BinlogPosition("b.000001", pos))


def build(items, fail=()):
    tracker: AckTracker[BinlogPosition] = AckTracker()
    pub = MemoryPublisher(tracker, fail)
    store = MemoryStore()
    p = Pipeline(items, EnvelopeMapper(EnvelopeOptions()), pub, tracker, store, 0.0)
    p.POLL_EVERY = 1  # serve delivery reports after every item: each boundary is observable
    return p, pub, store


def test_checkpoints_only_at_acknowledged_transaction_boundaries():
    p, pub, store = build([row(1), row(2), end(200), row(3), end(300), None])
    p.run()
    assert len(pub.sent) == 3
    assert [s.pos for s in store.saved] == [200, 300]


def test_a_failed_delivery_stops_and_the_checkpoint_never_passes_it():
    # record #2 (row 3) fails: the position may reach 200, never 300 or later
    p, _, store = build([row(1), row(2), end(200), row(3), end(300), row(4), end(400)], fail={2})
    with pytest.raises(PublishError, match="refused"):
        p.run()
    assert store.saved[-1].pos == 200


def test_nothing_captured_still_advances_the_checkpoint():
    p, _, store = build([end(200), None, end(300)])
    p.run()
    assert store.saved[-1].pos == 300


class RejectingPublisher(MemoryPublisher):
    """Kafka refuses every record except dead letters; each refusal comes back from the next
    poll, as librdkafka's delivery reports do."""

    def __init__(self, tracker):
        super().__init__(tracker)
        self.rejected = []

    def publish(self, record, seq, give_up):
        if record.topic == "dlq":
            return super().publish(record, seq, give_up)
        from binlog_tailer.errors import RecordRejected

        self.sent.append(record)
        self.rejected.append(RecordRejected("too large", record, seq))

    def take_rejected(self):
        out, self.rejected = self.rejected, []
        return out


def test_rejected_records_are_dead_lettered_and_only_then_passed_by_the_checkpoint():
    from binlog_tailer.mapping.dead_letter import DeadLetters

    tracker: AckTracker[BinlogPosition] = AckTracker()
    pub = RejectingPublisher(tracker)
    store = MemoryStore()
    p = Pipeline(
        [row(1), end(200), row(2), end(300)],
        EnvelopeMapper(EnvelopeOptions()),
        pub,
        tracker,
        store,
        0.0,
        dead_letters=DeadLetters("dlq"),
    )
    p.run()
    letters = [r for r in pub.sent if r.topic == "dlq"]
    assert len(letters) == 2 and p.dead_lettered == 2
    assert dict(letters[0].headers)["dlq.original_topic"] == "cdc.d.t"
    assert store.saved[-1].pos == 300


def test_without_dead_letters_a_rejected_record_stops_the_pipeline():
    from binlog_tailer.errors import RecordRejected

    tracker: AckTracker[BinlogPosition] = AckTracker()
    store = MemoryStore()
    p = Pipeline(
        [row(1), end(200)],
        EnvelopeMapper(EnvelopeOptions()),
        RejectingPublisher(tracker),
        tracker,
        store,
        0.0,
    )
    with pytest.raises(RecordRejected):
        p.run()
    assert store.saved == []


def test_delivery_reports_are_batched_but_an_idle_tick_serves_them():
    p, _, store = build([row(1), end(200), row(2), end(300), None])
    p.POLL_EVERY = 1000
    p.POLL_INTERVAL = 3600
    p.run()
    assert [s.pos for s in store.saved] == [300]  # one save, at the idle tick


def test_while_the_source_waits_acknowledged_work_is_checkpointed():
    seen = {}

    def source():
        yield row(1)
        yield end(200)
        seen["before"] = list(store.saved)
        p.idle()  # the source waits for its server (BinlogSource.on_idle)
        seen["after"] = list(store.saved)
        yield row(2)

    tracker: AckTracker[BinlogPosition] = AckTracker()
    pub, store = MemoryPublisher(tracker), MemoryStore()
    p = Pipeline(source(), EnvelopeMapper(EnvelopeOptions()), pub, tracker, store, 0.0)
    p.POLL_EVERY, p.POLL_INTERVAL = 10**9, 10**9  # no delivery reports served in the loop
    p.run()
    assert seen == {"before": [], "after": [BinlogPosition("b.000001", 200)]}


class SlowKafka(MemoryPublisher):
    """Kafka acknowledges nothing while the pipeline streams, only when it drains (flush); the
    local queue holds `room` records. A record that finds it full calls `on_full` (where a test
    delivers its signal), then gives up if asked to, else waits: Kafka acknowledges the oldest
    record, which makes room."""

    def __init__(self, tracker, room, on_full=lambda: None):
        super().__init__(tracker)
        self.room, self.on_full, self.waits = room, on_full, 0

    def publish(self, record, seq, give_up):
        while len(self.pending) >= self.room:
            self.on_full()
            if give_up():
                raise PublishInterrupted(record, seq)
            self.waits += 1
            self.tracker.ack(self.pending.pop(0))
        super().publish(record, seq, give_up)

    def poll(self, timeout=0.0):
        pass

    def flush(self, timeout):
        MemoryPublisher.poll(self)
        return 0


def slow_kafka_pipeline(items, room, stop_when_full):
    tracker: AckTracker[BinlogPosition] = AckTracker()
    store = MemoryStore()
    pub = SlowKafka(tracker, room)
    p = Pipeline(items, EnvelopeMapper(EnvelopeOptions()), pub, tracker, store, 0.0)
    p.POLL_EVERY = 1
    if stop_when_full:
        pub.on_full = p.stop  # the signal arrives while a record waits for room
    return p, pub, store


def sent_ids(pub):
    import json

    return [json.loads(r.value)["after"]["id"] for r in pub.sent]


def test_a_stop_ends_a_wait_on_the_full_queue_and_checkpoints_before_that_transaction(caplog):
    items = [row(1), end(200), row(2), row(3), row(4), end(500), row(5), end(600)]
    p, pub, store = slow_kafka_pipeline(items, room=3, stop_when_full=True)
    with caplog.at_level(logging.WARNING):
        p.run()  # returns: what was queued is acknowledged
    assert sent_ids(pub) == [1, 2, 3]  # nothing after the record that found no room
    assert p.records == 3
    assert store.saved[-1].pos == 200  # before the interrupted transaction, never inside it
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "interrupted the transaction of the row at b.000001:104" in warning
    assert "its 2 record(s) sent already included" in warning


def test_without_a_stop_a_full_queue_waits_for_room():
    items = [row(1), end(200), row(2), row(3), row(4), end(500), row(5), end(600)]
    p, pub, store = slow_kafka_pipeline(items, room=3, stop_when_full=False)
    p.run()
    assert sent_ids(pub) == [1, 2, 3, 4, 5]
    assert pub.waits == 2
    assert store.saved[-1].pos == 600


def test_a_stop_while_the_queue_has_room_finishes_the_transaction(caplog):
    """Pipeline.stop alone cuts no transaction short: the source ends at the next boundary."""

    def source(p):
        yield from [row(1), end(200), row(2)]
        p.stop()
        yield from [row(3), end(300)]  # the stopped source ends here

    tracker: AckTracker[BinlogPosition] = AckTracker()
    store = MemoryStore()
    pub = MemoryPublisher(tracker)
    p = Pipeline([], EnvelopeMapper(EnvelopeOptions()), pub, tracker, store, 0.0)
    p.source = source(p)
    with caplog.at_level(logging.WARNING):
        p.run()
    assert sent_ids(pub) == [1, 2, 3]
    assert store.saved[-1].pos == 300
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class NoRoomForDeadLetters(RejectingPublisher):
    """Kafka refuses every data record; a dead letter finds the queue full."""

    def publish(self, record, seq, give_up):
        if record.topic == "dlq":
            if give_up():
                raise PublishInterrupted(record, seq)
            raise AssertionError("a dead letter waits for room past the drain's deadline")
        super().publish(record, seq, give_up)


def test_a_dead_letter_finding_no_room_before_the_drain_deadline_is_not_acknowledged():
    from binlog_tailer.mapping.dead_letter import DeadLetters

    tracker: AckTracker[BinlogPosition] = AckTracker()
    store = MemoryStore()
    p = Pipeline(
        [row(1), end(200)],
        EnvelopeMapper(EnvelopeOptions()),
        NoRoomForDeadLetters(tracker),
        tracker,
        store,
        0.0,
        drain_timeout=0.0,
        dead_letters=DeadLetters("dlq"),
    )
    p.POLL_INTERVAL = 3600  # the refusal comes back while draining
    with pytest.raises(PublishError, match="1 records were not acknowledged"):
        p.run()
    assert store.saved == []
