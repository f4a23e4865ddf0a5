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
# optional metadata fields (binlog_row_metadata), by type code
_SIGNEDNESS, _DEFAULT_CHARSET, _COLUMN_CHARSET, _COLUMN_NAME = 1, 2, 3, 4
_SET_STR_VALUE, _ENUM_STR_VALUE, _SIMPLE_PRIMARY_KEY, _PRIMARY_KEY_WITH_PREFIX = 5, 6, 8, 9
_ENUM_AND_SET_DEFAULT_CHARSET, _ENUM_AND_SET_COLUMN_CHARSET = 10, 11


def parse_table_map(
    data: bytes, off: int, end: int, is_mariadb: bool, charsets: Charsets
) -> TableMap:
    table_id, db, table, off = _read_names(data, off)
    columns, off = _read_columns(data, off)
    primary_key, named = _read_optional_metadata(columns, data, off, end, is_mariadb, charsets)
    return TableMap(table_id, db, table, columns, primary_key, named)


def _read_names(data: bytes, off: int) -> tuple[int, str, str, int]:
    """The table id, database and table name; then the offset after them."""
    low, high = _U48(data, off)
    table_id = low | (high << 32)
    off += 8  # table id (6) + flags (2)
    db, off = _read_name(data, off)
    table, off = _read_name(data, off)
    return table_id, db, table, off


def _read_name(data: bytes, off: int) -> tuple[str, int]:
    """A name: its length (one byte), its bytes, a NUL."""
    n = data[off]
    return data[off + 1 : off + 1 + n].decode("utf-8"), off + n + 2


def _read_columns(data: bytes, off: int) -> tuple[list[ColumnDef], int]:
    """The columns with their types and type metadata; then the offset of the optional
    metadata (after the nullability bitmap, which is skipped)."""
    count, off = lenenc(data, off)
    columns = [ColumnDef(i, data[off + i]) for i in range(count)]
    off += count
    meta_size, off = lenenc(data, off)
    meta_end = off + meta_size
    for c in columns:
        off = _read_meta(c, data, off)
    return columns, meta_end + (count + 7) // 8


def _read_optional_metadata(
    columns: list[ColumnDef], data: bytes, off: int, end: int, is_mariadb: bool,
    charsets: Charsets,
) -> tuple[tuple[str, ...], bool]:  # fmt: skip
    """Applies the optional metadata fields (type, length, value each) to `columns`; returns
    the primary key and whether the fields named the columns."""
    primary_key: tuple[str, ...] = ()
    named = False
    while off < end:
        kind = data[off]
        length, off = lenenc(data, off + 1)
        value = data[off : off + length]
        off += length
        if kind == _SIGNEDNESS:
            _read_signedness(columns, value)
        elif kind in (_DEFAULT_CHARSET, _COLUMN_CHARSET):  # of character columns
            targets = [c for c in columns if _is_character(c, is_mariadb)]
            _charsets(kind, value, targets, charsets)
        elif kind in (_ENUM_AND_SET_DEFAULT_CHARSET, _ENUM_AND_SET_COLUMN_CHARSET):
            targets = [c for c in columns if c.real_type in (T.ENUM, T.SET)]
            _charsets(kind - 8, value, targets, charsets)
        elif kind == _COLUMN_NAME:
            _read_column_names(columns, value)
            named = True
        elif kind in (_SET_STR_VALUE, _ENUM_STR_VALUE):
            _read_str_values(columns, value, T.SET if kind == _SET_STR_VALUE else T.ENUM)
        elif kind in (_SIMPLE_PRIMARY_KEY, _PRIMARY_KEY_WITH_PREFIX):
            keys = _read_key_indexes(value, kind == _PRIMARY_KEY_WITH_PREFIX)
            primary_key = tuple(columns[i].name for i in keys)
    if primary_key:  # names were resolved before COLUMN_NAME may have been read
        index = {f"col{c.index}": c.name for c in columns}
        primary_key = tuple(index.get(k, k) for k in primary_key)
    return primary_key, named


def _read_signedness(columns: list[ColumnDef], value: bytes) -> None:
    """One bit per numeric column, most significant first."""
    numeric = [c for c in columns if c.type in _NUMERIC]
    for i, c in enumerate(numeric):
        c.unsigned = bool(value[i >> 3] & (0x80 >> (i & 7)))


def _read_column_names(columns: list[ColumnDef], value: bytes) -> None:
    pos = 0
    for c in columns:
        size, pos = lenenc(value, pos)
        c.name = value[pos : pos + size].decode("utf-8")
        pos += size


def _read_str_values(columns: list[ColumnDef], value: bytes, type_code: int) -> None:
    """The member names of each SET (or each ENUM) column: a count, then the names."""
    targets = [c for c in columns if c.real_type == type_code]
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
        if type_code == T.SET:
            c.set_values = decoded
        else:
            c.enum_values = decoded


def _read_key_indexes(value: bytes, with_prefix: bool) -> list[int]:
    """The column indexes of a primary key: SIMPLE_PRIMARY_KEY lists them, and
    PRIMARY_KEY_WITH_PREFIX pairs each with a prefix length (skipped)."""
    pos, keys = 0, []
    while pos < len(value):
        i, pos = lenenc(value, pos)
        if with_prefix:
            _, pos = lenenc(value, pos)
        keys.append(i)
    return keys


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
# A reader decodes one column's value at an offset and returns it with the next offset. The
# readers are built once per table map (`_reader`) and run per row: whatever a column's type
# metadata decides is settled here, outside them.
def _reader(c: ColumnDef) -> Reader:
    build = _READERS.get(c.real_type)
    if build is None:
        raise SourceError(
            f"column {c.name!r} has a binlog type ({c.real_type}) binlog-tailer cannot decode"
        )
    return build(c)


# numbers
def _fixed_size(s: struct.Struct) -> Reader:
    unpack, size = s.unpack_from, s.size
    return lambda d, o: (unpack(d, o)[0], o + size)


def _int_reader(c: ColumnDef) -> Reader:
    return _fixed_size(_INTS[(c.real_type, c.unsigned)])


def _double_reader(c: ColumnDef) -> Reader:
    return _fixed_size(_INTS[(T.DOUBLE, False)])  # signed or not (deprecated), the same


def _int24_reader(c: ColumnDef) -> Reader:
    signed = not c.unsigned
    return lambda d, o: (int.from_bytes(d[o : o + 3], "little", signed=signed), o + 3)


def _year(d: bytes, o: int) -> tuple[Any, int]:
    return (d[o] + 1900) if d[o] else 0, o + 1


# strings and bytes
def _char_reader(c: ColumnDef) -> Reader:
    if c.charset != "binary":
        return _varchar_reader(c)
    # BINARY(n): the binlog drops trailing zero bytes, the column keeps them
    read, width = _string_reader(2 if c.length > 255 else 1, "binary"), c.length

    def binary(d: bytes, o: int) -> tuple[Any, int]:
        value, o = read(d, o)
        return value.ljust(width, b"\x00"), o

    return binary


def _varchar_reader(c: ColumnDef) -> Reader:
    return _string_reader(2 if c.length > 255 else 1, c.charset)


# enumerations and bits
def _enum_reader(c: ColumnDef) -> Reader:
    values, size = c.enum_values, c.length

    def enum(d: bytes, o: int) -> tuple[Any, int]:
        i = int.from_bytes(d[o : o + size], "little")
        return (values[i - 1] if 0 < i <= len(values) else ""), o + size

    return enum


def _set_reader(c: ColumnDef) -> Reader:
    members, size = c.set_values, c.length

    def set_(d: bytes, o: int) -> tuple[Any, int]:
        mask = int.from_bytes(d[o : o + size], "little")
        return {m for i, m in enumerate(members) if mask >> i & 1}, o + size

    return set_


def _bit_reader(c: ColumnDef) -> Reader:
    nbits, nbytes = c.bits, (c.bits + 7) // 8
    return lambda d, o: (
        format(int.from_bytes(d[o : o + nbytes], "big"), f"0{nbits}b"),
        o + nbytes,
    )


# dates and times without fractional seconds; the others: _datetime2_reader and its peers
def _timestamp_old(d: bytes, o: int) -> tuple[Any, int]:
    return _EPOCH + dt.timedelta(seconds=_U32(d, o)[0]), o + 4


def _null(d: bytes, o: int) -> tuple[Any, int]:
    return None, o


_F32 = struct.Struct("<f")


def _float32(d: bytes, o: int) -> tuple[Any, int]:
    (x,) = _F32.unpack_from(d, o)
    return shortest_float32(x), o + 4


def shortest_float32(x: float) -> float:
    """A FLOAT as the shortest decimal that reads back as the same 32-bit value (0.1, not the
    0.10000000149011612 its double expansion prints). A float32 needs at most 9 digits; if one
    with fewer than 6 exists, rounding to 6 finds it, so 6 is where the search starts."""
    for digits in (6, 7, 8):
        shorter = float(f"{x:.{digits}g}")
        with contextlib.suppress(OverflowError):  # rounded past the largest float32
            if _F32.unpack(_F32.pack(shorter))[0] == x:
                return shorter
    return float(f"{x:.9g}")


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


# the reader of each binlog type (a ColumnDef's real_type): type -> builder
_READERS: dict[int, Callable[[ColumnDef], Reader]] = {
    # numbers
    T.TINY: _int_reader,
    T.SHORT: _int_reader,
    T.LONG: _int_reader,
    T.LONGLONG: _int_reader,
    T.INT24: _int24_reader,
    T.FLOAT: lambda c: _float32,
    T.DOUBLE: _double_reader,
    T.YEAR: lambda c: _year,
    T.NEWDECIMAL: lambda c: _decimal_reader(c.precision, c.scale),
    # strings and bytes
    T.STRING: _char_reader,
    T.VARCHAR: _varchar_reader,
    T.VAR_STRING: _varchar_reader,
    T.BLOB: lambda c: _string_reader(c.meta_len, c.charset),
    T.GEOMETRY: lambda c: _string_reader(c.meta_len, "binary"),
    T.JSON: lambda c: _json_reader(c.meta_len),
    # enumerations and bits
    T.ENUM: _enum_reader,
    T.SET: _set_reader,
    T.BIT: _bit_reader,
    # dates and times
    T.DATE: lambda c: _date,
    T.DATETIME2: lambda c: _datetime2_reader(c.fsp),
    T.TIMESTAMP2: lambda c: _timestamp2_reader(c.fsp),
    T.TIME2: lambda c: _time2_reader(c.fsp),
    T.TIMESTAMP: lambda c: _timestamp_old,
    T.DATETIME: lambda c: _datetime_old,
    T.TIME: lambda c: _time_old,
    T.NULL: lambda c: _null,
}


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
