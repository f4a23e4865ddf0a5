"""MySQL 8.0+/9.x events: GTID events (classic and tagged) and transaction payloads.

Functions take an event *body*: the bytes after the 19-byte event header, without the
checksum (trailing checksum bytes are tolerated where the body carries its own length: the
tagged GTID event and the payload event).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import zstandard

GTID_LOG_EVENT, TRANSACTION_PAYLOAD_EVENT, GTID_TAGGED_LOG_EVENT = 33, 40, 42
HEADER_LEN = 19  # common event header: timestamp, type, server id, size, next position, flags
ZSTD, NONE = 0, 255  # Transaction_payload_event compression types

_FLAG_MAY_HAVE_SBR = 1
_TS_TYPECODE = 2  # logical clock typecode in classic GTID events
_HAS_ORIGINAL_TS = 1 << 55  # in the 7-byte immediate commit timestamp of classic GTID events
_SERIALIZATION_VERSION = 1
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_CHUNK = 1 << 16  # compressed bytes fed to the decompressor at a time


class GtidInfo(NamedTuple):
    """What a GTID event says about the transaction that follows it. (A named tuple: one is
    made per MySQL transaction, and a frozen dataclass of seven fields costs several times
    more to make.)"""

    uuid: str  # lowercase, with dashes
    tag: str | None  # MySQL 8.3+ tagged GTIDs (lowercase), else None
    gno: int
    commit_ts_us: int | None  # original commit time (on the source it came from), microseconds
    immediate_commit_ts_us: int | None  # commit time on the server that wrote this binlog
    transaction_length: int | None  # bytes of the transaction, this event included
    may_have_sbr: bool  # set when any part is logged as a statement (DDL, for one)

    @property
    def gtid(self) -> str:
        """``uuid:gno`` or ``uuid:tag:gno``, the text form MySQL uses."""
        return f"{self.uuid}:{self.tag}:{self.gno}" if self.tag else f"{self.uuid}:{self.gno}"


def gtid_event_info(etype: int, body: bytes) -> GtidInfo:
    """Decode a GTID_LOG_EVENT (33) or GTID_TAGGED_LOG_EVENT (42) body."""
    if etype == GTID_LOG_EVENT:
        return _classic_gtid(body)
    if etype == GTID_TAGGED_LOG_EVENT:
        return _tagged_gtid(body)
    raise ValueError(f"event type {etype} is not a GTID event (33 or 42)")


def parse_untagged_gtid(body: bytes) -> tuple[str, int]:
    """(uuid, gno) of a GTID_LOG_EVENT (33)."""
    info = _classic_gtid(body)
    return info.uuid, info.gno


def parse_tagged_gtid(body: bytes) -> tuple[str, str, int]:
    """(uuid, tag, gno) of a GTID_TAGGED_LOG_EVENT (42); tag is "" if the event has none."""
    info = _tagged_gtid(body)
    return info.uuid, info.tag or "", info.gno


@functools.lru_cache(maxsize=256)  # every transaction names its source's uuid
def _uuid(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_CLASSIC_HEAD = struct.Struct("<B16sq").unpack_from  # flags, uuid, gno


def _classic_gtid(body: bytes) -> GtidInfo:
    # flags(1) uuid(16) gno(8) typecode(1) last_committed(8) sequence_number(8)
    # immediate_ts(7, bit 55: original_ts(7) follows) transaction_length(length-encoded) ...
    # (one of these per MySQL transaction: read with as few calls as the layout allows)
    size = len(body)
    if size < 25:
        raise ValueError(f"GTID event body of {size} bytes is truncated (needs 25)")
    flags, raw, gno = _CLASSIC_HEAD(body)
    immediate = original = length = None
    if size >= 49 and body[25] == _TS_TYPECODE:
        immediate = _U64(body, 41)[0] >> 8  # the 7 bytes from 42
        pos = 49
        if immediate & _HAS_ORIGINAL_TS:
            immediate &= ~_HAS_ORIGINAL_TS
            original = _U64(body, 48)[0] >> 8 if size >= 56 else None
            pos = 56
        if pos < size:
            length = _lenenc(body, pos)[0]
    commit = original if original is not None else immediate
    return GtidInfo(
        _uuid(raw), None, gno, commit, immediate, length, bool(flags & _FLAG_MAY_HAVE_SBR)
    )


_LENENC_SIZES = {0xFC: 2, 0xFD: 3, 0xFE: 8}


def _lenenc(buf: bytes, pos: int) -> tuple[int, int]:
    """A MySQL length-encoded integer (net_field_length_ll) at `pos`: (value, next pos)."""
    if pos >= len(buf):
        raise ValueError("truncated length-encoded integer")
    first = buf[pos]
    size = _LENENC_SIZES.get(first, 0)
    if first == 0xFB or first == 0xFF:
        raise ValueError(f"bad length-encoded integer prefix {first:#x}")
    if pos + 1 + size > len(buf):
        raise ValueError("truncated length-encoded integer")
    if not size:
        return first, pos + 1
    return int.from_bytes(buf[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


# --- GTID_TAGGED_LOG_EVENT: MySQL's serialization library (libs/mysql/serialization) ---


def _varlen(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """An unsigned variable-length integer: the first byte's trailing one bits, plus one, give
    the byte count (1-9); the value is the remaining bits, little-endian."""
    if pos >= end:
        raise ValueError("tagged GTID event truncated")
    first = buf[pos]
    size = 1
    while size < 9 and first >> (size - 1) & 1:
        size += 1
    if pos + size > end:
        raise ValueError("tagged GTID event truncated")
    if size == 1:
        return first >> 1, pos + 1
    rest = int.from_bytes(buf[pos + 1 : pos + size], "little")
    if size == 9:
        return rest, pos + 9
    return first >> size | rest << (8 - size), pos + size


def _varlen_signed(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _varlen(buf, pos, end)
    return (value >> 1) ^ -(value & 1), pos


def _tagged_fields(body: bytes) -> dict[int, int | str]:
    """The fields of a tagged GTID event by field id (Gtid_event::define_fields).

    Message: version, total size, last non-ignorable field id, then (field id, value) pairs in
    id order; optional fields are left out. Integers are variable-length (signed ones with the
    sign in the low bit), the uuid is 16 one-byte integers, the tag a length-prefixed string."""
    version, pos = _varlen(body, 0, len(body))
    if version != _SERIALIZATION_VERSION:
        raise ValueError(f"tagged GTID event in unknown serialization version {version}")
    end, pos = _varlen(body, pos, len(body))
    if end > len(body):
        raise ValueError(f"tagged GTID event says {end} bytes, has {len(body)}")
    last_required, pos = _varlen(body, pos, end)
    if last_required > len(_TAGGED_FIELDS):
        raise ValueError(f"tagged GTID event has unknown required fields (up to {last_required})")
    fields: dict[int, int | str] = {}
    for field_id, kind in enumerate(_TAGGED_FIELDS):
        if pos >= end:
            break
        found, after_id = _varlen(body, pos, end)
        if found == field_id:  # else an optional field left out (or a newer, ignorable one)
            fields[field_id], pos = _read_field(kind, body, after_id, end)
    return fields


def _read_field(kind: str, body: bytes, pos: int, end: int) -> tuple[int | str, int]:
    if kind == "u":
        return _varlen(body, pos, end)
    if kind == "s":
        return _varlen_signed(body, pos, end)
    if kind == "uuid":
        raw = bytearray()
        for _ in range(16):
            byte, pos = _varlen(body, pos, end)
            raw.append(byte)
        return _uuid(bytes(raw)), pos
    size, pos = _varlen(body, pos, end)  # string
    if pos + size > end:
        raise ValueError("tagged GTID event truncated")
    return body[pos : pos + size].decode("ascii"), pos + size


# field ids 0..11: gtid_flags, uuid, gno, tag, last_committed, sequence_number,
# immediate_commit_timestamp, original_commit_timestamp (if != immediate), transaction_length,
# immediate_server_version, original_server_version (if !=), commit_group_ticket (if set)
_TAGGED_FIELDS = ("u", "uuid", "s", "str", "s", "s", "u", "u", "u", "u", "u", "u")
_F_FLAGS, _F_UUID, _F_GNO, _F_TAG, _F_IMMEDIATE_TS, _F_ORIGINAL_TS, _F_LENGTH = 0, 1, 2, 3, 6, 7, 8


def _tagged_gtid(body: bytes) -> GtidInfo:
    f = _tagged_fields(body)
    uuid, gno, tag = f.get(_F_UUID), f.get(_F_GNO), f.get(_F_TAG)
    if not isinstance(uuid, str) or not isinstance(gno, int):
        raise ValueError("tagged GTID event without uuid or gno")
    immediate = f.get(_F_IMMEDIATE_TS)
    original = f.get(_F_ORIGINAL_TS, immediate)
    length = f.get(_F_LENGTH)
    flags = f.get(_F_FLAGS, _FLAG_MAY_HAVE_SBR)
    return GtidInfo(
        uuid=uuid,
        tag=tag.lower() if isinstance(tag, str) and tag else None,
        gno=gno,
        commit_ts_us=original if isinstance(original, int) else None,
        immediate_commit_ts_us=immediate if isinstance(immediate, int) else None,
        transaction_length=length if isinstance(length, int) else None,
        may_have_sbr=isinstance(flags, int) and bool(flags & _FLAG_MAY_HAVE_SBR),
    )


# --- TRANSACTION_PAYLOAD_EVENT ---


@dataclass(frozen=True)
class PayloadHeader:
    compression: int  # ZSTD (0) or NONE (255)
    uncompressed_size: int | None  # informational only (MySQL does not trust it either)
    payload_size: int
    payload_start: int  # offset of the payload in the body


def parse_payload_header(body: bytes) -> PayloadHeader:
    """The header fields of a payload event body: (type, length, value) triples of
    length-encoded integers, ended by type 0; unknown types are skipped by their length."""
    fields: dict[int, int] = {}
    pos = 0
    while True:
        ftype, pos = _lenenc(body, pos)
        if ftype == 0:  # OTW_PAYLOAD_HEADER_END_MARK
            break
        length, pos = _lenenc(body, pos)
        if ftype in (1, 2, 3):  # payload size, compression type, uncompressed size
            fields[ftype], pos = _lenenc(body, pos)
        else:
            pos += length
    if 1 not in fields or 2 not in fields:
        raise ValueError("payload event without payload size or compression type")
    if fields[1] > len(body) - pos:
        raise ValueError(
            f"payload event truncated: payload of {fields[1]} bytes, {len(body) - pos} left"
        )
    return PayloadHeader(fields[2], fields.get(3), fields[1], pos)


def payload_events(body: bytes) -> Iterator[bytes]:
    """The events a TRANSACTION_PAYLOAD_EVENT body carries, each from its 19-byte header on.

    Inner events have no checksum, and 0 as their next-position field (header bytes 13..16);
    their size field (bytes 9..12) is their exact length. Decompression streams, one event at
    a time. Raises ValueError on an unknown compression, a corrupt or truncated payload."""
    header = parse_payload_header(body)
    payload = memoryview(body)[header.payload_start : header.payload_start + header.payload_size]
    if header.compression == NONE:
        return _split_events([bytes(payload)])
    if header.compression == ZSTD:
        return _split_events(_zstd_chunks(payload))
    raise ValueError(f"payload event with unknown compression type {header.compression}")


def _zstd_chunks(payload: memoryview) -> Iterator[bytes]:
    """Decompress zstd frames (one or more, back to back) without needing their content size."""
    decompressor = zstandard.ZstdDecompressor()
    pos = 0
    while pos < len(payload):
        frame = decompressor.decompressobj()
        while not frame.eof:
            if pos >= len(payload):
                raise ValueError("payload event truncated: the zstd frame does not end")
            piece = payload[pos : pos + _CHUNK]
            pos += len(piece)
            try:
                out = frame.decompress(piece)
            except zstandard.ZstdError as exc:
                raise ValueError(f"payload event corrupt: {exc}") from None
            if out:
                yield out
        pos -= len(frame.unused_data)


def _split_events(chunks: Iterable[bytes]) -> Iterator[bytes]:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        start = 0
        while len(buf) - start >= HEADER_LEN:
            (size,) = _U32(buf, start + 9)
            if size < HEADER_LEN:
                raise ValueError(f"payload event corrupt: inner event of {size} bytes")
            if buf[start + 4] == TRANSACTION_PAYLOAD_EVENT:
                raise ValueError("payload event corrupt: it contains a payload event")
            if len(buf) - start < size:
                break
            yield bytes(buf[start : start + size])
            start += size
        del buf[:start]
    if buf:
        raise ValueError(f"payload event truncated: {len(buf)} bytes of a partial inner event")
