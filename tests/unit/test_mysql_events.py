"""MySQL GTID and transaction payload events, against events captured from MySQL 9.7.4.

The golden vectors are whole events as written in binlog.000003 (19-byte header, body, CRC32):
- CLASSIC_GTID: GTID_LOG_EVENT (33) of a row transaction, uuid:11
- TAGGED_GTID / TAGGED_GTID_2: GTID_TAGGED_LOG_EVENT (42) from SET gtid_next='AUTOMATIC:TagOne'
  (uuid:tagone:1) and 'AUTOMATIC:tag_two' (uuid:tag_two:1, whose transaction is compressed)
- PAYLOAD: TRANSACTION_PAYLOAD_EVENT (40), zstd, of BEGIN; INSERT 2 rows; UPDATE 1 row; COMMIT
- PAYLOAD_2: the compressed transaction of TAGGED_GTID_2 (INSERT 1 row)
"""

import struct

import pytest
import zstandard

from binlog_tailer.binlog import mysql_events
from binlog_tailer.binlog.mysql_events import (
    GtidInfo,
    gtid_event_info,
    parse_payload_header,
    parse_tagged_gtid,
    parse_untagged_gtid,
    payload_events,
)
from binlog_tailer.position import _varlen_uint

UUID = "9819da85-e8e7-11f1-9195-02fc00000001"

CLASSIC_GTID = bytes.fromhex(
    "ae03076b21010000004f000000e10200000000009819da85e8e711f1919502fc000000010b00000000000000"
    "0202000000000000000300000000000000f723ebc71b6106fc3001506201003b679b05"
)
TAGGED_GTID = bytes.fromhex(
    "ae03076b2a0100000054000000160400000000027a0000000261023269031502a1039d0322c5034502550204"
    "f103000000020404060c7461676f6e6508080a100c7f4a2aebc71b610610d9041283120b2bb0d95d"
)
TAGGED_GTID_2 = bytes.fromhex(
    "ae03076b2a0100000055000000720600000000027c0000000261023269031502a1039d0322c5034502550204"
    "f103000000020404060e7461675f74776f08080a180c7fd438ebc71b61061045041283120b9bffac37"
)
PAYLOAD = bytes.fromhex(
    "ae03076b2801000000d60000001d06000000000201000303fc50010101b30028b52ffd6050004d050032881e"
    "2a8055690c60266442c0c4b90d46622311de33a1aa91f365c025442515cc10058a557d77d51689d09652a6ff"
    "ff827180cfdaf790b89fa5ff1e751d11710024e19440796d34e08e01ab67ea1735acaee51998793ad5c5c934"
    "95060b27e6290516ed66a12ad3e463e2e82eedb3822934246f3c589af2a762d16e011400a004e2f621681580"
    "0f1b803fb098ee01092bc2823e30064cb00d9a03178cb02ab79c656920302864005ed6606435"
)
PAYLOAD_2 = bytes.fromhex(
    "ae03076b2801000000bc0000002e07000000000201000301ce01019b0028b52ffd20ce950400e2871c27902b"
    "8d01787777775f3e7f773feade34e6a7df15f8a342884ed5d415e501b4bc7fb8112152ca14ff7f4251706ce1"
    "abe82f1d75dde0608052704e9e6c1895a26368f54c7da284d55f6eb9349c8dd5329a8bf5aec149f90ae1d842"
    "4915a11e1f0fc7a8bdce02a8cf8d7c71e069c89fead8c20d0050e21c82005ac02e30c12068037e1961556e39"
    "cbd2406050c800bc30475b50"
)
QUERY, TABLE_MAP, XID, WRITE_V2, UPDATE_V2 = 2, 19, 16, 30, 31


def body(event: bytes) -> bytes:
    return event[19:-4]


# --- GTID events ---


def test_classic_gtid_event():
    info = gtid_event_info(33, body(CLASSIC_GTID))
    ts = 1795621806351351
    assert info == GtidInfo(UUID, None, 11, ts, ts, 304, may_have_sbr=False)
    assert info.gtid == f"{UUID}:11"
    assert parse_untagged_gtid(body(CLASSIC_GTID)) == (UUID, 11)


def test_classic_gtid_event_with_original_commit_timestamp():
    # a replicated transaction: bit 55 of the immediate timestamp says the original follows
    b = body(CLASSIC_GTID)
    immediate = int.from_bytes(b[42:49], "little")
    original = immediate - 5_000_000
    b = (
        b[:42]
        + (immediate | 1 << 55).to_bytes(7, "little")
        + original.to_bytes(7, "little")
        + b[49:]
    )
    info = gtid_event_info(33, b)
    assert (info.commit_ts_us, info.immediate_commit_ts_us) == (original, immediate)
    assert info.transaction_length == 304


def test_classic_gtid_event_before_commit_timestamps():
    info = gtid_event_info(33, body(CLASSIC_GTID)[:42])  # MySQL 5.7: no timestamps
    assert (info.gno, info.commit_ts_us, info.transaction_length) == (11, None, None)
    with pytest.raises(ValueError, match="truncated"):
        gtid_event_info(33, body(CLASSIC_GTID)[:20])


def test_tagged_gtid_event():
    info = gtid_event_info(42, body(TAGGED_GTID))
    ts = 1795621806352970
    assert info == GtidInfo(UUID, "tagone", 1, ts, ts, 310, may_have_sbr=False)
    assert info.gtid == f"{UUID}:tagone:1"
    assert parse_tagged_gtid(body(TAGGED_GTID)) == (UUID, "tagone", 1)
    # the body carries its own size: a trailing checksum does not matter
    assert gtid_event_info(42, TAGGED_GTID[19:]) == info
    info = gtid_event_info(42, body(TAGGED_GTID_2))
    assert (info.gtid, info.transaction_length) == (f"{UUID}:tag_two:1", 273)


def _field_value(kind: str, value: object) -> bytes:
    if kind == "s":
        assert isinstance(value, int)
        return _varlen_uint(value << 1 if value >= 0 else (-(value + 1) << 1) | 1)
    if kind == "uuid":
        assert isinstance(value, str)
        return b"".join(_varlen_uint(b) for b in bytes.fromhex(value.replace("-", "")))
    if kind == "str":
        assert isinstance(value, str)
        return _varlen_uint(len(value)) + value.encode()
    assert isinstance(value, int)
    return _varlen_uint(value)


def _tagged_event(fields: dict[int, object], last_required: int = 0, version: int = 1) -> bytes:
    """Encode a tagged GTID event body the way MySQL's serialization library does."""
    kinds = {**dict(enumerate(mysql_events._TAGGED_FIELDS)), 12: "u"}
    data = b"".join(_varlen_uint(i) + _field_value(kinds[i], v) for i, v in sorted(fields.items()))
    size = 3 + len(data)  # version, size and last_required take 1 byte each here
    assert size < 128 and version < 128 and last_required < 128
    return _varlen_uint(version) + _varlen_uint(size) + _varlen_uint(last_required) + data


BASE_FIELDS: dict[int, object] = {
    0: 1,
    1: UUID,
    2: 2**40 + 7,
    3: "Tag_X",
    4: 10,
    5: 11,
    6: 1_700_000_000_000_000,
    8: 5000,
    9: 90704,
}


def test_tagged_gtid_event_optional_fields():
    info = gtid_event_info(42, _tagged_event(BASE_FIELDS))
    assert info == GtidInfo(
        UUID, "tag_x", 2**40 + 7, 1_700_000_000_000_000, 1_700_000_000_000_000, 5000, True
    )
    # original timestamp and server version differ (replicated), a commit group ticket, and a
    # newer, ignorable field MySQL 9.7 does not know
    fields = {**BASE_FIELDS, 7: 1_600_000_000_000_000, 10: 80036, 11: 3, 12: 99}
    info = gtid_event_info(42, _tagged_event(fields))
    assert (info.commit_ts_us, info.immediate_commit_ts_us) == (
        1_600_000_000_000_000,
        1_700_000_000_000_000,
    )
    assert (info.gno, info.transaction_length) == (2**40 + 7, 5000)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (_tagged_event(BASE_FIELDS, version=2), "serialization version"),
        (_tagged_event(BASE_FIELDS, last_required=13), "unknown required fields"),
        (_tagged_event({0: 0, 3: "x"}), "without uuid or gno"),
        (_tagged_event(BASE_FIELDS)[:-3], "says .* bytes"),
        (body(TAGGED_GTID)[:30], "says .* bytes"),
    ],
)
def test_tagged_gtid_event_errors(event, message):
    with pytest.raises(ValueError, match=message):
        gtid_event_info(42, event)


def test_gtid_event_info_rejects_other_events():
    with pytest.raises(ValueError, match="not a GTID event"):
        gtid_event_info(34, body(CLASSIC_GTID))


# --- TRANSACTION_PAYLOAD_EVENT ---


def _types(events: list[bytes]) -> list[int]:
    return [e[4] for e in events]


def test_payload_events_zstd():
    header = parse_payload_header(body(PAYLOAD))
    assert header == mysql_events.PayloadHeader(0, 336, 179, 12)
    events = list(payload_events(body(PAYLOAD)))
    assert _types(events) == [QUERY, TABLE_MAP, WRITE_V2, TABLE_MAP, UPDATE_V2, XID]
    assert sum(map(len, events)) == 336
    for e in events:
        size, next_pos = struct.unpack_from("<II", e, 9)
        assert size == len(e) and next_pos == 0  # no checksum; no position in the file
        assert e[:4] == PAYLOAD[:4]  # the outer event's timestamp
    assert len(events[-1]) == 19 + 8  # XID: the 8-byte xid, no checksum
    assert events[0].endswith(b"BEGIN")
    # the payload size bounds the payload: a trailing checksum does not matter
    assert list(payload_events(PAYLOAD[19:])) == events
    assert _types(list(payload_events(body(PAYLOAD_2)))) == [QUERY, TABLE_MAP, WRITE_V2, XID]


def _payload_body(payload: bytes, compression: int, extra: bytes = b"") -> bytes:
    def field(ftype: int, value: int) -> bytes:  # as MySQL writes them: lengths encoded
        encoded = bytes((value,)) if value < 251 else b"\xfc" + struct.pack("<H", value)
        return bytes((ftype, len(encoded))) + encoded

    return field(2, compression) + extra + field(1, len(payload)) + b"\x00" + payload


INNER = list(payload_events(body(PAYLOAD)))
RAW = b"".join(INNER[:3])  # 187 bytes: BEGIN, table map, write rows


def test_payload_events_uncompressed_and_unknown_header_field():
    extra = bytes((9, 3)) + b"abc"  # a field type this code does not know: skipped
    assert list(payload_events(_payload_body(RAW, 255, extra))) == INNER[:3]
    assert list(payload_events(_payload_body(b"", 255))) == []


def test_payload_events_zstd_frames_without_content_size(monkeypatch):
    # two frames back to back, neither with the content size; fed in tiny pieces
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    frames = compressor.compress(RAW[:100]) + compressor.compress(RAW[100:])
    assert len(frames) < 251
    monkeypatch.setattr(mysql_events, "_CHUNK", 7)
    assert list(payload_events(_payload_body(frames, 0))) == INNER[:3]


def test_payload_events_is_lazy():
    events = payload_events(_payload_body(RAW + INNER[4][:25], 255))
    assert next(events) == INNER[0]


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _with_size(event: bytes, size: int) -> bytes:
    return event[:9] + struct.pack("<I", size) + event[13:]


@pytest.mark.parametrize(
    ("payload_body", "message"),
    [
        (_payload_body(RAW[:100], 1), "unknown compression type 1"),
        (_payload_body(RAW[:100], 255)[:-1], "payload of 100 bytes, 99 left"),
        (bytes((2, 1, 0)), "truncated length-encoded"),  # no end mark
        (bytes((2, 1, 0, 0)), "without payload size"),
        (_payload_body(RAW[:60] + RAW[:20], 255), "partial inner event"),
        (_payload_body(_with_size(INNER[0], 12), 255), "inner event of 12 bytes"),
        (_payload_body(PAYLOAD[:19], 255), "contains a payload event"),
        (_payload_body(b"not a zstd frame", 0), "corrupt"),
        (_payload_body(_zstd(RAW)[:-5], 0), "zstd frame does not end"),
        (_payload_body(_zstd(RAW[:40]), 0), "partial inner event"),
    ],
)
def test_payload_event_errors(payload_body, message):
    with pytest.raises(ValueError, match=message):
        list(payload_events(payload_body))
