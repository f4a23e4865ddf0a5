"""BinlogSource's transaction grouping and owned reconnect, over a scripted binlog.

The events are real binlog bytes (built here: header + body, MariaDB flavour, no checksum);
the stream is a list, so a connection loss can be placed exactly inside a transaction.
"""

import struct
from collections.abc import Sequence

import pytest

from binlog_tailer.binlog.protocol import ConnectionLost
from binlog_tailer.model import RowChange, TxnEnd
from binlog_tailer.position import BinlogPosition, RowRef
from binlog_tailer.settings import MysqlSettings
from binlog_tailer.source import BinlogSource

FILE = "binlog.000001"
LONG = 3  # FIELD_TYPE.LONG


def event(etype: int, start: int, end: int, body: bytes) -> bytes:
    header = struct.pack("<IBIIIH", 1_700_000_000, etype, 1, end - start, end, 0)
    return b"\x00" + header + body


def rotate(pos):
    return event(4, 0, 0, struct.pack("<Q", pos) + FILE.encode())


def gtid(start, end, seq, standalone=False):
    return event(162, start, end, struct.pack("<QIB", seq, 0, 1 if standalone else 0))


def query(start, end, text):
    return event(2, start, end, struct.pack("<IIBHH", 1, 0, 2, 0, 0) + b"db\x00" + text.encode())


def xid(start, end):
    return event(16, start, end, struct.pack("<Q", 7))


def table_map(start, end, table_id, table, named=True):
    name = b"id"
    optional = bytes([4, len(name) + 1, len(name)]) + name if named else b""  # COLUMN_NAME
    optional += bytes([8, 1, 0])  # SIMPLE_PRIMARY_KEY: column 0
    body = (
        struct.pack("<IHH", table_id, 0, 0)  # 6-byte table id, flags
        + bytes([2])
        + b"db\x00"
        + bytes([len(table)])
        + table.encode()
        + b"\x00"
        + bytes([1, LONG, 0])  # one column: LONG, no metadata
        + b"\x00"  # nullability bitmap
        + optional
    )
    return event(19, start, end, body)


def rows(start, end, table_id, ids):
    body = struct.pack("<IH", table_id, 0) + struct.pack("<H", 0) + bytes([1, 0b1])
    for i in ids:
        body += b"\x00" + struct.pack("<i", i)
    return event(23, start, end, body)


def txn(start, seq, parts):
    """GTID, BEGIN, (table map + rows) per part, XID; returns (events, end position).

    Tables named "skipped" (not captured) come without column names in their table map."""
    out, pos = [gtid(start, start + 50, seq), query(start + 50, start + 100, "BEGIN")], start + 100
    for part in parts:
        if isinstance(part, str):  # a statement, such as SAVEPOINT
            out.append(query(pos, pos + 50, part))
            pos += 50
            continue
        table_id, table, ids = part
        tm = table_map(pos, pos + 50, table_id, table, named=table != "skipped")
        out += [tm, rows(pos + 50, pos + 100, table_id, ids)]
        pos += 100
    out.append(xid(pos, pos + 31))
    return out, pos + 31


T1, END1 = txn(4, 1, [(10, "t", [1, 2]), (11, "skipped", [99]), (10, "t", [3, 4])])
DDL = [gtid(END1, END1 + 50, 2, standalone=True), query(END1 + 50, END1 + 120, "ALTER TABLE t")]
END2 = END1 + 120
T3, END3 = txn(END2, 3, [(12, "t", [5, 6, 7]), (12, "t", [8])])
BINLOG = [*T1, *DDL, *T3]


def start_of(e: bytes) -> int:
    _, _, _, size, end, _ = struct.unpack_from("<IBIIIH", e, 1)
    return end - size


def end_of(e: bytes) -> int:
    return struct.unpack_from("<I", e, 14)[0]


class ScriptedConnection:
    checksum = 0

    def __init__(self, source, events):
        self.source, self.events = source, events

    def read(self):
        if not self.events:  # end of the script: end the iteration as a stop() would
            self.source.stop()
            return event(27, 0, 0, FILE.encode())  # a heartbeat; the loop returns after it
        e = self.events.pop(0)
        if self.source.lose_at and end_of(e) == self.source.lose_at[0]:
            self.source.lose_at.pop(0)
            self.events = []
            raise ConnectionLost("scripted")
        return e

    def close(self):
        pass


class ScriptedSource(BinlogSource):
    """Serves BINLOG from the resume position; the connection breaks instead of delivering
    each event whose end position is listed in `lose_at` (once each)."""

    binlog: Sequence[bytes] = BINLOG
    connection = ScriptedConnection
    starts: Sequence[int] = ()  # where each event starts, when its header does not say

    def __init__(self, lose_at=(), start=None):
        start = start or BinlogPosition(FILE, 4)
        super().__init__(MysqlSettings(), start, lambda db, t: t != "skipped")
        self.is_mariadb = True
        self.lose_at = list(lose_at)
        self.opened_at: list[int] = []

    def _open(self):
        pos = self._resume.pos
        self.opened_at.append(pos)
        self._reset_txn()
        self._file = self._resume.file
        self._by_id.clear()
        starts = self.starts or [start_of(e) for e in self.binlog]
        events = [rotate(pos)] + [e for e, at in zip(self.binlog, starts, strict=True) if at >= pos]
        self._conn = self.connection(self, events)
        self._first = self._conn.read()

    def _mariadb_json_columns(self, db, table):
        return frozenset()


def collect(source):
    out = []
    for item in source:
        if isinstance(item, RowChange):
            out.append(item.after["id"])
        elif isinstance(item, TxnEnd):
            out.append(("end", item.position.pos, str(item.position.gtid)))
    return out


EXPECTED = [
    1, 2, 3, 4, ("end", END1, "0-1-1"),
    ("end", END2, "0-1-2"),
    5, 6, 7, 8, ("end", END3, "0-1-3"),
]  # fmt: skip


def test_rows_grouped_by_transaction_with_boundaries_and_gtids():
    assert collect(ScriptedSource()) == EXPECTED


def test_row_changes_carry_schema_key_and_position():
    changes = [i for i in ScriptedSource() if isinstance(i, RowChange)]
    first = changes[0]
    assert (first.schema.db, first.schema.table, first.schema.primary_key) == ("db", "t", ("id",))
    assert (first.op, first.before, first.file, first.pos, first.gtid) == (
        "c", None, FILE, 154, "0-1-1",
    )  # fmt: skip


def test_connection_lost_mid_transaction_resumes_at_its_start_without_duplicates():
    # lost after rows 1-2 were emitted (txn 1), and after rows 5-7 were emitted (txn 3)
    rows_skipped = next(e for e in T1 if b"skipped" in e)
    rows8 = T3[-2]
    source = ScriptedSource(lose_at=[end_of(rows_skipped), end_of(rows8)])
    assert collect(source) == EXPECTED
    assert source.opened_at == [4, 4, END2]  # reopened at the last boundary each time
    assert source.reconnects == 2


def test_connection_lost_right_after_commit_reopens_after_it():
    source = ScriptedSource(lose_at=[end_of(DDL[0])])
    assert collect(source) == EXPECTED
    assert source.opened_at == [4, END1]


def test_stop_inside_a_transaction_ends_at_its_commit():
    source = ScriptedSource()
    out = []
    for item in source:
        out.append(item.after["id"] if isinstance(item, RowChange) else item.position.pos)
        if out == [1]:
            source.stop()
    assert out == [1, 2, 3, 4, END1]


def test_a_captured_table_without_column_names_is_a_clear_error():
    import pytest

    from binlog_tailer.errors import SourceError

    source = ScriptedSource()
    source._filter = lambda db, t: True  # now the unnamed table is captured too
    with pytest.raises(SourceError, match="binlog_row_metadata=FULL"):
        collect(source)


def payload(start: int, inner: list[bytes]) -> bytes:
    """A MySQL TRANSACTION_PAYLOAD_EVENT (zstd) carrying `inner` events (positions 0)."""
    import zstandard

    # inner events: their real size, next position 0 (OK byte dropped)
    raw = b"".join(e[1:10] + struct.pack("<II", len(e) - 1, 0) + e[18:] for e in inner)
    packed = zstandard.ZstdCompressor().compress(raw)
    assert len(packed) < 251  # one-byte length-encoded integers below
    # header fields (type, length, value): compression 0 = zstd, payload size; 0 ends them
    fields = bytes([2, 1, 0, 1, 1, len(packed)])
    body = fields + b"\x00" + packed
    return event(40, start, start + 19 + len(body), body)


PAYLOAD = payload(END2 + 50, T3[1:])
COMPRESSED = [*T1, *DDL, T3[0], PAYLOAD]
END3_COMPRESSED = end_of(PAYLOAD)


class CompressedSource(ScriptedSource):
    """BINLOG with transaction 3 compressed: its GTID, then one payload event."""

    binlog = COMPRESSED


def test_a_compressed_transaction_reads_as_its_events_with_the_payloads_position():
    source = CompressedSource()
    items = list(source)
    changes = [i for i in items if isinstance(i, RowChange)]
    third = [c for c in changes if c.after["id"] >= 5]
    assert [c.after["id"] for c in third] == [5, 6, 7, 8]
    assert {c.pos for c in third} == {END2 + 50}  # the payload event's start
    assert [c.row for c in third] == [0, 1, 2, 3]  # numbered across the whole transaction
    assert {c.gtid for c in third} == {"0-1-3"}
    ends = [i.position.pos for i in items if isinstance(i, TxnEnd)]
    assert ends == [END1, END2, END3_COMPRESSED]  # the commit falls after the payload


def test_connection_lost_after_a_compressed_transaction_resumes_after_it():
    source = CompressedSource(lose_at=[end_of(PAYLOAD)])
    ids = [i.after["id"] for i in source if isinstance(i, RowChange)]
    assert ids == [1, 2, 3, 4, 5, 6, 7, 8]
    assert source.opened_at == [4, END2]  # the payload is read again whole: no duplicates


def _without_end_position(e: bytes) -> bytes:
    return e[:14] + b"\x00\x00\x00\x00" + e[18:]


class Mariadb11Source(ScriptedSource):
    """BINLOG as MariaDB 11 writes it: no end position in table-map and rows events."""

    binlog = tuple(_without_end_position(e) if e[5] in (19, 23) else e for e in BINLOG)
    starts = tuple(start_of(e) for e in BINLOG)


def test_events_without_end_positions_get_theirs_from_the_sizes_before_them():
    expected = [(c.after["id"], c.pos) for c in ScriptedSource() if isinstance(c, RowChange)]
    got = [(c.after["id"], c.pos) for c in Mariadb11Source() if isinstance(c, RowChange)]
    assert got == expected and len({pos for _, pos in got}) == 4
    assert collect(Mariadb11Source()) == EXPECTED


def test_a_second_loss_while_skipping_still_skips_every_row_already_emitted():
    rows34 = next(e for e in T1 if e[5] == 23 and struct.unpack_from("<i", e, 31)[0] == 3)
    xid1 = next(e for e in T1 if e[5] == 16)
    # lost after rows 1-4 were emitted; lost again after skipping only rows 1-2 of them
    source = ScriptedSource(lose_at=[end_of(xid1), end_of(rows34)])
    assert collect(source) == EXPECTED
    assert source.opened_at == [4, 4, 4]


def _with_crc(e: bytes) -> bytes:
    import zlib

    body = e[1:10] + struct.pack("<I", len(e) + 3) + e[14:]  # size includes the checksum
    return b"\x00" + body + struct.pack("<I", zlib.crc32(body))


class ChecksummedConnection(ScriptedConnection):
    """Serves the events with CRC32 checksums; damages the rows event holding 5-7 while
    `damage` lasts."""

    checksum = 4

    def read(self):
        e = _with_crc(super().read())
        if e[5] == 23 and struct.unpack_from("<i", e, 31)[0] == 5 and self.source.damage:
            self.source.damage -= 1
            e = e[:40] + bytes([e[40] ^ 0xFF]) + e[41:]
        return e


class ChecksummedSource(ScriptedSource):
    connection = ChecksummedConnection
    damage = 0  # how many reads of that event come damaged


def test_a_damaged_event_is_read_again_and_a_damaged_file_stops_clearly():
    import pytest

    from binlog_tailer.errors import SourceError

    once = ChecksummedSource()
    once.damage = 1
    assert collect(once) == EXPECTED  # read again from the last boundary: nothing lost
    assert once.reconnects == 1
    always = ChecksummedSource()
    always.damage = 99
    with pytest.raises(SourceError, match="fails its CRC32 checksum on every read"):
        collect(always)


# MariaDB keeps rows rolled back to a savepoint in the binlog when the transaction also changed
# a non-transactional table (whose rows are logged apart, as their own transaction).
SP, END_SP = txn(4, 1, [
    (10, "t", [1]), "SAVEPOINT `a`", (10, "t", [2]), "SAVEPOINT B", (10, "t", [3]),
    "ROLLBACK TO `b`", (10, "t", [4]), "ROLLBACK TO SAVEPOINT `A`", (11, "skipped", [99]),
    (10, "t", [5, 6]), "SAVEPOINT `a`", (10, "t", [7]), "ROLLBACK WORK TO a",
])  # fmt: skip
SP_NEXT, END_SP_NEXT = txn(END_SP, 2, [(10, "t", [8]), "SAVEPOINT c", (10, "t", [9])])


class SavepointSource(ScriptedSource):
    binlog = (*SP, *SP_NEXT)


SP_EXPECTED = [1, 5, 6, ("end", END_SP, "0-1-1"), 8, 9, ("end", END_SP_NEXT, "0-1-2")]


def test_rows_rolled_back_to_a_savepoint_are_dropped_and_the_rest_published_at_commit():
    assert collect(SavepointSource()) == SP_EXPECTED


def test_rows_after_a_savepoint_wait_for_the_commit():
    source, read_up_to = SavepointSource(), {}
    for item in source:
        if isinstance(item, RowChange):
            read_up_to[item.after["id"]] = source._resume.pos
    assert read_up_to[1] == 4  # before any savepoint: published at once
    assert read_up_to[5] == read_up_to[6] == END_SP  # after one: once the commit was read
    assert read_up_to[8] == END_SP and read_up_to[9] == END_SP_NEXT


def test_a_loss_while_rows_are_held_publishes_each_row_once():
    rows = [e for e in SP if e[5] == 23]
    for lost_after in (rows[0], rows[2], rows[-1], SP[-1]):
        source = SavepointSource(lose_at=[end_of(lost_after)])
        assert collect(source) == SP_EXPECTED, lost_after
        assert source.opened_at[:2] == [4, 4]  # the whole transaction read again


def test_a_rollback_to_a_savepoint_whose_rows_were_published_is_refused():
    import pytest

    from binlog_tailer.errors import SourceError

    source = SavepointSource()
    source.hold_limit_bytes = 60  # one rows event: rows 2 and 3 go out before the rollback
    with pytest.raises(SourceError, match="rolled back to savepoint b, but its rows since"):
        collect(source)


def test_while_waiting_for_the_server_the_idle_hook_runs():
    from binlog_tailer.errors import SourceUnavailable

    class AwaySource(ScriptedSource):
        away = 2  # opening fails this many times

        def _open(self):
            if self.away:
                self.away -= 1
                raise SourceUnavailable("scripted: server away")
            super()._open()

    source, idle = AwaySource(), []
    source.on_idle = lambda: idle.append(source.away)
    assert collect(source) == EXPECTED
    assert set(idle) == {0, 1}  # during each wait


def test_a_binlog_checkpoint_event_after_the_last_transaction_is_a_boundary_too():
    checkpoint = event(161, END3, END3 + 40, struct.pack("<I", 13) + FILE.encode())

    class CheckpointedSource(ScriptedSource):
        binlog = (*BINLOG, checkpoint)

    assert collect(CheckpointedSource()) == [*EXPECTED, ("end", END3 + 40, "0-1-3")]


# -- a start inside a split transaction (exactly-once): its rows up to `done` are skipped


def _shown(items) -> list:
    return [
        i.after["id"] if isinstance(i, RowChange) else ("end", i.position.pos, str(i.position.gtid))
        for i in items
        if i is not None
    ]


def _starts_after_each_row(source_cls):
    """(start naming row k done, what a full run yields after row k) for every row k."""
    full = list(source_cls())
    boundary = BinlogPosition(FILE, 4)
    for k, item in enumerate(full):
        if isinstance(item, TxnEnd):
            boundary = item.position
        elif isinstance(item, RowChange):
            done = RowRef(item.file, item.pos, item.row)
            yield BinlogPosition(boundary.file, boundary.pos, boundary.gtid, done), full[k + 1 :]


@pytest.mark.parametrize(
    "source_cls", [ScriptedSource, SavepointSource, CompressedSource, Mariadb11Source]
)
def test_a_start_inside_a_split_transaction_yields_exactly_the_rows_after_its_done(source_cls):
    starts = list(_starts_after_each_row(source_cls))
    assert len(starts) >= 5
    for start, rest in starts:
        assert _shown(source_cls(start=start)) == _shown(rest), start
        # and with the connection lost after any event of the stream
        for e in source_cls.binlog:
            if end_of(e) > start.pos:
                source = source_cls(start=start, lose_at=[end_of(e)])
                assert _shown(source) == _shown(rest), (start, end_of(e))
