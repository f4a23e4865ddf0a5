"""The pipeline loop with in-memory parts: what gets checkpointed, and when."""

import contextlib

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.acks import AckTracker
from binlog_tailer.errors import PublishError
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

    def publish(self, record, seq):
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

    def publish(self, record, seq):
        if record.topic == "dlq":
            return super().publish(record, seq)
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
