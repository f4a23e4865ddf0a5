"""The binlog reader: resume, reconnect, transaction grouping, positions.

It wraps ``pymysqlreplication.BinLogStreamReader`` for the protocol and table maps but owns
what the library gets wrong for a CDC service (see shared/design.md, "Traps"):

- *Resume* always happens at a transaction boundary: by file/offset when one is known (the
  library's ``is_mariadb=False`` path also streams from MariaDB), else by GTID.
- *Reconnect*: the library silently reconnects on errors 2013/2006 from its *original*
  position. Our connection class turns those errors into ``_ConnectionLost`` (not a pymysql
  error, so the library cannot catch it); we then reopen from the last transaction boundary we
  passed and skip the rows of the interrupted transaction that were already emitted.
- Rows of tables the filter rejects are never decoded (the library decodes lazily).

The iterator yields ``RowChange`` for each captured row, ``TxnEnd`` at each commit (and after
each standalone statement such as DDL), and ``None`` as an idle tick (server heartbeat).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from struct import error as struct_error

import pymysql
import pymysql.connections
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    MariadbGtidListEvent,
    PreviousGtidsEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from binlog_tailer.errors import PositionNotFound, SourceUnavailable
from binlog_tailer.model import Column, RowChange, TableSchema, TxnEnd
from binlog_tailer.position import BinlogPosition, MariadbGtidPos, MysqlGtidSet, parse_gtid
from binlog_tailer.server import connect, connection_kwargs, server_info, translate
from binlog_tailer.settings import MysqlSettings

log = logging.getLogger(__name__)

LOST_CONNECTION = (2006, 2013)
POSITION_GONE = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: file purged, GTID unknown, ...
MARIADB_FL_STANDALONE = 1

_EVENTS = [
    GtidEvent,
    MariadbGtidEvent,
    MariadbGtidListEvent,
    PreviousGtidsEvent,
    QueryEvent,
    XidEvent,
    RotateEvent,
    HeartbeatLogEvent,
    WriteRowsEvent,
    UpdateRowsEvent,
    DeleteRowsEvent,
]
_JSON_CHECK = re.compile(r"json_valid\(`([^`]+)`\)", re.IGNORECASE)

Item = RowChange | TxnEnd | None


class _ConnectionLost(Exception):
    """The replication connection broke; raised past the library's own reconnect."""


class _OwnedConnection(pymysql.connections.Connection):
    def _read_packet(self, packet_type=pymysql.connections.MysqlPacket):  # type: ignore[no-untyped-def]
        try:
            return super()._read_packet(packet_type)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in LOST_CONNECTION:
                raise _ConnectionLost(str(exc)) from exc
            raise


class BinlogSource:
    def __init__(
        self,
        settings: MysqlSettings,
        start: BinlogPosition,
        table_filter: Callable[[str, str], bool],
    ) -> None:
        self.settings = settings
        self._resume = start  # last transaction boundary passed
        self._filter = table_filter
        self._stopping = False
        self._stream: BinLogStreamReader | None = None
        self._schemas: dict[tuple, TableSchema] = {}
        self._json_columns: dict[tuple[str, str], frozenset[str]] = {}
        self._meta_conn: pymysql.Connection | None = None
        self.is_mariadb = False
        # state of the transaction being read
        self._file: str | None = start.file
        self._gtid_state = start.gtid
        self._txn_gtid: str | None = None
        self._in_txn = False
        self._emitted_in_txn = 0  # rows of the current transaction already yielded
        self._skip = 0  # rows to skip after reopening inside a transaction
        self.reconnects = 0

    # ------------------------------------------------------------------ public
    @property
    def position(self) -> BinlogPosition:
        """The last transaction boundary read."""
        return self._resume

    def stop(self) -> None:
        """Ask the iterator to end at the next transaction boundary (signal-safe).

        Ending inside a transaction would leave its first rows published but not checkpointed,
        to be published again by the next run. The rest of a transaction is already in the
        binlog when its first row is, so this waits only for bytes in flight; when idle, the
        next heartbeat ends the iteration."""
        self._stopping = True

    def close(self) -> None:
        self._close_stream()
        if self._meta_conn is not None:
            self._meta_conn.close()
            self._meta_conn = None

    def __iter__(self) -> Iterator[Item]:
        # _skip > 0: the connection broke inside a transaction; finish it even when stopping
        while not self._stopping or self._skip:
            self._open_with_retry()
            try:
                yield from self._read()
                return  # stream ended (stop requested)
            except _ConnectionLost as exc:
                self.reconnects += 1
                log.warning(
                    "lost the replication connection (%s); reopening from %s", exc, self._resume
                )
                # The interrupted transaction is read again from its start: skip what was
                # already emitted so that a reconnect adds no duplicates.
                self._skip = self._emitted_in_txn if self._in_txn_started() else 0
                self._close_stream()

    # ------------------------------------------------------------------ connection
    def _in_txn_started(self) -> bool:
        return self._in_txn or self._txn_gtid is not None

    def _open_with_retry(self) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(SourceUnavailable),
            stop=stop_after_delay(self.settings.reconnect_timeout_seconds),
            wait=wait_exponential(multiplier=0.2, max=10),
            reraise=True,
            before_sleep=lambda rs: log.warning(
                "MySQL unavailable (%s); retrying", rs.outcome.exception() if rs.outcome else "?"
            ),
        )
        for attempt in retrying:
            with attempt:
                self._open()

    def _open(self) -> None:
        s = self.settings
        if self._meta_conn is None:
            self._meta_conn = connect(s)
            self.is_mariadb = server_info(self._meta_conn).is_mariadb
        kwargs: dict[str, object] = {}
        start = self._resume
        if start.file is not None:
            kwargs.update(resume_stream=True, log_file=start.file, log_pos=start.pos)
        else:
            assert start.gtid is not None
            kwargs.update(auto_position=str(start.gtid), is_mariadb=self.is_mariadb)
        conn_settings = connection_kwargs(s)
        conn_settings["read_timeout"] = max(30.0, s.heartbeat_seconds * 5)
        self._reset_txn()
        self._file = start.file
        self._gtid_state = start.gtid
        stream = BinLogStreamReader(
            connection_settings=conn_settings,
            server_id=s.server_id,
            blocking=True,
            only_events=_EVENTS,
            slave_heartbeat=s.heartbeat_seconds,
            pymysql_wrapper=_OwnedConnection,
            enable_logging=False,
            **kwargs,
        )
        self._stream = stream
        # Connecting happens on the first fetch; do it here so errors surface in the retry.
        try:
            self._first = self._fetch()
        except _ConnectionLost as exc:
            self._close_stream()
            raise SourceUnavailable(f"replication connection lost while opening: {exc}") from exc

    def _fetch(self):  # type: ignore[no-untyped-def]
        assert self._stream is not None
        try:
            return self._stream.fetchone()
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            self._close_stream()
            if code == POSITION_GONE:
                raise PositionNotFound(
                    f"the server cannot stream from {self._resume}: {exc.args[-1]}. The binlog"
                    " there was probably purged; choose a position the server still has"
                    " ('binlog-tailer run --from earliest|latest|FILE:POS') and accept the gap,"
                    " or re-snapshot"
                ) from exc
            raise translate(exc, self.settings) from exc
        except (OSError, struct_error) as exc:
            raise _ConnectionLost(str(exc)) from exc

    def _close_stream(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                self._stream.close()
            self._stream = None

    # ------------------------------------------------------------------ events
    def _reset_txn(self) -> None:
        self._txn_gtid = None
        self._in_txn = False
        self._emitted_in_txn = 0

    def _read(self) -> Iterator[Item]:
        event = self._first
        self._first = None
        while True:
            if event is None:
                if self._stopping and not self._in_txn_started():
                    return
                raise _ConnectionLost("server closed the stream")
            yield from self._handle(event)
            if self._stopping and not self._in_txn_started():
                return
            event = self._fetch()

    def _handle(self, event) -> Iterator[Item]:  # type: ignore[no-untyped-def]
        if isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
            if self._filter(event.schema, event.table):
                yield from self._rows(event)
        elif isinstance(event, XidEvent):
            yield self._commit(event.packet.log_pos)
        elif isinstance(event, QueryEvent):
            query = event.query.strip()
            upper = query[:10].upper()
            if upper == "BEGIN":
                self._in_txn = True
            elif (
                upper.startswith("COMMIT")
                or (upper.startswith("ROLLBACK") and self._in_txn)
                or not self._in_txn
            ):
                yield self._commit(event.packet.log_pos)
        elif isinstance(event, MariadbGtidEvent):
            self._reset_txn()
            self._txn_gtid = event.gtid
            if not event.flags & MARIADB_FL_STANDALONE:
                self._in_txn = True
        elif isinstance(event, GtidEvent):
            self._reset_txn()
            self._txn_gtid = event.gtid
        elif isinstance(event, RotateEvent):
            self._file = event.next_binlog
            if not self._in_txn_started():
                self._resume = BinlogPosition(self._file, event.position, self._gtid_state)
        elif isinstance(event, (MariadbGtidListEvent, PreviousGtidsEvent)):
            if self._gtid_state is None:
                self._seed_gtid(event)
        elif isinstance(event, HeartbeatLogEvent):
            yield None

    def _seed_gtid(self, event) -> None:  # type: ignore[no-untyped-def]
        try:
            if isinstance(event, MariadbGtidListEvent):
                text = ",".join(
                    f"{g.domain_id}-{g.server_id}-{g.gtid_seq_no}" for g in event.gtid_list
                )
                self._gtid_state = MariadbGtidPos.parse(text) if text else MariadbGtidPos()
            else:
                text = str(event.gtid_sets) if hasattr(event, "gtid_sets") else ""
                self._gtid_state = parse_gtid(text) if text else None
        except Exception:  # a state we cannot read is left unknown, never guessed
            log.debug("could not read the GTID list event", exc_info=True)

    def _commit(self, end_pos: int) -> TxnEnd:
        gtid = self._txn_gtid
        if gtid is not None:
            self._gtid_state = _advance(self._gtid_state, gtid)
        assert self._file is not None, "a commit before any rotate event"
        self._resume = BinlogPosition(self._file, end_pos, self._gtid_state)
        self._reset_txn()
        self._skip = 0
        return TxnEnd(self._resume)

    def _rows(self, event) -> Iterator[RowChange]:  # type: ignore[no-untyped-def]
        schema = self._schema(event)
        if isinstance(event, WriteRowsEvent):
            op = "c"
        elif isinstance(event, UpdateRowsEvent):
            op = "u"
        else:
            op = "d"
        file = self._file or ""
        start = event.packet.log_pos - event.packet.event_size
        ts_ms = event.timestamp * 1000
        server_id = event.packet.server_id
        for i, row in enumerate(event.rows):
            if self._skip:
                self._skip -= 1
                self._emitted_in_txn += 1
                continue
            if op == "u":
                before, after = row["before_values"], row["after_values"]
            elif op == "c":
                before, after = None, row["values"]
            else:
                before, after = row["values"], None
            self._emitted_in_txn += 1
            yield RowChange(
                schema, op, before, after, file, start, i, self._txn_gtid, server_id, ts_ms
            )

    def _schema(self, event) -> TableSchema:  # type: ignore[no-untyped-def]
        cols = event.columns
        key = (event.schema, event.table, tuple((c.name, c.type) for c in cols))
        schema = self._schemas.get(key)
        if schema is None:
            json_cols = self._mariadb_json_columns(event.schema, event.table)
            pk = event.primary_key
            pk_cols = (pk,) if isinstance(pk, str) and pk else tuple(pk or ())
            schema = TableSchema(
                db=event.schema,
                table=event.table,
                columns=tuple(
                    Column(
                        name=c.name,
                        type_code=c.type,
                        set_values=tuple(getattr(c, "set_values", None) or ()),
                        is_json=c.name in json_cols,
                    )
                    for c in cols
                ),
                primary_key=pk_cols,
            )
            self._schemas[key] = schema
        return schema

    def _mariadb_json_columns(self, db: str, table: str) -> frozenset[str]:
        """MariaDB's JSON is LONGTEXT plus a json_valid() check: find those columns."""
        if not self.is_mariadb:
            return frozenset()
        key = (db, table)
        cols = self._json_columns.get(key)
        if cols is None:
            assert self._meta_conn is not None
            try:
                self._meta_conn.ping(reconnect=True)
                with self._meta_conn.cursor() as cur:
                    cur.execute(
                        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                        " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
                        (db, table),
                    )
                    clauses = [r[0] for r in cur.fetchall()]
            except pymysql.err.MySQLError as exc:
                raise SourceUnavailable(f"cannot read the schema of {db}.{table}: {exc}") from exc
            cols = frozenset(m for c in clauses for m in _JSON_CHECK.findall(c))
            self._json_columns[key] = cols
        return cols


def _advance(state, gtid: str):  # type: ignore[no-untyped-def]
    """The GTID state after the transaction `gtid` committed."""
    if "-" in gtid and ":" not in gtid:  # MariaDB domain-server-seq
        d, s, n = (int(x) for x in gtid.split("-"))
        base = state if isinstance(state, MariadbGtidPos) else MariadbGtidPos()
        return base.with_gtid(d, s, n)
    uuid, _, gno = gtid.rpartition(":")
    if isinstance(state, MysqlGtidSet):
        return state.with_gtid(uuid, int(gno))
    return None  # a MySQL GTID set is only exact when we know where it started
