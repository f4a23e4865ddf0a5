"""MySQL column values (as binlog_tailer.binlog.rows decodes them) to JSON-ready values.

The mapping, per column type (see README "Types"):

- integers, YEAR: JSON numbers (exact; BIGINT UNSIGNED may exceed 2^53)
- FLOAT, DOUBLE: JSON numbers
- DECIMAL: a string with every digit of the column's scale (``"12.50"``)
- DATE: ``"2024-02-29"``; DATETIME: ISO-8601 without a zone, as stored (``"2024-02-29T13:45:00"``,
  fraction only when non-zero); TIMESTAMP: ISO-8601 in UTC with ``Z``
- TIME: ``"[-]HH:MM:SS[.ffffff]"`` (may exceed 24 h or be negative, as MySQL allows)
- CHAR, VARCHAR, TEXT, ENUM: strings (utf8mb4 intact)
- BINARY, VARBINARY, BLOB, GEOMETRY (WKB): base64 strings
- BIT(n): a string of n ``0``/``1`` characters
- SET: an array of the members present, in definition order
- JSON: the JSON value itself (MySQL binary JSON; MariaDB JSON columns, detected from their
  ``json_valid`` check, are parsed from their text)
- NULL: null. A zero date (``0000-00-00``) or zero TIMESTAMP has no ISO-8601 form and arrives
  as null too.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import orjson
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.model import SCHEMA_CACHE_LIMIT, Column, TableSchema

Converter = Callable[[Any], Any]

_TIMESTAMPS = {FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIMESTAMP2}
_DATETIMES = {FIELD_TYPE.DATETIME, FIELD_TYPE.DATETIME2}
_TIMES = {FIELD_TYPE.TIME, FIELD_TYPE.TIME2}


def _identity(v: Any) -> Any:
    return v


def _bytes_or_text(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(v).decode("ascii")
    return v


def _decimal(v: Any) -> Any:
    return format(v, "f") if isinstance(v, decimal.Decimal) else v


def _date(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.date) else v


def _datetime(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.datetime) else _date(v)


def _timestamp(v: Any) -> Any:
    # the binlog reader decodes TIMESTAMP to a naive UTC datetime
    return v.isoformat() + "Z" if isinstance(v, dt.datetime) else v


def _time(v: Any) -> Any:
    if not isinstance(v, dt.timedelta):
        return v
    micros = v.days * 86_400_000_000 + v.seconds * 1_000_000 + v.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    secs, frac = divmod(micros, 1_000_000)
    hours, rest = divmod(secs, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{frac:06d}" if frac else text


def _json_text(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, str):
        try:
            return json.loads(v, parse_float=decimal.Decimal)  # every digit the text has
        except ValueError:
            return v  # not valid JSON after all: keep the text rather than lose it
    return v


def _set(column: Column) -> Converter:
    order = {name: i for i, name in enumerate(column.set_values)}

    def convert(v: Any) -> Any:
        if isinstance(v, set | frozenset):
            return sorted(v, key=lambda m: order.get(m, len(order)))
        return v

    return convert


def converter_for(column: Column) -> Converter:
    t = column.type_code
    if column.is_json:
        return _json_text
    if t in _TIMESTAMPS:
        return _timestamp
    if t in _DATETIMES:
        return _datetime
    if t in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        return _date
    if t in _TIMES:
        return _time
    if t in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
        return _decimal
    if t == FIELD_TYPE.JSON:
        return _identity  # decoded exactly by binlog_tailer.binlog.mysql_json
    if t == FIELD_TYPE.SET:
        return _set(column)
    if t in (
        FIELD_TYPE.BLOB,
        FIELD_TYPE.TINY_BLOB,
        FIELD_TYPE.MEDIUM_BLOB,
        FIELD_TYPE.LONG_BLOB,
        FIELD_TYPE.STRING,
        FIELD_TYPE.VAR_STRING,
        FIELD_TYPE.VARCHAR,
        FIELD_TYPE.GEOMETRY,
    ):
        return _bytes_or_text
    return _identity


class RowEncoder:
    """Converts rows of one table; converters are built once per table schema."""

    def __init__(self) -> None:
        self._cache: dict[TableSchema, tuple[tuple[str, Converter], ...]] = {}

    def encode(self, schema: TableSchema, row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        plan = self._cache.get(schema)
        if plan is None:
            plan = tuple((c.name, converter_for(c)) for c in schema.columns)
            if len(self._cache) > SCHEMA_CACHE_LIMIT:
                self._cache.clear()
            self._cache[schema] = plan
        out = {}
        for name, convert in plan:
            v = row.get(name)
            out[name] = None if v is None else convert(v)
        return out


COMPACT = (",", ":")
MYSQL_JSON_SEPARATORS = (", ", ": ")  # how MySQL's SELECT lays out a JSON column's text


def _refuse(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _writer(separators: tuple[str, str]) -> Callable[[Any], str]:
    """`json.JSONEncoder(ensure_ascii=False, separators=...).encode`, made once. `json.dumps`
    with arguments builds an encoder at every call, and `encode` its C writer at every call
    (1.5 of a 3.5 µs call for a small document): the C writer is made here once instead.
    No check for circular containers: the values written come from rows."""
    item, key = separators
    if c_make_encoder is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=separators).encode
    write = c_make_encoder(None, _refuse, encode_basestring, None, key, item, False, False, True)
    join = "".join
    return lambda obj: join(write(obj, 0))


_WRITERS = {seps: _writer(seps) for seps in (COMPACT, MYSQL_JSON_SEPARATORS)}
_FLOAT_TYPES = frozenset({FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE, FIELD_TYPE.JSON})


def dumps(obj: Any, separators: tuple[str, str] = COMPACT) -> bytes:
    """UTF-8 JSON (non-ASCII kept as is), compact unless told; Decimals (in JSON values) keep
    every digit."""
    write = _WRITERS.get(separators) or _writer(separators)
    try:
        return write(obj).encode("utf-8")
    except TypeError:
        if not _has_decimal(obj):
            raise
        return _exact_json(obj, separators).encode("utf-8")


def dumps_floatless(obj: Any) -> bytes:
    """`dumps(obj)` of a value the caller knows holds no float: orjson writes the very same
    bytes several times faster. (It writes some floats otherwise, 1e-05 as 0.00001: never
    use it where one may be.) What orjson refuses (a Decimal, an integer beyond 64 bits)
    goes to `dumps`."""
    try:
        # Copied into a bytes object of its own size: orjson's holds the whole buffer it wrote
        # into (4 kB for a 300-byte value, twice a large one), and a record waiting for Kafka
        # keeps its value alive (50,000 small records: 197 MB instead of 16).
        return bytes(memoryview(orjson.dumps(obj)))
    except TypeError:
        return dumps(obj)


def holds_no_float(schema: TableSchema) -> bool:
    """Whether the rows of `schema`, encoded, can hold no float: no FLOAT, DOUBLE or JSON
    column (a JSON value may hold numbers of any kind)."""
    return not any(c.type_code in _FLOAT_TYPES or c.is_json for c in schema.columns)


def _has_decimal(v: Any) -> bool:
    if isinstance(v, decimal.Decimal):
        return True
    if isinstance(v, dict):
        return any(_has_decimal(x) for x in v.values())
    return isinstance(v, list | tuple) and any(_has_decimal(x) for x in v)


def _exact_json(v: Any, separators: tuple[str, str]) -> str:
    """JSON text with Decimals as numbers of all their digits: the standard library's encoder
    has no way to write a number it did not format itself (rare: decimals inside JSON values)."""
    item, key = separators
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, dict):
        pairs = (_exact_json(str(k), separators) + key + _exact_json(x, separators)
                 for k, x in v.items())  # fmt: skip
        return "{" + item.join(pairs) + "}"
    if isinstance(v, list | tuple):
        return "[" + item.join(_exact_json(x, separators) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False, separators=separators)
