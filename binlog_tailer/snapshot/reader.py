"""Reads chunks of tables on a side connection (read-only: SELECT and the binlog's end).

Each chunk is one autocommit SELECT (a consistent read of its own), followed by the server's
end of binlog: the chunk's high watermark. Every transaction the SELECT saw is in the binlog
before that point, so once the stream has read up to it, the chunk is no older than anything
streamed (`interleave` drops the keys the stream changed meanwhile).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from binlog_tailer.errors import ConfigError, SourceError, SourceUnavailable
from binlog_tailer.filtering import TableFilter
from binlog_tailer.model import TableSchema
from binlog_tailer.server import (
    CANNOT_CONNECT,
    connect,
    latest_position,
    mariadb_json_columns,
    server_info,
)
from binlog_tailer.settings import MysqlSettings
from binlog_tailer.snapshot.chunks import (
    ColumnInfo,
    Normalize,
    chunk_query,
    normalizers,
    row_image,
    table_schema,
)

log = logging.getLogger(__name__)

_LOST = (pymysql.err.OperationalError, pymysql.err.InterfaceError, SourceUnavailable)
LOST = (*CANNOT_CONNECT, 1047, 1158, 1159, 1160, 1161, 1927)  # and network errors mid-query


@dataclass
class Table:
    schema: TableSchema
    key: tuple[str, ...]
    plan: list[Normalize | None]
    estimate: int  # information_schema's estimate of its rows


@dataclass
class Chunk:
    table: Table
    rows: list[dict[str, Any]]
    keys: list[tuple[Any, ...]]
    high: tuple[str, int]  # the binlog's end after the SELECT
    last: bool  # fewer rows than asked for: the table's last chunk
    read_at: float  # time.monotonic() when the SELECT began


class ChunkReader:
    def __init__(
        self,
        settings: MysqlSettings,
        chunk_size: int,
        keys: dict[str, list[str]] | None = None,
        connector: Callable[[MysqlSettings], pymysql.Connection] = connect,
    ) -> None:
        self.settings = settings
        self.chunk_size = chunk_size
        self.keys = keys or {}
        self._connect = connector
        self._conn: pymysql.Connection | None = None
        self._tables: dict[str, Table] = {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _session(self) -> pymysql.Connection:
        if self._conn is None:
            conn = self._connect(self.settings)
            with conn.cursor() as cur:
                # TIMESTAMP values in UTC, as the binlog has them
                cur.execute("SET time_zone = '+00:00'")
            self._conn = conn
        return self._conn

    def _retrying(self, what: str, fn: Callable[[pymysql.Connection], Any]) -> Any:
        """`fn` on the session; a lost connection is replaced, for as long as the stream's
        reconnect timeout."""
        deadline = time.monotonic() + self.settings.reconnect_timeout_seconds
        wait = 0.2
        while True:
            try:
                return fn(self._session())
            except _LOST as exc:
                if isinstance(exc, pymysql.err.OperationalError) and exc.args[0] not in LOST:
                    raise  # an answer, not a lost connection: retrying would get the same
                self.close()
                if time.monotonic() + wait > deadline:
                    raise SourceUnavailable(f"snapshot: cannot {what}: {exc}") from exc
                log.warning("snapshot: cannot %s (%s); retrying", what, exc)
                time.sleep(wait)
                wait = min(wait * 2, 5.0)

    def tables(self, captured: TableFilter, outbox: TableFilter) -> list[str]:
        """Every base table the capture settings include (outbox tables left out), sorted."""

        def query(conn: pymysql.Connection) -> list[str]:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
                    " WHERE TABLE_TYPE = 'BASE TABLE'"
                )
                rows = cur.fetchall()
            return sorted(f"{db}.{t}" for db, t in rows if captured(db, t) and not outbox(db, t))

        result: list[str] = self._retrying("list the captured tables", query)
        return result

    def table(self, name: str) -> Table:
        """`db.table` described (cached)."""
        found = self._tables.get(name)
        if found is None:
            found = self._retrying(f"read the columns of {name}", lambda c: self._describe(c, name))
            self._tables[name] = found
        return found

    def _describe(self, conn: pymysql.Connection, name: str) -> Table:
        db, _, table = name.partition(".")
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            columns = [ColumnInfo(str(n), str(d), str(t)) for n, d, t in cur.fetchall()]
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
                " AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (db, table),
            )
            primary = [str(r[0]) for r in cur.fetchall()]
            cur.execute(
                "SELECT TABLE_ROWS FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (db, table),
            )
            row = cur.fetchone()
        json_cols = mariadb_json_columns(conn, db, table) if server_info(conn).is_mariadb else ()
        schema = table_schema(db, table, columns, primary, json_cols)  # it exists
        key = self.keys.get(name) or primary
        if not key:
            raise ConfigError(
                f"snapshot: {name} has no primary key to read it in chunks by; name a unique"
                f' key\'s columns for it in snapshot.keys (e.g. {{"{name}": ["col"]}})'
            )
        unknown = [k for k in key if k not in {c.name for c in schema.columns}]
        if unknown:
            raise ConfigError(f"snapshot.keys: {name} has no column {', '.join(unknown)}")
        estimate = int(row[0] or 0) if row else 0
        return Table(schema, tuple(key), normalizers(schema, columns), estimate)

    def check_condition(self, name: str, where: str) -> None:
        """ConfigError unless `where` is a condition the server runs on `name`."""
        table = self.table(name)
        sql, params = chunk_query(table.schema, table.key, None, 0, where)

        def run(conn: pymysql.Connection) -> None:
            with conn.cursor() as cur:
                cur.execute(sql, params)

        try:
            self._retrying(f"check the condition on {name}", run)
        except pymysql.err.MySQLError as exc:
            raise ConfigError(f"snapshot --where {where!r} on {name}: {exc.args[-1]}") from exc

    def read(self, name: str, after: Sequence[Any] | None, where: str | None = None) -> Chunk:
        """The next chunk of `name` after key `after` (None: its first); `where`: of the rows
        matching this SQL condition only."""
        try:
            return self._read(self.table(name), after, where)
        except pymysql.err.MySQLError as exc:  # DDL changed the table since it was read?
            self._tables.pop(name, None)
            try:
                return self._read(self.table(name), after, where)
            except pymysql.err.MySQLError:
                raise SourceError(f"snapshot: cannot read {name}: {exc.args[-1]}") from exc

    def _read(self, table: Table, after: Sequence[Any] | None, where: str | None) -> Chunk:
        name = f"{table.schema.db}.{table.schema.table}"
        sql, params = chunk_query(table.schema, table.key, after, self.chunk_size, where)

        def query(conn: pymysql.Connection) -> Chunk:
            began = time.monotonic()
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
            high = latest_position(conn)
            assert high.file is not None and high.pos is not None
            images = [row_image(table.schema, table.plan, r) for r in rows]
            keys = [tuple(image[k] for k in table.key) for image in images]
            last = len(rows) < self.chunk_size
            return Chunk(table, images, keys, (high.file, high.pos), last, began)

        chunk: Chunk = self._retrying(f"read a chunk of {name}", query)
        return chunk
