import io

import pytest

from binlog_tailer.binlog.protocol import BinlogConnection, ConnectionLost


def _connection(stream: bytes) -> BinlogConnection:
    conn = BinlogConnection({}, server_id=1, heartbeat_seconds=1, is_mariadb=True)
    conn._rfile = io.BytesIO(stream)
    return conn


def _packet(payload: bytes, seq: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def test_whole_packets_are_events():
    event = b"\x00" + bytes(range(40))
    assert _connection(_packet(event)).read() == event


@pytest.mark.parametrize("cut", [2, 4, 20, 40])
def test_a_packet_cut_off_is_a_lost_connection_never_a_shorter_event(cut):
    stream = _packet(b"\x00" + bytes(range(40)))[:cut]
    with pytest.raises(ConnectionLost):
        _connection(stream).read()


def test_a_continued_packet_is_joined_and_a_cut_continuation_is_lost():
    first = b"\x00" + b"a" * (0xFFFFFF - 1)
    rest = b"b" * 100
    whole = _packet(first) + _packet(rest, 1)
    assert _connection(whole).read() == first + rest
    with pytest.raises(ConnectionLost):
        _connection(whole[:-10]).read()
    with pytest.raises(ConnectionLost):
        _connection(_packet(first)).read()  # the continuation never came
