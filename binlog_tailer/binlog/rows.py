"""Table maps and row images: parsed from the raw event bytes, readers compiled per table.

Formats: MySQL's binlog row format (``Table_map_log_event``, ``Rows_log_event``), as MariaDB and
MySQL write it. Values come out as int, float, Decimal, str or bytes, datetime/date/timedelta,
set, bit string, or a decoded JSON tree (``mysql_json``), as ``binlog_tailer.mapping`` expects.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import struct
from collections.abc import Callable
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE as T

from binlog_tailer.binlog.charsets import UNKNOWN, Charsets, unknown_message
from binlog_tailer.binlog.mysql_json import decode_json
from binlog_tailer.errors import SourceError
from binlog_tailer.model import Column, TableSchema

Reader = Callable[[bytes, int], tuple[Any, int]]

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U48 = struct.Struct("<IH").unpack_from
_INTS = {
    (T.TINY, False): struct.Struct("<b"),
    (T.TINY, True): struct.Struct("<B"),
    (T.SHORT, False): struct.Struct("<h"),
    (T.SHORT, True): struct.Struct("<H"),
    (T.LONG, False): struct.Struct("<i"),
    (T.LONG, True): struct.Struct("<I"),
    (T.LONGLONG, False): struct.Struct("<q"),
    (T.LONGLONG, True): struct.Struct("<Q"),
    (T.FLOAT, False): struct.Struct("<f"),
    (T.DOUBLE, False): struct.Struct("<d"),
}
_NUMERIC = {T.TINY, T.SHORT, T.INT24, T.LONG, T.LONGLONG, T.NEWDECIMAL, T.FLOAT, T.DOUBLE, T.YEAR}
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_EPOCH = dt.datetime(1970, 1, 1)


def lenenc(data: bytes, off: int) -> tuple[int, int]:
    """A length-encoded integer of the MySQL protocol."""
    first = data[off]
    if first < 0xFB:
        return first, off + 1
    if first == 0xFC:
        return _U16(data, off + 1)[0], off + 3
    if first == 0xFD:
        return int.from_bytes(data[off + 1 : off + 4], "little"), off + 4
    return int.from_bytes(data[off + 1 : off + 9], "little"), off + 9


class ColumnDef:
    __slots__ = (
        "bits", "charset", "enum_values", "fsp", "index", "length", "meta_len", "name",
        "precision", "real_type", "scale", "set_values", "type", "unsigned",
    )  # fmt: skip

    def __init__(self, index: int, type_code: int) -> None:
        self.index = index
        self.type = type_code
        self.real_type = type_code
        self.name = f"col{index}"
        self.unsigned = False
        self.charset: str | None = None  # python codec; "binary" keeps bytes
        self.enum_values: tuple[str, ...] = ()
        self.set_values: tuple[str, ...] = ()
        self.length = 0  # max length (strings) or size in bytes (enum/set)
        self.meta_len = 0  # length-prefix bytes (blob, json, geometry) or float size
        self.fsp = 0
        self.precision = 0
        self.scale = 0
        self.bits = 0


class TableMap:
    """One table as a TABLE_MAP event describes it, with the readers for its rows.

    The readers are built by `prepare()`, the first time a row of a captured table is
    decoded: a table nobody captures costs its parse only, whatever its column types."""

    __slots__ = ("columns", "db", "named", "readers", "schema", "table", "table_id")

    def __init__(self, table_id: int, db: str, table: str, columns: list[ColumnDef],
                 primary_key: tuple[str, ...], named: bool) -> None:  # fmt: skip
        self.table_id = table_id
        self.db = db
        self.table = table
        self.columns = columns
        self.named = named
        self.readers: list[Reader] | None = None
        self.schema = TableSchema(
            db=db,
            table=table,
            columns=tuple(Column(c.name, c.real_type, c.set_values) for c in columns),
            primary_key=primary_key,
        )

    def prepare(self) -> None:
        if not self.named:
            raise SourceError(
                f"the binlog has no column names for {self.db}.{self.table}: set"
                " binlog_row_metadata=FULL on the server (MySQL 8.0.14+, MariaDB 10.5+); names"
                " read from today's schema could be wrong for older rows"
            )
        readers = []
        for c in self.columns:
            if c.charset is not None and c.charset.startswith(UNKNOWN):
                raise SourceError(
                    f"column {self.db}.{self.table}.{c.name} uses {unknown_message(c.charset)};"
                    " convert the column to utf8mb4 or leave the table out of capture.include"
                )
            readers.append(_reader(c))
        self.readers = readers


# ------------------------------------------------------------------ table map
def parse_table_map(
    data: bytes, off: int, end: int, is_mariadb: bool, charsets: Charsets
) -> TableMap:
    low, high = _U48(data, off)
    table_id = low | (high << 32)
    off += 8  # table id (6) + flags (2)
    n = data[off]
    db = data[off + 1 : off + 1 + n].decode("utf-8")
    off += n + 2
    n = data[off]
    table = data[off + 1 : off + 1 + n].decode("utf-8")
    off += n + 2
    count, off = lenenc(data, off)
    columns = [ColumnDef(i, data[off + i]) for i in range(count)]
    off += count
    meta_size, off = lenenc(data, off)
    meta_end = off + meta_size
    for c in columns:
        off = _read_meta(c, data, off)
    off = meta_end + (count + 7) // 8  # skip the nullability bitmap
    primary_key: tuple[str, ...] = ()
    named = False
    while off < end:  # optional metadata (binlog_row_metadata): type, length, value
        kind = data[off]
        length, off = lenenc(data, off + 1)
        value = data[off : off + length]
        off += length
        if kind == 1:  # SIGNEDNESS: one bit per numeric column, most significant first
            numeric = [c for c in columns if c.type in _NUMERIC]
            for i, c in enumerate(numeric):
                c.unsigned = bool(value[i >> 3] & (0x80 >> (i & 7)))
        elif kind in (2, 3):  # DEFAULT_CHARSET / COLUMN_CHARSET of character columns
            targets = [c for c in columns if _is_character(c, is_mariadb)]
            _charsets(kind, value, targets, charsets)
        elif kind in (10, 11):  # the same, for ENUM and SET columns
            targets = [c for c in columns if c.real_type in (T.ENUM, T.SET)]
            _charsets(kind - 8, value, targets, charsets)
        elif kind == 4:  # COLUMN_NAME
            pos = 0
            for c in columns:
                size, pos = lenenc(value, pos)
                c.name = value[pos : pos + size].decode("utf-8")
                pos += size
            named = True
        elif kind in (5, 6):  # SET_STR_VALUE / ENUM_STR_VALUE
            targets = [c for c in columns if c.real_type == (T.SET if kind == 5 else T.ENUM)]
            pos = 0
            for c in targets:
                members, pos = lenenc(value, pos)
                names = []
                for _ in range(members):
                    size, pos = lenenc(value, pos)
                    names.append(value[pos : pos + size])
                    pos += size
                codec = c.charset if c.charset and not c.charset.startswith(UNKNOWN) else "utf-8"
                decoded = tuple(v.decode(codec, "replace") for v in names)
                if kind == 5:
                    c.set_values = decoded
                else:
                    c.enum_values = decoded
        elif kind == 8:  # SIMPLE_PRIMARY_KEY: column indexes
            pos, keys = 0, []
            while pos < len(value):
                i, pos = lenenc(value, pos)
                keys.append(i)
            primary_key = tuple(columns[i].name for i in keys)
        elif kind == 9:  # PRIMARY_KEY_WITH_PREFIX: (index, prefix length) pairs
            pos, keys = 0, []
            while pos < len(value):
                i, pos = lenenc(value, pos)
                _, pos = lenenc(value, pos)
                keys.append(i)
            primary_key = tuple(columns[i].name for i in keys)
    if primary_key:  # names were resolved before COLUMN_NAME may have been read
        index = {f"col{c.index}": c.name for c in columns}
        primary_key = tuple(index.get(k, k) for k in primary_key)
    return TableMap(table_id, db, table, columns, primary_key, named)


def _read_meta(c: ColumnDef, data: bytes, off: int) -> int:
    t = c.type
    if t in (T.VARCHAR, T.VAR_STRING):
        c.length = _U16(data, off)[0]
        return off + 2
    if t == T.STRING:
        b0, b1 = data[off], data[off + 1]
        if b0 in (T.ENUM, T.SET):
            c.real_type = b0
            c.length = b1  # bytes of the stored value
        else:  # CHAR/BINARY; a long CHAR folds the high bits of its length into b0
            c.real_type = T.STRING
            c.length = (((b0 << 4) & 0x300) ^ 0x300) + b1
        return off + 2
    if t in (T.BLOB, T.GEOMETRY, T.JSON, T.FLOAT, T.DOUBLE):
        c.meta_len = data[off]
        return off + 1
    if t in (T.TIMESTAMP2, T.DATETIME2, T.TIME2):
        c.fsp = data[off]
        return off + 1
    if t == T.NEWDECIMAL:
        c.precision, c.scale = data[off], data[off + 1]
        return off + 2
    if t == T.BIT:
        c.bits = data[off + 1] * 8 + data[off]
        return off + 2
    return off


def _is_character(c: ColumnDef, is_mariadb: bool) -> bool:
    if c.real_type in (T.ENUM, T.SET):
        return False
    return c.type in (T.STRING, T.VAR_STRING, T.VARCHAR, T.BLOB) or (
        is_mariadb and c.type == T.GEOMETRY
    )


def _charsets(kind: int, value: bytes, targets: list[ColumnDef], charsets: Charsets) -> None:
    pos = 0
    if kind == 2:  # a default collation, then (column index, collation) exceptions
        default, pos = lenenc(value, pos)
        ids = [default] * len(targets)
        while pos < len(value):
            i, pos = lenenc(value, pos)
            ids[i], pos = lenenc(value, pos)
    else:
        ids = []
        while pos < len(value):
            cid, pos = lenenc(value, pos)
            ids.append(cid)
    for c, cid in zip(targets, ids, strict=False):
        c.charset = charsets.codec(cid)


# ------------------------------------------------------------------ values
def _reader(c: ColumnDef) -> Reader:
    t = c.real_type
    if t == T.FLOAT:
        return _float32
    if (t, c.unsigned) in _INTS or t == T.DOUBLE:
        s = _INTS[(t, c.unsigned if t not in (T.FLOAT, T.DOUBLE) else False)]
        unpack, size = s.unpack_from, s.size
        return lambda d, o: (unpack(d, o)[0], o + size)
    if t == T.INT24:
        signed = not c.unsigned
        return lambda d, o: (int.from_bytes(d[o : o + 3], "little", signed=signed), o + 3)
    if t == T.YEAR:
        return lambda d, o: ((d[o] + 1900) if d[o] else 0, o + 1)
    if t == T.NEWDECIMAL:
        return _decimal_reader(c.precision, c.scale)
    if t == T.STRING and c.charset == "binary":
        # BINARY(n): the binlog drops trailing zero bytes, the column keeps them
        read, width = _string_reader(2 if c.length > 255 else 1, "binary"), c.length

        def binary(d: bytes, o: int) -> tuple[Any, int]:
            value, o = read(d, o)
            return value.ljust(width, b"\x00"), o

        return binary
    if t in (T.VARCHAR, T.VAR_STRING, T.STRING):
        return _string_reader(2 if c.length > 255 else 1, c.charset)
    if t in (T.BLOB, T.GEOMETRY):
        return _string_reader(c.meta_len, c.charset if t == T.BLOB else "binary")
    if t == T.JSON:
        return _json_reader(c.meta_len)
    if t == T.ENUM:
        values, size = c.enum_values, c.length

        def enum(d: bytes, o: int) -> tuple[Any, int]:
            i = int.from_bytes(d[o : o + size], "little")
            return (values[i - 1] if 0 < i <= len(values) else ""), o + size

        return enum
    if t == T.SET:
        members, size = c.set_values, c.length

        def set_(d: bytes, o: int) -> tuple[Any, int]:
            mask = int.from_bytes(d[o : o + size], "little")
            return {m for i, m in enumerate(members) if mask >> i & 1}, o + size

        return set_
    if t == T.BIT:
        nbits, nbytes = c.bits, (c.bits + 7) // 8
        return lambda d, o: (
            format(int.from_bytes(d[o : o + nbytes], "big"), f"0{nbits}b"),
            o + nbytes,
        )
    if t == T.DATE:
        return _date
    if t == T.DATETIME2:
        return _datetime2_reader(c.fsp)
    if t == T.TIMESTAMP2:
        return _timestamp2_reader(c.fsp)
    if t == T.TIME2:
        return _time2_reader(c.fsp)
    if t == T.TIMESTAMP:
        return lambda d, o: (_EPOCH + dt.timedelta(seconds=_U32(d, o)[0]), o + 4)
    if t == T.DATETIME:
        return _datetime_old
    if t == T.TIME:
        return _time_old
    if t == T.NULL:
        return lambda d, o: (None, o)
    raise SourceError(f"column {c.name!r} has a binlog type ({t}) binlog-tailer cannot decode")


_F32 = struct.Struct("<f")


def _float32(d: bytes, o: int) -> tuple[Any, int]:
    """A FLOAT as the shortest decimal that reads back as the same 32-bit value (0.1, not the
    0.10000000149011612 its double expansion prints). A float32 needs at most 9 digits; if one
    with fewer than 6 exists, rounding to 6 finds it, so 6 is where the search starts."""
    (x,) = _F32.unpack_from(d, o)
    for digits in (6, 7, 8):
        shorter = float(f"{x:.{digits}g}")
        with contextlib.suppress(OverflowError):  # rounded past the largest float32
            if _F32.unpack(_F32.pack(shorter))[0] == x:
                return shorter, o + 4
    return float(f"{x:.9g}"), o + 4


def _string_reader(prefix: int, charset: str | None) -> Reader:
    codec = charset or "utf-8"
    binary = codec == "binary"

    def read(d: bytes, o: int) -> tuple[Any, int]:
        n = int.from_bytes(d[o : o + prefix], "little") if prefix != 1 else d[o]
        o += prefix
        raw = d[o : o + n]
        return (raw if binary else raw.decode(codec)), o + n

    return read


def _json_reader(prefix: int) -> Reader:
    def read(d: bytes, o: int) -> tuple[Any, int]:
        n = int.from_bytes(d[o : o + prefix], "little")
        o += prefix
        if n == 0:
            return None, o
        try:
            return decode_json(d[o : o + n]), o + n
        except ValueError as exc:
            raise SourceError(f"cannot decode a MySQL JSON value: {exc}") from exc

    return read


def _decimal_reader(precision: int, scale: int) -> Reader:
    intg = precision - scale
    intg0, intg0x = divmod(intg, 9)
    frac0, frac0x = divmod(scale, 9)
    size = intg0 * 4 + _DIG2BYTES[intg0x] + frac0 * 4 + _DIG2BYTES[frac0x]
    lead, tail = _DIG2BYTES[intg0x], _DIG2BYTES[frac0x]

    def read(d: bytes, o: int) -> tuple[Any, int]:
        raw = bytearray(d[o : o + size])
        negative = not raw[0] & 0x80
        raw[0] ^= 0x80
        if negative:
            raw = bytearray(b ^ 0xFF for b in raw)
        pos, parts = 0, []
        if lead:
            parts.append(str(int.from_bytes(raw[:lead], "big")))
            pos = lead
        for _ in range(intg0):
            parts.append(f"{int.from_bytes(raw[pos : pos + 4], 'big'):09d}")
            pos += 4
        whole = "".join(parts).lstrip("0") or "0"
        fparts = []
        for _ in range(frac0):
            fparts.append(f"{int.from_bytes(raw[pos : pos + 4], 'big'):09d}")
            pos += 4
        if tail:
            fparts.append(f"{int.from_bytes(raw[pos : pos + tail], 'big'):0{frac0x}d}")
        text = whole + ("." + "".join(fparts) if scale else "")
        return decimal.Decimal(("-" if negative else "") + text), o + size

    return read


def _frac_reader(fsp: int) -> tuple[int, int]:
    """(bytes, multiplier to microseconds) of a fractional-seconds part."""
    nbytes = (fsp + 1) // 2
    return nbytes, (100 ** (3 - nbytes)) if nbytes else 0


def _datetime2_reader(fsp: int) -> Reader:
    nbytes, mult = _frac_reader(fsp)

    def read(d: bytes, o: int) -> tuple[Any, int]:
        packed = int.from_bytes(d[o : o + 5], "big") - 0x8000000000
        micro = int.from_bytes(d[o + 5 : o + 5 + nbytes], "big") * mult if nbytes else 0
        ym = (packed >> 22) & 0x1FFFF
        try:
            value = dt.datetime(
                ym // 13, ym % 13, (packed >> 17) & 31, (packed >> 12) & 31,
                (packed >> 6) & 63, packed & 63, micro,
            )  # fmt: skip
        except ValueError:  # a zero or invalid date: no Python datetime for it
            value = None
        return value, o + 5 + nbytes

    return read


def _timestamp2_reader(fsp: int) -> Reader:
    nbytes, mult = _frac_reader(fsp)

    def read(d: bytes, o: int) -> tuple[Any, int]:
        secs = int.from_bytes(d[o : o + 4], "big")
        micro = int.from_bytes(d[o + 4 : o + 4 + nbytes], "big") * mult if nbytes else 0
        if not secs and not micro:  # the zero timestamp 0000-00-00 00:00:00
            return None, o + 4 + nbytes
        return _EPOCH + dt.timedelta(seconds=secs, microseconds=micro), o + 4 + nbytes

    return read


def _time2_reader(fsp: int) -> Reader:
    nbytes = (fsp + 1) // 2

    def read(d: bytes, o: int) -> tuple[Any, int]:
        if nbytes == 3:
            packed = int.from_bytes(d[o : o + 6], "big") - 0x800000000000
        else:
            intpart = int.from_bytes(d[o : o + 3], "big") - 0x800000
            frac = int.from_bytes(d[o + 3 : o + 3 + nbytes], "big") if nbytes else 0
            if nbytes and intpart < 0 and frac:
                intpart += 1
                frac -= 0x100 if nbytes == 1 else 0x10000
            packed = (intpart << 24) + frac * (10000 if nbytes == 1 else 100 if nbytes else 0)
        sign = -1 if packed < 0 else 1
        packed = abs(packed)
        hms, micro = packed >> 24, packed % (1 << 24)
        delta = dt.timedelta(
            hours=(hms >> 12) % (1 << 10), minutes=(hms >> 6) % 64, seconds=hms % 64,
            microseconds=micro,
        )  # fmt: skip
        return sign * delta, o + 3 + nbytes

    return read


def _date(d: bytes, o: int) -> tuple[Any, int]:
    v = int.from_bytes(d[o : o + 3], "little")
    try:
        return dt.date(v >> 9, (v >> 5) & 15, v & 31), o + 3
    except ValueError:
        return None, o + 3


def _datetime_old(d: bytes, o: int) -> tuple[Any, int]:
    v = int.from_bytes(d[o : o + 8], "little")
    date, time_ = divmod(v, 1_000_000)
    try:
        value = dt.datetime(date // 10000, date // 100 % 100, date % 100,
                            time_ // 10000, time_ // 100 % 100, time_ % 100)  # fmt: skip
    except ValueError:
        value = None
    return value, o + 8


def _time_old(d: bytes, o: int) -> tuple[Any, int]:
    v = int.from_bytes(d[o : o + 3], "little", signed=True)
    sign = -1 if v < 0 else 1
    v = abs(v)
    return sign * dt.timedelta(hours=v // 10000, minutes=v // 100 % 100, seconds=v % 100), o + 3


# ------------------------------------------------------------------ row images
def decode_rows(tm: TableMap, data: bytes, off: int, end: int, update: bool) -> list[Any]:
    """The rows of a rows event body from `off` (just after the table id and flags).

    Insert/delete: a list of images; update: a list of (before, after) pairs. An image is a
    dict of the columns present in it (all of them with binlog_row_image=FULL)."""
    count, off = lenenc(data, off)
    nbytes = (count + 7) // 8
    present = _present(data[off : off + nbytes], count)
    off += nbytes
    present_after = present
    if update:
        present_after = _present(data[off : off + nbytes], count)
        off += nbytes
    if len(present) != count or len(present_after) != count:
        _refuse_partial(tm, present if len(present) != count else present_after)
    out: list[Any] = []
    while off < end:
        before, off = _image(tm, data, off, present)
        if update:
            after, off = _image(tm, data, off, present_after)
            out.append((before, after))
        else:
            out.append(before)
    return out


def _refuse_partial(tm: TableMap, present: tuple[int, ...]) -> None:
    missing = [c.name for c in tm.columns if c.index not in present]
    raise SourceError(
        f"a change of {tm.db}.{tm.table} has a partial row image (binlog_row_image=MINIMAL or"
        f" NOBLOB, possibly set per session): columns {', '.join(missing)} are missing, and"
        " publishing them as null would be wrong. Set binlog_row_image=FULL on the server and"
        " in every session that writes captured tables, then replay the table"
    )


_PRESENT_CACHE: dict[tuple[bytes, int], tuple[int, ...]] = {}


def _present(bitmap: bytes, count: int) -> tuple[int, ...]:
    key = (bytes(bitmap), count)
    cols = _PRESENT_CACHE.get(key)
    if cols is None:
        cols = tuple(i for i in range(count) if bitmap[i >> 3] & (1 << (i & 7)))
        _PRESENT_CACHE[key] = cols
    return cols


def _image(tm: TableMap, data: bytes, off: int, present: tuple[int, ...]) -> tuple[dict, int]:
    nbytes = (len(present) + 7) // 8
    nulls = data[off : off + nbytes]
    off += nbytes
    row: dict[str, Any] = {}
    columns, readers = tm.columns, tm.readers
    assert readers is not None, "TableMap.prepare() first"
    for j, i in enumerate(present):
        if nulls[j >> 3] & (1 << (j & 7)):
            row[columns[i].name] = None
        else:
            row[columns[i].name], off = readers[i](data, off)
    return row, off
