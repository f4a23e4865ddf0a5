"""Transaction metadata (BEGIN/END records, transaction blocks) and heartbeats, in memory."""

import json

from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.acks import AckTracker
from binlog_tailer.heartbeat import Heartbeats
from binlog_tailer.mapping.envelope import EnvelopeMapper, EnvelopeOptions
from binlog_tailer.mapping.outbox import OutboxMapper, OutboxOptions
from binlog_tailer.mapping.router import RoutingMapper
from binlog_tailer.mapping.transactions import TransactionMetadata
from binlog_tailer.model import Column, RowChange, TableSchema, TxnEnd
from binlog_tailer.pipeline import Pipeline
from binlog_tailer.position import BinlogPosition, MariadbGtidPos
from tests.unit.test_pipeline import MemoryPublisher, MemoryStore

A = TableSchema("shop", "a", (Column("id", FIELD_TYPE.LONG),), ("id",))
B = TableSchema("shop", "b", (Column("id", FIELD_TYPE.LONG),), ("id",))
OUTBOX = TableSchema(
    "shop",
    "outbox",
    tuple(
        Column(n, FIELD_TYPE.VARCHAR)
        for n in ("id", "aggregate_type", "aggregate_id", "event_type", "payload")
    ),
    ("id",),
)
START = BinlogPosition("b.000001", 100)


def change(schema, i, gtid=None, op="c", ts=1_000):
    after = {"id": i} if op != "d" else None
    before = {"id": i} if op != "c" else None
    return RowChange(schema, op, before, after, "b.000001", 200 + i, 0, gtid, 1, ts)


def outbox_row(i, gtid=None):
    row = {"id": f"e{i}", "aggregate_type": "order", "aggregate_id": "7", "event_type": "X",
           "payload": '{"n": 1}'}  # fmt: skip
    return RowChange(OUTBOX, "c", None, row, "b.000001", 300 + i, 0, gtid, 1, 2_000)


def end(pos):
    return TxnEnd(BinlogPosition("b.000001", pos))


def test_blocks_count_per_transaction_and_per_table_and_end_sums_them():
    meta = TransactionMetadata("p.transaction", START)
    mapper = EnvelopeMapper(EnvelopeOptions(), meta)
    blocks = []
    for c in (change(A, 1, "0-1-5"), change(B, 2, "0-1-5"), change(A, 3, "0-1-5")):
        blocks += [json.loads(r.value)["transaction"] for r in mapper.map(c)]
    assert blocks == [
        {"id": "0-1-5", "total_order": 1, "data_collection_order": 1},
        {"id": "0-1-5", "total_order": 2, "data_collection_order": 1},
        {"id": "0-1-5", "total_order": 3, "data_collection_order": 2},
    ]
    begin = meta.begin()
    assert begin is not None and meta.begin() is None  # once per transaction
    assert json.loads(begin.key) == {"id": "0-1-5"}
    assert json.loads(begin.value) == {
        "status": "BEGIN", "id": "0-1-5", "ts_ms": 1000, "event_count": None,
        "data_collections": None,
    }  # fmt: skip
    done = meta.end(BinlogPosition("b.000001", 900))
    assert done is not None and done.topic == "p.transaction" and done.key == begin.key
    assert json.loads(done.value) == {
        "status": "END", "id": "0-1-5", "ts_ms": 1000, "event_count": 3,
        "data_collections": [
            {"data_collection": "shop.a", "event_count": 2},
            {"data_collection": "shop.b", "event_count": 1},
        ],
    }  # fmt: skip
    # the next transaction counts from 1 again
    (record,) = mapper.map(change(A, 4, "0-1-6"))
    assert json.loads(record.value)["transaction"] == {
        "id": "0-1-6", "total_order": 1, "data_collection_order": 1,
    }  # fmt: skip


def test_without_a_gtid_the_id_is_the_boundary_before_the_transaction():
    meta = TransactionMetadata("t", START)
    meta.order(change(A, 1))
    assert meta.current == "b.000001:100"
    meta.end(BinlogPosition("b.000002", 4))
    meta.order(change(A, 2))
    assert meta.current == "b.000002:4"
    meta.end(BinlogPosition("b.000002", 500))
    by_gtid = TransactionMetadata("t", BinlogPosition(gtid=MariadbGtidPos.parse("0-1-9")))
    by_gtid.order(change(A, 1))
    assert by_gtid.current == "0-1-9"


def test_a_transaction_without_records_has_no_end_and_tombstones_are_not_counted():
    meta = TransactionMetadata("t", START)
    assert meta.begin() is None
    assert meta.end(BinlogPosition("b.000001", 300)) is None
    mapper = EnvelopeMapper(EnvelopeOptions(tombstones=True), meta)
    records = mapper.map(change(A, 1, op="d"))
    assert [r.value is None for r in records] == [False, True]
    done = meta.end(BinlogPosition("b.000001", 400))
    assert done is not None and json.loads(done.value)["event_count"] == 1


def test_outbox_records_carry_the_transaction_in_headers():
    meta = TransactionMetadata("t", START)
    mapper = OutboxMapper(OutboxOptions(timestamp_column=None), meta)
    r1, r2 = mapper.map(outbox_row(1, "0-1-7")) + mapper.map(outbox_row(2, "0-1-7"))
    assert [h for h in r2.headers if h[0].startswith("transaction")] == [
        ("transaction_id", "0-1-7"),
        ("transaction_total_order", "2"),
        ("transaction_data_collection_order", "2"),
    ]
    assert ("transaction_total_order", "1") in r1.headers
    assert b'"transaction"' not in (r1.value or b"")  # the payload stays as stored


def test_without_metadata_records_have_no_transaction_block():
    (record,) = EnvelopeMapper(EnvelopeOptions()).map(change(A, 1, "0-1-5"))
    assert "transaction" not in json.loads(record.value)


def _pipeline(items, meta=None, heartbeats=None):
    tracker: AckTracker[BinlogPosition] = AckTracker()
    pub = MemoryPublisher(tracker)
    store = MemoryStore()
    is_outbox = lambda db, table: table == "outbox"  # noqa: E731
    mapper = RoutingMapper(
        is_outbox, OutboxMapper(OutboxOptions(timestamp_column=None), meta),
        EnvelopeMapper(EnvelopeOptions(), meta),
    )  # fmt: skip
    p = Pipeline(items, mapper, pub, tracker, store, 0.0, transaction_metadata=meta,
                 heartbeats=heartbeats)  # fmt: skip
    p.POLL_EVERY = 1
    return p, pub, store


def test_pipeline_publishes_begin_before_and_end_after_each_transaction_with_records():
    items = [
        change(A, 1, "0-1-1"), outbox_row(2, "0-1-1"), change(B, 3, "0-1-1"), end(500),
        end(600),  # a transaction of other tables: nothing
        change(A, 4, "0-1-3"), end(700), None,
    ]  # fmt: skip
    meta = TransactionMetadata("tx", START)
    p, pub, store = _pipeline(items, meta)
    p.run()
    kinds = [json.loads(r.value)["status"] if r.topic == "tx" else r.topic for r in pub.sent]
    assert kinds == ["BEGIN", "cdc.shop.a", "outbox.event.order", "cdc.shop.b", "END",
                     "BEGIN", "cdc.shop.a", "END"]  # fmt: skip
    assert json.loads(pub.sent[4].value)["event_count"] == 3
    assert [s.pos for s in store.saved][-1] == 700


def test_the_end_record_holds_its_transactions_position_back_until_acknowledged():
    items = [change(A, 1, "0-1-1"), end(500), None]
    meta = TransactionMetadata("tx", START)
    p, pub, store = _pipeline(items, meta)
    end_seq = 2  # BEGIN 0, the row 1, END 2
    pub.fail = {end_seq}
    try:
        p.run()
    except Exception as exc:  # the failed END stops the pipeline
        assert "record 2" in str(exc)
    else:
        raise AssertionError("a failed END record must stop the pipeline")
    assert all(s.pos != 500 for s in store.saved)


def test_heartbeats_only_after_an_interval_without_records():
    hb = Heartbeats("hb", "shop-cdc", 5.0, START, wall_clock=lambda: 1234.5)
    assert hb.tick(0, 100.0) is None  # first look
    assert hb.tick(0, 104.9) is None
    record = hb.tick(0, 105.0)
    assert record is not None and record.topic == "hb"
    assert json.loads(record.key) == {"server": "shop-cdc"}
    assert json.loads(record.value) == {
        "ts_ms": 1234500, "position": {"file": "b.000001", "pos": 100, "gtid": None},
    }  # fmt: skip
    assert hb.tick(1, 106.0) is None  # the heartbeat itself was published
    assert hb.tick(1, 109.9) is None
    assert hb.tick(1, 110.0) is not None
    assert hb.tick(7, 120.0) is None  # records flowed: the interval starts again
    assert hb.tick(7, 124.0) is None
    assert hb.sent == 2


def test_pipeline_heartbeats_report_the_last_boundary_and_register_no_position():
    items = [change(A, 1, "0-1-1"), end(500), end(600), None, None, None]
    hb = Heartbeats("hb", "n", 0.0, START)
    p, pub, store = _pipeline(items, heartbeats=hb)
    p.run()
    beats = [json.loads(r.value)["position"]["pos"] for r in pub.sent if r.topic == "hb"]
    assert beats == sorted(beats) and beats[-1] == 600 and 100 not in beats
    assert {s.pos for s in store.saved} <= {500, 600} and store.saved[-1].pos == 600


def test_exactly_once_commits_begin_rows_and_end_together_and_heartbeats_while_idle():
    from tests.unit.test_exactly_once import Clock, TransactionLog, transactions

    log, clock = TransactionLog(), Clock()
    txns = transactions(log, clock, start=START, interval=0.0)
    meta = TransactionMetadata("tx", START)
    hb = Heartbeats("hb", "n", 0.0, START)
    tracker: AckTracker[BinlogPosition] = AckTracker()
    items = [change(A, 1, "0-1-1"), change(B, 2, "0-1-1"), end(500), None, None]
    p = Pipeline(items, EnvelopeMapper(EnvelopeOptions(), meta), log, tracker, MemoryStore(),
                 transactions=txns, transaction_metadata=meta, heartbeats=hb)  # fmt: skip
    p.POLL_EVERY = 1
    p.run()
    assert log.open == [] and log.aborted == []

    def kind(r):
        return json.loads(r.value)["status"] if r.topic == "tx" else r.topic

    batches = [[kind(r) for r in records] for records, _ in log.committed if records]
    assert ["BEGIN", "cdc.shop.a", "cdc.shop.b", "END"] in batches
    assert ["hb"] in batches  # committed while idle, between MySQL transactions
    assert all(doc["position"]["pos"] in (100, 500) for _, doc in log.committed)
