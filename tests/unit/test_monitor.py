"""Bytes behind and retention headroom from the server's list of binary logs."""

from binlog_tailer.monitor import bytes_behind, headroom, offset_in
from binlog_tailer.position import BinlogPosition, MariadbGtidPos

LOGS = [("binlog.000007", 1000), ("binlog.000008", 500), ("binlog.000009", 300)]


def test_offsets_count_across_files():
    assert offset_in(LOGS, "binlog.000007", 4) == 4
    assert offset_in(LOGS, "binlog.000009", 120) == 1620
    assert offset_in(LOGS, "binlog.000001", 4) is None


def test_bytes_behind_the_end_of_the_binlog():
    assert bytes_behind(LOGS, ("binlog.000008", 100)) == 400 + 300
    assert bytes_behind(LOGS, ("binlog.000009", 300)) == 0  # caught up
    assert bytes_behind(LOGS, (None, 4)) is None  # not known yet (a start by GTID)


def test_retention_headroom_is_what_the_server_keeps_before_the_checkpoint():
    assert headroom(LOGS, BinlogPosition("binlog.000009", 200)) == (1700, 2)
    assert headroom(LOGS, BinlogPosition("binlog.000007", 50)) == (50, 0)  # a purge strands us
    assert headroom(LOGS, BinlogPosition("binlog.000003", 50)) == (-1, -1)  # purged already
    assert headroom(LOGS, BinlogPosition(None, None, MariadbGtidPos.parse("0-1-5"))) is None
    assert headroom([], BinlogPosition("binlog.000009", 4)) is None
