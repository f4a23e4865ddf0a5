"""Decoder for MySQL's binary JSON format: the value of a JSON column in a row-based binlog image.

Format: MySQL ``sql-common/json_binary.h`` / ``json_binary.cc``. The result is what ``SELECT
json_col`` prints (``sql-common/json_dom.cc``) parsed by ``json.loads(text, parse_float=Decimal)``:
str keys and strings, exact ints, ``Decimal`` for opaque DECIMAL (int when its scale is 0, as it
prints without a point) and MySQL's text for opaque temporal and binary values; doubles alone
come back as float.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

__all__ = ["decode_json"]

_SMALL_OBJECT = 0x00
_LARGE_OBJECT = 0x01
_SMALL_ARRAY = 0x02
_LARGE_ARRAY = 0x03
_LITERAL = 0x04
_INT16 = 0x05
_UINT16 = 0x06
_INT32 = 0x07
_UINT32 = 0x08
_INT64 = 0x09
_UINT64 = 0x0A
_DOUBLE = 0x0B
_STRING = 0x0C
_OPAQUE = 0x0F

# enum_field_types of the opaque values SELECT prints specially
_FT_TIMESTAMP = 7
_FT_DATE = 10
_FT_TIME = 11
_FT_DATETIME = 12
_FT_NEWDECIMAL = 246
_FT_VAR_STRING = 253

_LITERALS: dict[int, bool | None] = {0: None, 1: True, 2: False}

# Types stored in the value entry itself instead of at an offset (32-bit ints: large format only)
_INLINED_SMALL = frozenset((_LITERAL, _INT16, _UINT16))
_INLINED_LARGE = frozenset((_LITERAL, _INT16, _UINT16, _INT32, _UINT32))

# MySQL refuses documents nested deeper than 100; this only stops runaway recursion on bad input.
_MAX_DEPTH = 200

_I16 = struct.Struct("<h").unpack_from
_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F64 = struct.Struct("<d").unpack_from
_FIXED: dict[int, tuple[Callable[[bytes, int], tuple[Any, ...]], int]] = {
    _INT16: (_I16, 2),
    _UINT16: (_U16, 2),
    _INT32: (_I32, 4),
    _UINT32: (_U32, 4),
    _INT64: (_I64, 8),
    _UINT64: (_U64, 8),
    _DOUBLE: (_F64, 8),
}
_SMALL_HEADER = struct.Struct("<HH").unpack_from  # element count, size in bytes
_LARGE_HEADER = struct.Struct("<II").unpack_from
_SMALL_KEY = struct.Struct("<HH")  # key offset, key length
_LARGE_KEY = struct.Struct("<IH")
_SMALL_ENTRY = struct.Struct("<BH")  # value type, value offset (or the inlined value)
_LARGE_ENTRY = struct.Struct("<BI")

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_POW10 = tuple(10**i for i in range(10))


def decode_json(data: bytes) -> Any:
    """Decode one binary JSON value (type byte first) as ``SELECT`` would print it.

    A zero-length value (stored by non-strict inserts of NULL into a NOT NULL column) is
    JSON null, as in MySQL. Raises ``ValueError`` on malformed input.
    """
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    if end == 0:
        return None
    try:
        t = data[0]
        if t <= _LARGE_ARRAY:
            return _container(data, t, 1, end, 1)
        return _scalar(data, t, 1, end)
    except UnicodeDecodeError as e:
        raise ValueError(f"binary JSON: invalid utf8mb4 text: {e}") from None
    except (IndexError, struct.error) as e:  # not expected: every read is bounds-checked
        raise ValueError(f"binary JSON: malformed value: {e}") from None


def _bad(what: str, pos: int) -> ValueError:
    return ValueError(f"binary JSON: {what} at offset {pos}")


def _container(data: bytes, t: int, pos: int, end: int, depth: int) -> Any:
    """An object or array starting at ``pos``; ``end`` bounds it (its parent's end).

    Kept whole: it checks every offset the format allows to point anywhere, and each check
    sits beside the read it guards."""
    if depth > _MAX_DEPTH:
        raise _bad(f"nesting deeper than {_MAX_DEPTH}", pos)
    large = t & 1
    if large:
        if pos + 8 > end:
            raise _bad("truncated container header", pos)
        count, size = _LARGE_HEADER(data, pos)
        key_struct, entry_struct = _LARGE_KEY, _LARGE_ENTRY
        first_key = pos + 8
    else:
        if pos + 4 > end:
            raise _bad("truncated container header", pos)
        count, size = _SMALL_HEADER(data, pos)
        key_struct, entry_struct = _SMALL_KEY, _SMALL_ENTRY
        first_key = pos + 4
    stop = pos + size
    if stop > end:
        raise _bad(f"container size {size} past the end of its parent", pos)
    is_object = t <= _LARGE_OBJECT
    first_entry = first_key + count * key_struct.size if is_object else first_key
    entry_size = entry_struct.size
    header_end = first_entry + count * entry_size
    if header_end > stop:
        raise _bad(f"{count} entries do not fit in container size {size}", pos)

    values: list[Any] = []
    append = values.append
    inlined = _INLINED_LARGE if large else _INLINED_SMALL
    header_size = header_end - pos
    for vt, vo in entry_struct.iter_unpack(data[first_entry:header_end]):
        if vt not in inlined:
            # Offsets are relative to the container. In-place updates (JSON_SET, JSON_REPLACE,
            # JSON_REMOVE) leave gaps and stale bytes, so never assume values are contiguous.
            if vo < header_size or vo >= size:
                raise _bad(f"value offset {vo} out of range", pos)
            p = pos + vo
            if vt == _STRING:
                n = data[p]
                if n < 0x80:
                    p += 1
                else:
                    n, p = _varlen(data, p, stop)
                q = p + n
                if q > stop:
                    raise _bad("truncated string", p)
                append(data[p:q].decode())
            elif vt <= _LARGE_ARRAY:
                append(_container(data, vt, p, stop, depth + 1))
            else:
                append(_scalar(data, vt, p, stop))
        # An inlined value sits in the offset field; MySQL reads it from the field's first bytes.
        elif vt == _INT16:
            v = vo & 0xFFFF
            append(v - 0x10000 if v & 0x8000 else v)
        elif vt == _LITERAL:
            lit = vo & 0xFF
            if lit > 2:
                raise _bad(f"unknown literal 0x{lit:02x}", pos)
            append(_LITERALS[lit])
        elif vt == _UINT16:
            append(vo & 0xFFFF)
        elif vt == _INT32:
            append(vo - 0x100000000 if vo & 0x80000000 else vo)
        else:
            append(vo)
    if not is_object:
        return values

    keys: list[str] = []
    for ko, kl in key_struct.iter_unpack(data[first_key:first_entry]):
        if ko < header_size or ko + kl > size:
            raise _bad(f"key offset {ko} (length {kl}) out of range", pos)
        a = pos + ko
        keys.append(data[a : a + kl].decode())
    return dict(zip(keys, values, strict=True))


def _scalar(data: bytes, t: int, pos: int, end: int) -> Any:
    """A non-inlined scalar of type ``t`` at ``pos``, not reaching past ``end``."""
    if t == _STRING:
        n, p = _varlen(data, pos, end)
        q = p + n
        if q > end:
            raise _bad("truncated string", p)
        return data[p:q].decode()
    fixed = _FIXED.get(t)
    if fixed is not None:
        unpack, width = fixed
        if pos + width > end:
            raise _bad(f"truncated {width}-byte number", pos)
        return unpack(data, pos)[0]
    if t == _LITERAL:
        if pos >= end:
            raise _bad("truncated literal", pos)
        lit = data[pos]
        if lit > 2:
            raise _bad(f"unknown literal 0x{lit:02x}", pos)
        return _LITERALS[lit]
    if t == _OPAQUE:
        return _opaque(data, pos, end)
    raise _bad(f"unknown value type 0x{t:02x}", pos)


def _varlen(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A length stored 7 bits a byte, low bits first (at most 5 bytes): (length, next pos)."""
    n = 0
    for i in range(5):
        if pos >= end:
            raise _bad("truncated length", pos)
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if n > 0xFFFFFFFF:
                raise _bad("length over 32 bits", pos)
            return n, pos
    raise _bad("length over 5 bytes", pos)


def _opaque(data: bytes, pos: int, end: int) -> Any:
    """An opaque value: MySQL field type byte, length, then that field type's own encoding."""
    if pos >= end:
        raise _bad("truncated opaque value", pos)
    field_type = data[pos]
    n, p = _varlen(data, pos + 1, end)
    q = p + n
    if q > end:
        raise _bad(f"truncated opaque value of type {field_type}", p)
    if field_type == _FT_NEWDECIMAL:
        return _decimal(data, p, q)
    if field_type in (_FT_DATETIME, _FT_TIMESTAMP, _FT_DATE, _FT_TIME):
        if n != 8:
            raise _bad(f"temporal opaque value of {n} bytes, not 8", p)
        return _temporal(field_type, _I64(data, p)[0], p)
    if field_type == _FT_VAR_STRING:  # printed as a plain string
        return data[p:q].decode()
    # base64 with a newline every 76 characters (MySQL's base64_encode), none at the end
    chunks = [binascii.b2a_base64(data[i : min(i + 57, q)], newline=False) for i in range(p, q, 57)]
    return f"base64:type{field_type}:" + b"\n".join(chunks).decode("ascii")


def _two(v: int) -> str:
    # MySQL's format_two_digits: out-of-range fields print as "00"
    return f"{v:02d}" if v < 100 else "00"


def _temporal(field_type: int, packed: int, pos: int) -> str:
    """A TIME_to_longlong_*_packed value printed like my_TIME_to_str(..., 6)."""
    # packed = +-(integer part << 24 | microseconds); the sign applies to the whole value
    negative = packed < 0
    if negative:
        packed = -packed
    usec = packed & 0xFFFFFF
    if usec > 999999:
        raise _bad(f"microseconds {usec} out of range", pos)
    whole = packed >> 24
    if field_type == _FT_TIME:
        # hour:10 minute:6 second:6; the hour is not limited to two digits
        hms = whole
        sign = "-" if negative else ""
        hour = (hms >> 12) & 0x3FF
        return f"{sign}{hour:02d}:{_two((hms >> 6) & 63)}:{_two(hms & 63)}.{usec:06d}"
    # (year*13+month):17 day:5 hour:5 minute:6 second:6; DATETIME ignores the sign
    ymd = whole >> 17
    ym = ymd >> 5
    year = ym // 13
    date = f"{_two(year // 100)}{_two(year % 100)}-{_two(ym % 13)}-{_two(ymd & 31)}"
    if field_type == _FT_DATE:
        return date
    hms = whole & 0x1FFFF
    return f"{date} {_two(hms >> 12)}:{_two((hms >> 6) & 63)}:{_two(hms & 63)}.{usec:06d}"


def _decimal(data: bytes, pos: int, end: int) -> Decimal | int:
    """Precision byte, scale byte, then MySQL's binary DECIMAL (as in a row image).

    SELECT prints exactly ``scale`` fractional digits, so a scale-0 DECIMAL reads back as an int.
    """
    if end - pos < 2:
        raise _bad("truncated decimal", pos)
    precision = data[pos]
    scale = data[pos + 1]
    if scale > precision or precision > 127:
        raise _bad(f"bad decimal precision/scale {precision}/{scale}", pos)
    intg0, intg0x = divmod(precision - scale, 9)
    frac0, frac0x = divmod(scale, 9)
    lead, tail = _DIG2BYTES[intg0x], _DIG2BYTES[frac0x]
    size = lead + 4 * (intg0 + frac0) + tail
    pos += 2
    if end - pos != size:
        raise _bad(f"decimal({precision},{scale}) of {end - pos} bytes, not {size}", pos)
    if size == 0:
        return 0
    # Big-endian groups of 9 digits; the top bit is set for non-negative values, and negative
    # values have every bit inverted.
    bits = size * 8
    raw = int.from_bytes(data[pos:end], "big")
    negative = not raw >> (bits - 1)
    raw ^= 1 << (bits - 1)
    if negative:
        raw ^= (1 << bits) - 1

    parts: list[str] = []
    if tail:
        v = raw & ((1 << (tail * 8)) - 1)
        if v >= _POW10[frac0x]:
            raise _bad("bad decimal digits", pos)
        parts.append(f"{v:0{frac0x}d}")
        raw >>= tail * 8
    raw = _nine_digit_groups(raw, frac0, parts, pos)
    frac = "".join(reversed(parts))
    parts = []
    raw = _nine_digit_groups(raw, intg0, parts, pos)
    if lead:
        if raw >= _POW10[intg0x]:
            raise _bad("bad decimal digits", pos)
        parts.append(str(raw))
    whole = "".join(reversed(parts))
    if not scale:
        return -int(whole) if negative else int(whole)
    text = f"{whole.lstrip('0') or '0'}.{frac}"
    return Decimal("-" + text if negative else text)


def _nine_digit_groups(raw: int, count: int, parts: list[str], pos: int) -> int:
    """Append `count` 4-byte groups of 9 digits from the low end of `raw`; return the rest."""
    for _ in range(count):
        v = raw & 0xFFFFFFFF
        if v > 999999999:
            raise _bad("bad decimal digits", pos)
        parts.append(f"{v:09d}")
        raw >>= 32
    return raw
