"""Exactly-once delivery without Kafka: when Kafka transactions commit, what their offset
record names, and what the pipeline aborts."""

import json

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.acks import AckTracker
from binlog_tailer.errors import BadRecord, PublishError
from binlog_tailer.exactly_once import KafkaTransactions
from binlog_tailer.mapping.envelope import EnvelopeMapper, EnvelopeOptions
from binlog_tailer.model import Column, Record, RowChange, TableSchema, TxnEnd
from binlog_tailer.pipeline import Pipeline
from binlog_tailer.position import BinlogPosition, RowRef

SCHEMA = TableSchema("d", "t", (Column("id", FIELD_TYPE.LONG),), ("id",))
START = BinlogPosition("b.000001", 4)


def row(i: int, pos: int = 0) -> RowChange:
    return RowChange(SCHEMA, "c", None, {"id": i}, "b.000001", pos or 100 + i, 0, None, 1, 0)


def end(pos: int) -> TxnEnd:
    return TxnEnd(BinlogPosition("b.000001", pos))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TransactionLog:
    """A transactional publisher in memory: what each commit held, and what was aborted."""

    def __init__(self, fail_commit: bool = False) -> None:
        self.open: list[Record] = []
        self.committed: list[tuple[list[Record], dict]] = []  # (records, offset document)
        self.aborted: list[list[Record]] = []
        self.begun = 0
        self.fail_commit = fail_commit

    def publish(self, record, seq, give_up=None):
        self.open.append(record)

    def poll(self, timeout=0.0):
        pass

    def flush(self, timeout):
        return 0

    def take_rejected(self):
        return []

    def begin(self):
        assert not self.open
        self.begun += 1

    def commit(self, offset: Record, timeout: float) -> None:
        if self.fail_commit:
            self.abort(timeout)
            raise PublishError("scripted: the commit failed")
        self.committed.append((self.open, json.loads(offset.value or b"")))
        self.open = []

    def abort(self, timeout: float) -> None:
        self.aborted.append(self.open)
        self.open = []

    def positions(self) -> list[dict]:
        return [doc["position"] for _, doc in self.committed]


def transactions(log: TransactionLog, clock: Clock, start: BinlogPosition = START, **kw):
    options = {"interval": 0.1, "max_records": 3, "split_records": 5, "commit_timeout": 5.0}
    options["stored"] = start  # a restart: the start is the stored position
    return KafkaTransactions(log, "offsets", "conn", start, clock=clock, **(options | kw))


def test_a_start_elsewhere_than_the_stored_position_is_committed_first():
    log, clock = TransactionLog(), Clock()
    t = transactions(log, clock, stored=None)  # a first run
    t.start(0)
    assert log.positions() == [{"file": "b.000001", "pos": 4, "gtid": None}]
    assert log.committed[0][0] == [] and log.begun == 2
    log2 = TransactionLog()
    transactions(log2, clock).start(0)  # a restart at the stored position
    assert log2.committed == [] and log2.begun == 1


def test_a_transaction_commits_at_a_mysql_commit_once_due_by_size_or_age():
    log, clock = TransactionLog(), Clock()
    t = transactions(log, clock)
    t.begin(0)
    log.open += ["r1", "r2"]
    t.row_done(row(1), 2)
    t.boundary(BinlogPosition("b.000001", 200), 2)  # 2 records, young: not yet
    assert log.committed == []
    log.open += ["r3"]
    t.row_done(row(3), 3)  # 3 records: due, but inside a MySQL transaction
    assert log.committed == []
    t.boundary(BinlogPosition("b.000001", 300), 3)
    assert log.positions() == [{"file": "b.000001", "pos": 300, "gtid": None}]
    assert log.committed[0][0] == ["r1", "r2", "r3"]
    log.open += ["r4"]
    t.row_done(row(4), 4)
    t.boundary(BinlogPosition("b.000001", 400), 4)
    clock.now = 0.1  # age
    t.boundary(BinlogPosition("b.000001", 500), 4)
    assert log.positions()[-1]["pos"] == 500 and log.committed[-1][0] == ["r4"]


def test_idle_ticks_commit_only_between_mysql_transactions():
    log, clock = TransactionLog(), Clock()
    t = transactions(log, clock)
    t.begin(0)
    t.boundary(BinlogPosition("b.000001", 200), 0)  # a transaction of other tables
    t.tick(0)
    assert log.committed == []  # not due yet
    clock.now = 1.0
    log.open.append("r1")
    t.row_done(row(1), 1)  # a MySQL transaction under way
    t.tick(1)
    assert log.committed == []  # committing now would show part of it
    t.boundary(BinlogPosition("b.000001", 300), 1)
    assert log.positions() == [{"file": "b.000001", "pos": 300, "gtid": None}]
    clock.now = 2.0
    t.tick(1)
    assert len(log.committed) == 1  # nothing new: no empty transaction
    t.boundary(BinlogPosition("b.000001", 400), 1)  # committed at once: the age is due
    assert len(log.committed) == 2
    clock.now = 2.05
    t.boundary(BinlogPosition("b.000001", 450), 1)
    t.tick(1)
    assert len(log.committed) == 2  # the position alone moved, not due yet
    clock.now = 2.2
    t.tick(1)
    assert log.positions()[-1]["pos"] == 450 and log.committed[-1][0] == []


def test_a_huge_mysql_transaction_is_split_and_the_offset_names_its_last_row_done():
    log, clock = TransactionLog(), Clock()
    t = transactions(log, clock)
    t.begin(0)
    t.boundary(BinlogPosition("b.000001", 200), 0)
    for i in range(1, 13):
        log.open.append(f"r{i}")
        t.row_done(row(i, pos=1000 + i // 4), i)
    assert [len(records) for records, _ in log.committed] == [5, 5]
    boundary = {"file": "b.000001", "pos": 200, "gtid": None}
    assert log.positions() == [
        boundary | {"done": {"file": "b.000001", "pos": 1001, "row": 0}},
        boundary | {"done": {"file": "b.000001", "pos": 1002, "row": 0}},
    ]
    assert t.splits == 2
    clock.now = 1.0
    t.boundary(BinlogPosition("b.000001", 2000), 12)
    assert log.positions()[-1] == {"file": "b.000001", "pos": 2000, "gtid": None}
    assert sum(len(records) for records, _ in log.committed) == 12  # each record once


def test_a_start_inside_a_split_transaction_keeps_its_done_until_the_transaction_ends():
    start = BinlogPosition("b.000001", 200, done=RowRef("b.000001", 1001, 2))
    log, clock = TransactionLog(), Clock()
    t = transactions(log, clock, start)
    t.begin(0)
    clock.now = 1.0
    t.commit_now(0)
    assert log.committed == []  # nothing new since the start
    assert t.position == start
    log.open.append("r9")
    t.row_done(row(9, pos=1003), 1)
    t.commit_now(1)  # e.g. before the producer is replaced
    assert log.positions()[-1]["done"] == {"file": "b.000001", "pos": 1003, "row": 0}


def test_a_failed_commit_keeps_the_position_committed_before():
    log, clock = TransactionLog(fail_commit=True), Clock()
    t = transactions(log, clock)
    t.begin(0)
    log.open.append("r1")
    t.row_done(row(1), 1)
    clock.now = 1.0
    with pytest.raises(PublishError):
        t.boundary(BinlogPosition("b.000001", 200), 1)
    assert t.committed == START and log.aborted == [["r1"]]


def eos_pipeline(items, log: TransactionLog, clock: Clock, dead_letters=None, **kw):
    t = transactions(log, clock, **kw)
    tracker: AckTracker[BinlogPosition] = AckTracker()
    mapper = EnvelopeMapper(EnvelopeOptions())
    p = Pipeline(items, mapper, log, tracker, None, dead_letters=dead_letters, transactions=t)  # type: ignore[arg-type]
    return p, t


def test_the_pipeline_commits_its_last_position_at_a_clean_end():
    log, clock = TransactionLog(), Clock()
    p, _ = eos_pipeline([row(1), row(2), end(200), row(3), end(300), None], log, clock)
    p.run()
    assert log.positions() == [{"file": "b.000001", "pos": 300, "gtid": None}]
    assert len(log.committed[0][0]) == 3 and log.aborted == []
    assert p.saved == BinlogPosition("b.000001", 300)


def test_an_error_aborts_the_open_transaction_and_keeps_the_last_commit():
    class BadMapper(EnvelopeMapper):
        def map(self, change):
            if change.after["id"] == 4:
                raise BadRecord("invalid_json", "scripted: bad row", None)
            return super().map(change)

    log, clock = TransactionLog(), Clock()
    items = [row(1), end(200), row(2), row(3), end(300), row(4), end(400)]
    t = transactions(log, clock, max_records=1)
    tracker: AckTracker[BinlogPosition] = AckTracker()
    p = Pipeline(items, BadMapper(EnvelopeOptions()), log, tracker, None, transactions=t)  # type: ignore[arg-type]
    with pytest.raises(BadRecord):
        p.run()
    assert log.positions() == [
        {"file": "b.000001", "pos": 200, "gtid": None},
        {"file": "b.000001", "pos": 300, "gtid": None},
    ]
    assert log.aborted == [[]] and p.saved == BinlogPosition("b.000001", 300)


def test_a_transaction_open_for_half_its_timeout_inside_a_mysql_one_is_split():
    log, clock = TransactionLog(), Clock()
    t = transactions(log, clock, max_open=30.0)
    t.begin(0)
    log.open.append("r1")
    t.row_done(row(1), 1)  # then the server goes away; idle ticks follow
    clock.now = 29.0
    t.tick(1)
    assert log.committed == []
    clock.now = 30.0
    t.tick(1)
    assert log.positions() == [
        {
            "file": "b.000001",
            "pos": 4,
            "gtid": None,
            "done": {"file": "b.000001", "pos": 101, "row": 0},
        }
    ]
