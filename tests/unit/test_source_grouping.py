"""BinlogSource's transaction grouping and owned reconnect, over a scripted event stream.

The events are real pymysqlreplication event classes with their attributes set by hand; the
stream is a list, so a connection loss can be placed exactly inside a transaction.
"""

from types import SimpleNamespace

from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import WriteRowsEvent

from binlog_tailer.model import RowChange, TxnEnd
from binlog_tailer.position import BinlogPosition
from binlog_tailer.settings import MysqlSettings
from binlog_tailer.source import BinlogSource, _ConnectionLost

FILE = "binlog.000001"


def ev(cls, start, end, **attrs):
    e = object.__new__(cls)
    e.packet = SimpleNamespace(log_pos=end, event_size=end - start, server_id=1)
    e.timestamp = 1_700_000_000
    e.start = start
    for k, v in attrs.items():
        setattr(e, k, v)
    return e


def rows(start, end, table, ids):
    return ev(
        WriteRowsEvent,
        start,
        end,
        schema="db",
        table=table,
        _RowsEvent__rows=[{"values": {"id": i}} for i in ids],  # what .rows decodes to
        columns=[SimpleNamespace(name="id", type=3)],
        primary_key="id",
    )


BINLOG = [
    ev(RotateEvent, 0, 4, next_binlog=FILE, position=4),
    ev(MariadbGtidEvent, 4, 50, gtid="0-1-1", flags=0),
    ev(QueryEvent, 50, 100, query="BEGIN"),
    rows(100, 200, "t", [1, 2]),
    rows(200, 300, "skipped", [99]),
    rows(300, 400, "t", [3, 4]),
    ev(XidEvent, 400, 431),
    ev(MariadbGtidEvent, 431, 480, gtid="0-1-2", flags=1),  # standalone: DDL
    ev(QueryEvent, 480, 600, query="ALTER TABLE t ADD c INT"),
    ev(MariadbGtidEvent, 600, 650, gtid="0-1-3", flags=0),
    ev(QueryEvent, 650, 700, query="BEGIN"),
    rows(700, 800, "t", [5, 6, 7]),
    rows(800, 900, "t", [8]),
    ev(XidEvent, 900, 931),
]


class ScriptedSource(BinlogSource):
    """Serves BINLOG from the resume position; the connection breaks instead of delivering
    each event whose end position is listed in `lose_at` (once each)."""

    def __init__(self, lose_at=()):
        super().__init__(
            MysqlSettings(), BinlogPosition(FILE, 4), lambda db, table: table != "skipped"
        )
        self.lose_at = list(lose_at)
        self.opened_at: list[int] = []

    def _open(self):
        pos = self._resume.pos
        self.opened_at.append(pos)
        self._reset_txn()
        self._file = self._resume.file
        # the server sends a rotate naming the file, then events from the position
        self._events = [BINLOG[0]] + [e for e in BINLOG[1:] if e.start >= pos]
        self._first = self._fetch()

    def _fetch(self):
        if not self._events:  # end of the script: end the iteration as a stop() would
            self.stop()
            return None
        e = self._events.pop(0)
        if self.lose_at and e.packet.log_pos == self.lose_at[0]:
            self.lose_at.pop(0)
            self._events = []
            raise _ConnectionLost("scripted")
        return e


def collect(source):
    out = []
    for item in source:
        if isinstance(item, RowChange):
            out.append(item.after["id"])
        elif isinstance(item, TxnEnd):
            out.append(("end", item.position.pos, str(item.position.gtid)))
    return out


EXPECTED = [
    1, 2, 3, 4, ("end", 431, "0-1-1"),
    ("end", 600, "0-1-2"),
    5, 6, 7, 8, ("end", 931, "0-1-3"),
]  # fmt: skip


def test_rows_grouped_by_transaction_with_boundaries_and_gtids():
    assert collect(ScriptedSource()) == EXPECTED


def test_connection_lost_mid_transaction_resumes_at_its_start_without_duplicates():
    # lost after rows 1-2 were emitted (txn 1), and after rows 5-7 were emitted (txn 3)
    source = ScriptedSource(lose_at=[300, 900])
    assert collect(source) == EXPECTED
    assert source.opened_at == [4, 4, 600]  # reopened at the last boundary each time
    assert source.reconnects == 2


def test_connection_lost_right_after_commit_reopens_after_it():
    source = ScriptedSource(lose_at=[480])
    assert collect(source) == EXPECTED
    assert source.opened_at == [4, 431]


def test_stop_inside_a_transaction_ends_at_its_commit():
    source = ScriptedSource()
    out = []
    for item in source:
        out.append(item.after["id"] if isinstance(item, RowChange) else item.position.pos)
        if out == [1]:
            source.stop()
    assert out == [1, 2, 3, 4, 431]
