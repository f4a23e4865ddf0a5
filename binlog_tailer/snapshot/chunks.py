"""A table read in primary-key chunks: its description, the chunk statement, and SELECT values
made into what the binlog reader decodes for the same row (pure: no server here).

Rows a snapshot reads go through the same envelope mapper as streamed rows, so a value must
arrive as `binlog_tailer.binlog.rows` would have decoded it: the README's type table holds for
both (the type conformance tests check it on both paths).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE as T

from binlog_tailer.binlog.rows import shortest_float32
from binlog_tailer.errors import ConfigError
from binlog_tailer.model import Column, TableSchema

# information_schema.COLUMNS.DATA_TYPE -> the binlog's type code (what the encoder keys on)
_TYPE_CODES = {
    "tinyint": T.TINY,
    "smallint": T.SHORT,
    "mediumint": T.INT24,
    "int": T.LONG,
    "integer": T.LONG,
    "bigint": T.LONGLONG,
    "decimal": T.NEWDECIMAL,
    "float": T.FLOAT,
    "double": T.DOUBLE,
    "bit": T.BIT,
    "date": T.DATE,
    "datetime": T.DATETIME2,
    "timestamp": T.TIMESTAMP2,
    "time": T.TIME2,
    "year": T.YEAR,
    "char": T.STRING,
    "binary": T.STRING,
    "varchar": T.VARCHAR,
    "varbinary": T.VARCHAR,
    "enum": T.ENUM,
    "set": T.SET,
    "json": T.JSON,
}
_BLOBS = ("tinyblob", "blob", "mediumblob", "longblob", "tinytext", "text", "mediumtext")
_GEOMETRY = (
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection", "geomcollection",
)  # fmt: skip
_SET_MEMBERS = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True)
class ColumnInfo:
    """One row of information_schema.COLUMNS, as much as a snapshot needs."""

    name: str
    data_type: str  # DATA_TYPE, e.g. "varchar"
    column_type: str  # COLUMN_TYPE, e.g. "bit(10)", "set('a','b')"


def table_schema(
    db: str, table: str, columns: Sequence[ColumnInfo], key: Sequence[str], json_columns=()
) -> TableSchema:
    """The table as the binlog's table map would describe it. `key`: the columns chunks are
    ordered by (the primary key, or a chosen unique key)."""
    if not columns:
        raise ConfigError(f"snapshot: table {db}.{table} does not exist (or has no columns)")
    cols = []
    for c in columns:
        dtype = c.data_type.lower()
        if dtype in _BLOBS or dtype in ("longtext",):
            code = T.BLOB
        elif dtype in _GEOMETRY:
            code = T.GEOMETRY
        else:
            code = _TYPE_CODES.get(dtype, T.VARCHAR)
        members: tuple[str, ...] = ()
        if dtype == "set":
            members = tuple(m.replace("''", "'") for m in _SET_MEMBERS.findall(c.column_type))
        cols.append(Column(c.name, code, members, is_json=c.name in json_columns))
    names = {c.name for c in cols}
    missing = [k for k in key if k not in names]
    if missing:
        raise ConfigError(f"snapshot: {db}.{table} has no column {', '.join(missing)}")
    return TableSchema(db, table, tuple(cols), tuple(key))


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def chunk_query(
    schema: TableSchema, key: Sequence[str], after: Sequence[Any] | None, limit: int,
    where: str | None = None,
) -> tuple[str, list[Any]]:  # fmt: skip
    """The SELECT of the next chunk: up to `limit` rows in key order, after key `after`
    (None: from the first). A composite key compares as (k1 > v1) OR (k1 = v1 AND k2 > v2)..,
    which both servers read as a range of the key's index."""
    # a FLOAT as SELECT prints it is rounded to 6 digits; plus 0e0 it is its exact double
    cols = ", ".join(
        f"({quote(c.name)} + 0e0)" if c.type_code == T.FLOAT else quote(c.name)
        for c in schema.columns
    )
    conds, params = [], []
    if after is not None:
        terms = []
        for i, k in enumerate(key):
            eq = [f"{quote(p)} = %s" for p in key[:i]]
            terms.append("(" + " AND ".join([*eq, f"{quote(k)} > %s"]) + ")")
            params += [*after[:i], after[i]]
        conds.append("(" + " OR ".join(terms) + ")")
    if where:
        conds.append("(" + where.replace("%", "%%") + ")")  # the statement has parameters
    sql = f"SELECT {cols} FROM {quote(schema.db)}.{quote(schema.table)}"
    if conds:
        sql += " WHERE " + " AND ".join(conds)
    sql += " ORDER BY " + ", ".join(quote(k) for k in key) + f" LIMIT {int(limit)}"
    return sql, params


Normalize = Callable[[Any], Any]


def _bits(width: int) -> Normalize:
    def convert(v: Any) -> Any:
        if isinstance(v, bytes | bytearray):
            return format(int.from_bytes(v, "big"), f"0{width}b")
        return v

    return convert


def _set(v: Any) -> Any:
    if isinstance(v, str):
        return set(v.split(",")) if v else set()
    return v


def _json(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        v = v.decode("utf-8")
    return json.loads(v) if isinstance(v, str) else v


def _real_date(v: Any) -> Any:
    # a zero or invalid date has no Python form: PyMySQL leaves its text, the binlog gives None
    return v if v is None or isinstance(v, dt.date) else None


def normalizers(schema: TableSchema, columns: Sequence[ColumnInfo]) -> list[Normalize | None]:
    """Per column: how a SELECT value becomes the binlog reader's value (None: as it is)."""
    out: list[Normalize | None] = []
    for col, info in zip(schema.columns, columns, strict=True):
        t = col.type_code
        if t == T.BIT:
            m = re.search(r"\((\d+)\)", info.column_type)
            out.append(_bits(int(m.group(1)) if m else 1))
        elif t == T.SET:
            out.append(_set)
        elif t == T.JSON:
            out.append(_json)
        elif t in (T.DATE, T.DATETIME2, T.TIMESTAMP2):
            out.append(_real_date)
        elif t == T.FLOAT:
            out.append(shortest_float32)
        else:
            out.append(None)
    return out


def row_image(
    schema: TableSchema, plan: Sequence[Normalize | None], row: Sequence[Any]
) -> dict[str, Any]:
    """A SELECT row as a row image (column name -> decoded value)."""
    return {
        c.name: (v if f is None or v is None else f(v))
        for c, f, v in zip(schema.columns, plan, row, strict=True)
    }
