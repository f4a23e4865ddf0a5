"""Snapshots' pure parts: stored progress, chunk statements, SELECT values made binlog values,
and the interleaving of chunks with the stream (fakes for the stream and the reader)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymysqlreplication.constants import FIELD_TYPE as T

from binlog_tailer.checkpoint import checkpoint_document, position_from_document
from binlog_tailer.errors import ConfigError, SourceError
from binlog_tailer.model import Column, RowChange, TableSchema, TxnEnd
from binlog_tailer.position import BinlogPosition
from binlog_tailer.snapshot.chunks import (
    ColumnInfo,
    chunk_query,
    normalizers,
    row_image,
    table_schema,
)
from binlog_tailer.snapshot.interleave import SnapshotInterleaver
from binlog_tailer.snapshot.reader import Chunk, Table
from binlog_tailer.snapshot.signals import Signal
from binlog_tailer.snapshot.state import SnapshotState

KEY_VALUES = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.text(),
    st.binary(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(),
    st.dates(),
    st.timedeltas(min_value=dt.timedelta(hours=-838), max_value=dt.timedelta(hours=838)),
)


@given(st.lists(KEY_VALUES, min_size=1, max_size=3), st.integers(0, 10**9))
def test_snapshot_state_survives_the_checkpoint_document(key, rows):
    state = SnapshotState(("db.a", "db.b"), tuple(key), rows)
    position = BinlogPosition("binlog.000003", 1234, snapshot=state)
    doc = checkpoint_document(position)
    assert doc["format"] == 3
    assert position_from_document(doc) == position


def test_a_position_without_snapshot_keeps_its_older_format():
    assert checkpoint_document(BinlogPosition("binlog.000001", 4))["format"] == 1


def test_state_moves_through_chunks_and_tables():
    s = SnapshotState(("d.a", "d.b"))
    s = s.next_chunk((10,), 10).next_chunk((20,), 10)
    assert (s.table, s.after, s.rows) == ("d.a", (20,), 20)
    s2 = s.next_table()
    assert s2 is not None and (s2.table, s2.after, s2.rows) == ("d.b", None, 0)
    assert s2.next_table() is None
    assert "after key [20]" in str(s)


SCHEMA = TableSchema(
    "d", "t", (Column("a", T.LONG), Column("b", T.VARCHAR), Column("f", T.FLOAT)), ("a", "b")
)


def test_chunk_query_reads_after_a_composite_key_in_key_order():
    sql, params = chunk_query(SCHEMA, ("a", "b"), (5, "x"), 100)
    assert sql == (
        "SELECT `a`, `b`, (`f` + 0e0) FROM `d`.`t` WHERE ((`a` > %s) OR (`a` = %s AND `b` > %s))"
        " ORDER BY `a`, `b` LIMIT 100"
    )
    assert params == [5, 5, "x"]
    first, none = chunk_query(SCHEMA, ("a",), None, 7)
    assert "WHERE" not in first and none == [] and first.endswith("ORDER BY `a` LIMIT 7")


def test_names_are_quoted():
    schema = TableSchema("we`ird", "t", (Column("c`1", T.LONG),), ("c`1",))
    sql, _ = chunk_query(schema, ("c`1",), (1,), 1)
    assert "`we``ird`" in sql and "`c``1` > %s" in sql


def test_select_values_become_binlog_values():
    infos = [
        ColumnInfo("id", "int", "int(11)"),
        ColumnInfo("b", "bit", "bit(10)"),
        ColumnInfo("s", "set", "set('a','it''s','c')"),
        ColumnInfo("j", "json", "json"),
        ColumnInfo("d", "datetime", "datetime"),
        ColumnInfo("f", "float", "float"),
        ColumnInfo("m", "decimal", "decimal(5,2)"),
        ColumnInfo("t", "longtext", "longtext"),
    ]
    schema = table_schema("d", "t", infos, ["id"], json_columns={"t"})
    assert [c.type_code for c in schema.columns] == [
        T.LONG, T.BIT, T.SET, T.JSON, T.DATETIME2, T.FLOAT, T.NEWDECIMAL, T.BLOB,
    ]  # fmt: skip
    assert schema.columns[2].set_values == ("a", "it's", "c")
    assert schema.columns[7].is_json
    plan = normalizers(schema, infos)
    row = (1, b"\x02\x85", "a,c", '{"k": [1, 2.5]}', "0000-00-00 00:00:00", 0.10000000149011612,
           decimal.Decimal("1.50"), '{"x": 1}')  # fmt: skip
    image = row_image(schema, plan, row)
    assert image == {
        "id": 1, "b": "1010000101", "s": {"a", "c"}, "j": {"k": [1, 2.5]}, "d": None, "f": 0.1,
        "m": decimal.Decimal("1.50"), "t": '{"x": 1}',
    }  # fmt: skip
    assert row_image(schema, plan, (2,) + (None,) * 7)["s"] is None
    assert row_image(schema, plan, (2, None, "", None, None, None, None, None))["s"] == set()


def test_an_unknown_key_column_is_a_clear_error():
    with pytest.raises(ConfigError, match="has no column nope"):
        table_schema("d", "t", [ColumnInfo("id", "int", "int")], ["nope"])


# ------------------------------------------------------------------ interleaving
ITEMS = TableSchema("d", "items", (Column("id", T.LONG), Column("v", T.LONG)), ("id",))


class FakeStream:
    """Stream items; `at` is how far the binlog was read when each item is taken. A boundary
    (an int: its offset) carries what the interleaver asked the source to carry."""

    def __init__(self, items: list[tuple[int, RowChange | int | None]]) -> None:
        self.items, self.at, self.stopping = items, 0, False
        self.carry_snapshot: SnapshotState | None = None
        self.carry_signals: int | None = None

    def __iter__(self):
        for at, item in self.items:
            self.at = at
            if isinstance(item, int):
                pos = BinlogPosition(
                    "binlog.000001", item, None, None, self.carry_snapshot, self.carry_signals
                )
                yield TxnEnd(pos)
            else:
                yield item

    def read_position(self) -> tuple[str | None, int]:
        return "binlog.000001", self.at


class FakeReader:
    """Chunks of `rows` (id -> v) of d.items, with the high watermark each read reports."""

    def __init__(self, rows: dict[int, int], highs: list[int], size: int) -> None:
        self.rows, self.highs, self.size, self.reads = rows, highs, size, 0
        self.wheres: list = []
        self.table_ = Table(ITEMS, ("id",), [None, None], len(rows))

    def table(self, name: str) -> Table:
        return self.table_

    def read(self, name, after, where=None) -> Chunk:
        self.wheres.append(where)
        ids = sorted(i for i in self.rows if after is None or i > after[0])[: self.size]
        high = self.highs[min(self.reads, len(self.highs) - 1)]
        self.reads += 1
        images = [{"id": i, "v": self.rows[i]} for i in ids]
        keys = [(i,) for i in ids]
        return Chunk(self.table_, images, keys, ("binlog.000001", high), len(ids) < self.size, 0.0)

    def close(self) -> None:
        pass


def change(op: str, i: int, v: int) -> RowChange:
    before = {"id": i, "v": v - 1} if op != "c" else None
    after = {"id": i, "v": v} if op != "d" else None
    return RowChange(ITEMS, op, before, after, "binlog.000001", 100, 0, None, 1, 0)


def end(pos: int) -> int:
    return pos


ITEMS_STATE = SnapshotState(("d.items",))


def run(stream: FakeStream, reader: FakeReader, signals=None, state=ITEMS_STATE):
    start = BinlogPosition("binlog.000001", 4, snapshot=state)
    stream.carry_snapshot = state
    snap = SnapshotInterleaver(stream, reader, start, signals)  # type: ignore[arg-type]
    return list(snap)


def test_a_chunk_waits_for_its_high_watermark_and_streamed_keys_win():
    reader = FakeReader({1: 10, 2: 20, 3: 30}, highs=[300], size=10)
    stream = FakeStream([
        (150, end(150)),  # the chunk is read here; its high watermark is 300
        (200, change("u", 2, 21)),  # the stream changes key 2 inside the window
        (250, end(250)),  # not yet at 300: the chunk waits
        (300, end(300)),  # there: published without key 2
        (400, change("u", 3, 31)),
        (400, end(400)),
    ])  # fmt: skip
    out = run(stream, reader)
    kinds = [(x.op, x.after["id"]) if isinstance(x, RowChange) else type(x).__name__ for x in out]
    assert kinds == [
        "TxnEnd", ("u", 2), "TxnEnd", "TxnEnd", ("r", 1), ("r", 3), "TxnEnd", ("u", 3), "TxnEnd",
    ]  # fmt: skip
    states = [x.position.snapshot for x in out if isinstance(x, TxnEnd)]
    assert states[0] == SnapshotState(("d.items",))
    assert states[3] is None  # the only chunk was the last: done
    assert states[-1] is None


def test_progress_rides_on_every_boundary_until_the_table_is_read():
    reader = FakeReader({i: i for i in range(1, 8)}, highs=[10], size=3)
    stream = FakeStream([(10, end(10)), (20, end(20))])
    out = run(stream, reader)
    positions = [x.position for x in out if isinstance(x, TxnEnd)]
    snaps = [p.snapshot for p in positions]
    assert snaps[1] == SnapshotState(("d.items",), (3,), 3)
    assert snaps[2] == SnapshotState(("d.items",), (6,), 6)
    assert snaps[3] is None and snaps[-1] is None
    rows = [x.after["id"] for x in out if isinstance(x, RowChange)]
    assert rows == [1, 2, 3, 4, 5, 6, 7]
    assert all(p.pos == 10 for p in positions[:4])  # published at the stream's boundary


def test_a_key_the_stream_changed_just_before_the_read_is_dropped_too():
    """A transaction may be streamed a moment before its commit is visible to the SELECT."""
    reader = FakeReader({1: 10, 2: 20}, highs=[50], size=10)
    stream = FakeStream([(40, change("d", 1, 10)), (50, end(50))])
    out = run(stream, reader)
    assert [x.after["id"] for x in out if isinstance(x, RowChange) and x.op == "r"] == [2]


def test_nothing_is_read_once_the_stream_is_stopping():
    reader = FakeReader({1: 10}, highs=[5], size=10)
    stream = FakeStream([(5, end(5))])
    stream.stopping = True
    out = run(stream, reader)
    assert reader.reads == 0 and len(out) == 1
    assert out[0].position.snapshot == SnapshotState(("d.items",))


# ------------------------------------------------------------------ signals
class FakeSignals:
    def __init__(self, start: int = 0) -> None:
        self.pending: deque[tuple[int, Signal]] = deque()
        self.start = start

    def close(self) -> None:
        pass


def test_a_snapshot_signal_starts_a_snapshot_and_its_offset_rides_on_every_boundary():
    reader = FakeReader({1: 10, 2: 20}, highs=[20], size=10)
    signals = FakeSignals(start=5)
    signals.pending.append((5, Signal("snapshot", ("d.items",), "v > 0")))
    stream = FakeStream([(10, end(10)), (20, end(20)), (30, end(30))])
    out = run(stream, reader, signals, state=None)
    boundaries = [x.position for x in out if isinstance(x, TxnEnd)]
    assert boundaries[0].signals is None or boundaries[0].signals == 5
    applied = boundaries[1]
    assert applied.signals == 6 and applied.snapshot == SnapshotState.of(("d.items",), "v > 0")
    assert reader.wheres == ["v > 0"]
    assert [x.after["id"] for x in out if isinstance(x, RowChange)] == [1, 2]
    assert boundaries[-1].signals == 6 and boundaries[-1].snapshot is None


def test_a_stop_signal_ends_the_running_snapshot():
    reader = FakeReader({i: i for i in range(1, 100)}, highs=[10**6], size=10)  # never caught up
    signals = FakeSignals(start=0)
    stream = FakeStream([(10, end(10)), (20, end(20))])
    signals.pending.append((0, Signal("stop")))
    out = run(stream, reader, signals)
    last = [x.position for x in out if isinstance(x, TxnEnd)][-1]
    assert last.snapshot is None and last.signals == 1
    assert not any(isinstance(x, RowChange) for x in out)


def test_a_signal_for_a_table_not_captured_is_skipped_but_consumed():
    reader = FakeReader({1: 1}, highs=[10], size=10)
    signals = FakeSignals(start=3)
    signals.pending.append((3, Signal("snapshot", ("other.t",))))
    start = BinlogPosition("binlog.000001", 4)
    stream = FakeStream([(10, end(10)), (20, end(20))])
    snap = SnapshotInterleaver(
        stream,
        reader,
        start,
        signals,
        captured=lambda db, t: db == "d",  # type: ignore[arg-type]
    )
    out = list(snap)
    last = [x.position for x in out if isinstance(x, TxnEnd)][-1]
    assert last.snapshot is None and last.signals == 4 and reader.reads == 0


def test_signals_round_trip_and_refuse_what_they_cannot_be():
    sig = Signal("snapshot", ("a.b", "c.d"), "x > 1")
    assert Signal.from_json(sig.to_json()) == sig
    stop = Signal("stop")
    assert Signal.from_json(stop.to_json()) == stop
    for bad in (b"{", b'{"action": "jump"}', b'{"action": "snapshot", "tables": ["nodot"]}'):
        with pytest.raises(ValueError):
            Signal.from_json(bad)


def test_where_conditions_follow_their_tables():
    s = SnapshotState.of(("d.a",), "id > 5").with_tables(("d.b", "d.a"), None)
    assert s.tables == ("d.a", "d.b") and s.condition() == "id > 5"
    nxt = s.next_table()
    assert nxt is not None and nxt.table == "d.b" and nxt.condition() is None
    doc = position_from_document(checkpoint_document(BinlogPosition("f.000001", 4, snapshot=s)))
    assert doc.snapshot == s


def test_a_condition_with_percent_signs_survives_the_parameters():
    sql, params = chunk_query(SCHEMA, ("a",), (1,), 5, "b LIKE 'x%'")
    assert "(b LIKE 'x%%')" in sql and sql % tuple(params) is not None


def test_a_table_that_cannot_be_read_is_skipped_with_an_error_not_a_stop():
    class Failing(FakeReader):
        def read(self, name, after, where=None):
            if where == "bad":
                raise SourceError("snapshot: cannot read d.items: syntax")
            return super().read(name, after, where)

    reader = Failing({1: 1}, highs=[10], size=10)
    state = SnapshotState(("d.items", "d.items2"), where=(("d.items", "bad"),))
    out = run(FakeStream([(10, end(10)), (20, end(20))]), reader, state=state)
    snaps = [x.position.snapshot for x in out if isinstance(x, TxnEnd)]
    assert snaps[1] == SnapshotState(("d.items2",))
    assert [x.after["id"] for x in out if isinstance(x, RowChange)] == [1]  # of d.items2
