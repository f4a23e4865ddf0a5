"""The binlog reader: resume, reconnect, transaction grouping, positions.

It reads the replication stream with our own reader (``binlog_tailer.binlog``) and owns what a
CDC service must get right (see shared/design.md, "Traps"):

- *Resume* always happens at a transaction boundary: by file/offset when one is known (MySQL
  and MariaDB alike), else by GTID (MariaDB ``@slave_connect_state``, MySQL
  ``COM_BINLOG_DUMP_GTID``).
- *Reconnect*: on a lost connection we reopen from the last transaction boundary we passed and
  skip the rows of the interrupted transaction that were already emitted: no loss, no replay.
- Rows of tables the filter rejects are never decoded; table maps are parsed once per distinct
  table map (cached by their bytes), not once per transaction.

The iterator yields ``RowChange`` for each captured row, ``TxnEnd`` at each commit (and after
each standalone statement such as DDL), and ``None`` as an idle tick (server heartbeat).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import struct
import time
import zlib
from collections.abc import Callable, Generator, Iterator

import pymysql
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)
from tenacity.stop import stop_base

from binlog_tailer.binlog.charsets import Charsets
from binlog_tailer.binlog.mysql_events import gtid_event_info, payload_events
from binlog_tailer.binlog.protocol import BinlogConnection, ConnectionLost
from binlog_tailer.binlog.rows import TableMap, decode_rows, parse_table_map
from binlog_tailer.binlog.statements import Kind, Statement, classify
from binlog_tailer.errors import PositionNotFound, SourceError, SourceUnavailable
from binlog_tailer.model import SCHEMA_CACHE_LIMIT, RowChange, TxnEnd
from binlog_tailer.position import (
    BinlogPosition,
    GtidState,
    MariadbGtidPos,
    MysqlGtidSet,
    RowRef,
)
from binlog_tailer.server import (
    CANNOT_CONNECT,
    collation_charsets,
    connect,
    connection_kwargs,
    mariadb_json_columns,
    require_tls,
    server_info,
    translate,
)
from binlog_tailer.settings import MysqlSettings
from binlog_tailer.snapshot.state import SnapshotState

log = logging.getLogger(__name__)

POSITION_GONE = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: file purged, GTID unknown, ...
MARIADB_FL_STANDALONE = 1
MARIADB_FL_PREPARED_XA = 64  # the first phase of an XA transaction
ARTIFICIAL = 0x20  # LOG_EVENT_ARTIFICIAL_F, in the header's flags: made up by the dump thread

# event type codes (MySQL binlog_event.h, MariaDB log_event.h)
QUERY, ROTATE, FORMAT_DESCRIPTION, XID, TABLE_MAP = 2, 4, 15, 16, 19
HEARTBEAT, HEARTBEAT_V2 = 27, 41
CRC32 = 1  # binlog_checksum algorithm, last byte before a FORMAT_DESCRIPTION event's checksum
WRITE_V1, UPDATE_V1, DELETE_V1, WRITE_V2, UPDATE_V2, DELETE_V2 = 23, 24, 25, 30, 31, 32
MYSQL_GTID, MYSQL_ANONYMOUS_GTID, MYSQL_PREVIOUS_GTIDS = 33, 34, 35
MYSQL_TRANSACTION_PAYLOAD, MYSQL_GTID_TAGGED = 40, 42
MARIADB_BINLOG_CHECKPOINT, MARIADB_GTID, MARIADB_GTID_LIST = 161, 162, 163
ROWS_OPS = {WRITE_V1: "c", UPDATE_V1: "u", DELETE_V1: "d", WRITE_V2: "c", UPDATE_V2: "u",
            DELETE_V2: "d"}  # fmt: skip
XA_PREPARE = 38  # ends the first phase of an XA transaction: a boundary
PARTIAL_UPDATE_ROWS = 39  # MySQL binlog_row_value_options=PARTIAL_JSON: JSON diffs, no values
UNSUPPORTED = {
    **{t: "compressed binlog events (set log_bin_compress=OFF)" for t in range(165, 172)},
}

_HEADER = struct.Struct("<xIBIII")  # OK byte, timestamp, type, server id, size, next position
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_crc32 = zlib.crc32
# CRC-32 over data followed by its own CRC (little-endian) is always this constant: one call
# checks an event and its stored checksum together.
CRC32_RESIDUE = 0x2144DF1C
_MARIADB_GTID = struct.Struct("<QIB").unpack_from
_SAVEPOINT_NAME = re.compile(rb"(?is)(?:^\s*savepoint|\bto(?:\s+savepoint)?)\s+(.+?)\s*$")

Item = RowChange | TxnEnd | None


class BinlogSource:
    # binlog bytes of captured rows held after a SAVEPOINT before they are published anyway
    hold_limit_bytes = 16 << 20

    def __init__(
        self,
        settings: MysqlSettings,
        start: BinlogPosition,
        table_filter: Callable[[str, str], bool],
    ) -> None:
        self.settings = settings
        self._resume = start.boundary  # last transaction boundary passed
        # The rows of the transaction after `start` published already (a split transaction,
        # exactly-once delivery): rows up to this one are skipped.
        self._done: RowRef | None = start.done
        self._filter = table_filter
        self._stopping = False
        # Called while waiting for the server to come back (the pipeline serves Kafka's
        # delivery reports and checkpoints what they made safe meanwhile).
        self.on_idle: Callable[[], None] = lambda: None
        self._conn: BinlogConnection | None = None
        self._meta_conn: pymysql.Connection | None = None
        self.is_mariadb = False
        self._charsets = Charsets()
        self._table_maps: dict[bytes, TableMap] = {}  # raw table-map body -> parsed
        self._by_id: dict[int, TableMap] = {}  # table id -> the latest table map
        self._json_columns: dict[tuple[str, str], frozenset[str]] = {}
        # state of the transaction being read
        self._file: str | None = start.file
        self._gtid_state: GtidState | None = start.gtid
        # What every boundary's position carries beside the binlog's own parts: a snapshot's
        # progress and the next signal's offset (set by binlog_tailer.snapshot.interleave)
        self.carry_snapshot: SnapshotState | None = start.snapshot
        self.carry_signals: int | None = start.signals
        self._txn_gtid: str | None = None
        self._txn_mariadb_gtid: tuple[int, int, int] | None = None  # (domain, server, seq)
        self._txn_mysql_gtid: tuple[str, int, str | None] | None = None  # (uuid, gno, tag)
        self._txn_ts_ms = 0  # MySQL: the commit time its GTID event carries (0: unknown)
        self.last_commit_ms = 0  # the commit time of the transaction ended last (0: unknown)
        self._in_txn = False
        self._at = start.pos or 4  # where the next event starts
        self._skip = 0  # rows to skip after reopening inside a transaction
        self.reconnects = 0
        self.streaming = False  # the stream is open and the server accepted the position
        self._savepoints: dict[bytes, int] = {}
        self._reset_txn()
        self._released: list[RowChange] = []  # held rows freed by the commit being yielded
        self._damaged_at: tuple[str | None, int] = (None, 0)  # where a checksum last failed
        self._damaged_reads = 0

    # ------------------------------------------------------------------ public
    def stop(self) -> None:
        """Ask the iterator to end at the next transaction boundary (signal-safe).

        Ending inside a transaction would leave its first rows published but not checkpointed,
        to be published again by the next run. The rest of a transaction is already in the
        binlog when its first row is, so this waits only for bytes in flight; when idle, the
        next heartbeat ends the iteration."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def read_position(self) -> tuple[str | None, int]:
        """(file, offset) where the next event starts: how far the stream has read. (Read
        from another thread: the pair may straddle a rotation for a moment.)"""
        return self._file, self._at

    def close(self) -> None:
        self._close_stream()
        if self._meta_conn is not None:
            self._meta_conn.close()
            self._meta_conn = None

    def __iter__(self) -> Iterator[Item]:
        # _skip > 0: the connection broke inside a transaction; finish it even when stopping
        while not self._stopping or self._skip:
            if not self._open_with_retry():
                return  # stopped while the server was away: the checkpoint is a boundary
            try:
                yield from self._read()
                return  # stream ended (stop requested)
            except ConnectionLost as exc:
                self.reconnects += 1
                log.warning(
                    "lost the replication connection (%s); reopening from %s", exc, self._resume
                )
                # The interrupted transaction is read again from its start: skip what was
                # already emitted so that a reconnect adds no duplicates (held rows were not).
                # A second loss while still skipping: the rows not yet skipped again were
                # emitted too (the count restarted at the reopen).
                self._skip = self._published() + self._skip if self._in_txn_started() else 0
                self._close_stream()

    # ------------------------------------------------------------------ connection
    def _in_txn_started(self) -> bool:
        return self._in_txn or self._txn_gtid is not None

    def _published(self) -> int:
        """How many of this transaction's first rows were yielded (or skipped as such)."""
        return self._txn_rows if self._held is None else self._held_from

    def _open_with_retry(self) -> bool:
        """Open the stream, retrying while the server is unavailable; False when a stop was
        asked for meanwhile (the signal does not wait for the reconnect timeout)."""
        retrying = Retrying(
            retry=retry_if_exception_type(SourceUnavailable),
            stop=stop_after_delay(self.settings.reconnect_timeout_seconds) | _StopWhen(self),
            wait=wait_exponential(multiplier=0.2, max=10),
            sleep=self._sleep_unless_stopped,
            reraise=True,
            before_sleep=lambda rs: log.warning(
                "MySQL unavailable (%s); retrying", rs.outcome.exception() if rs.outcome else "?"
            ),
        )
        try:
            for attempt in retrying:
                with attempt:
                    if self._stopping:
                        return False
                    self._open()
        except SourceUnavailable:
            if self._stopping:
                return False
            raise
        return True

    def _sleep_unless_stopped(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            self.on_idle()
            time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))

    def _open(self) -> None:
        s = self.settings
        try:
            if self._meta_conn is None:
                self._meta_conn = connect(s)
                self.is_mariadb = server_info(self._meta_conn).is_mariadb
                self._charsets = Charsets(collation_charsets(self._meta_conn))
                self._complete_start_gtid()
            kwargs = connection_kwargs(s)
            kwargs["read_timeout"] = max(30.0, s.heartbeat_seconds * 5)
            self._reset_txn()
            self._file = self._resume.file
            self._gtid_state = self._resume.gtid
            self._by_id.clear()
            conn = BinlogConnection(
                kwargs,
                s.server_id,
                s.heartbeat_seconds,
                self.is_mariadb,
                on_connect=lambda c: require_tls(c, s),
            )
            self._conn = conn
            conn.open(self._resume)
            # the first packet tells whether the server accepted the position
            self._first: bytes | None = conn.read()
            self.streaming = True
        except ConnectionLost as exc:
            self._close_stream()
            raise SourceUnavailable(f"replication connection lost while opening: {exc}") from exc
        except pymysql.err.MySQLError as exc:
            self._close_stream()
            self._raise_mysql(exc)

    def _complete_start_gtid(self) -> None:
        """A MariaDB start given as FILE:POS: the GTID state there, every domain included
        (built from the transactions read, it would name only the domains seen since)."""
        start = self._resume
        if not self.is_mariadb or start.gtid is not None or not start.file or (start.pos or 4) <= 4:
            return  # at a file's start its GTID list event tells the state
        assert self._meta_conn is not None
        with self._meta_conn.cursor() as cur:
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (start.file, start.pos))
            row = cur.fetchone()
        if row and row[0] is not None:
            self._resume = dataclasses.replace(start, gtid=MariadbGtidPos.parse(row[0]))
        else:
            log.warning("the server knows no GTID state at %s; it is built as we go", start)

    def _raise_mysql(self, exc: pymysql.err.MySQLError) -> None:
        if exc.args and exc.args[0] == POSITION_GONE:
            raise PositionNotFound(
                f"the server cannot stream from {self._resume}: {exc.args[-1]}. The binlog"
                " there was probably purged; choose a position the server still has"
                " ('binlog-tailer run --from earliest|latest|FILE:POS|2026-11-25T09:00:00Z') and"
                " accept the gap, or read the data tables again: run with snapshot.mode ="
                " when_needed"
            ) from exc
        raise translate(exc, self.settings) from exc

    def _close_stream(self) -> None:
        self.streaming = False
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ events
    def _reset_txn(self) -> None:
        self._txn_xa = False
        self._txn_gtid = None
        self._txn_ts_ms = 0  # the commit time, from the GTID event (0: unknown)
        self._txn_mariadb_gtid = self._txn_mysql_gtid = None
        self._in_txn = False
        self._txn_rows = 0  # captured rows of this transaction decoded so far
        # After a SAVEPOINT, rows are held until the commit: a ROLLBACK TO SAVEPOINT in the
        # binlog (MariaDB, when the transaction also changed a non-transactional table) means
        # the rows since that savepoint did not happen. (index in the transaction, row)
        self._held: list[tuple[int, RowChange]] | None = None
        self._held_from = 0  # rows published before holding began
        self._held_bytes = 0
        if self._savepoints:  # name -> index of the first row after it
            self._savepoints = {}

    def _read(self) -> Iterator[Item]:
        # One loop with the dispatch inline, longer than our usual functions on purpose: it
        # runs once per binlog event, and a method call per event costs measurable throughput.
        conn = self._conn
        assert conn is not None
        data = self._first
        self._first = None
        tail = conn.checksum
        rows_event = ROWS_OPS
        while True:
            if data is None:
                try:
                    data = conn.read()
                except pymysql.err.MySQLError as exc:
                    self._close_stream()
                    if exc.args and exc.args[0] in CANNOT_CONNECT:  # e.g. shutting down
                        raise ConnectionLost(str(exc.args[-1])) from exc
                    self._raise_mysql(exc)
                    raise  # not reached
            etype = data[5]
            if etype == FORMAT_DESCRIPTION:  # each file says whether its events carry a CRC
                tail = 4 if data[-5] == CRC32 else 0
            if tail and _crc32(data[1:]) != CRC32_RESIDUE:
                self._checksum_mismatch(data)
            if etype in rows_event:
                yield from self._rows(data, etype, len(data) - tail, (self._at, 0))
            elif etype in (XID, XA_PREPARE):
                commit = self._commit(_U32(data, 14)[0])
                if self._released:
                    yield from self._take_released()
                yield commit
            elif etype == TABLE_MAP:
                self._table_map(data, len(data) - tail)
            elif etype == QUERY:
                item = self._query(data, len(data) - tail)
                if item is not None:
                    if self._released:
                        yield from self._take_released()
                    yield item
            elif etype == MARIADB_GTID:
                seq, domain, flags = _MARIADB_GTID(data, 20)
                self._reset_txn()
                self._txn_ts_ms = _U32(data, 1)[0] * 1000  # written at commit: its second
                server = _U32(data, 6)[0]
                self._txn_gtid = f"{domain}-{server}-{seq}"
                self._txn_mariadb_gtid = (domain, server, seq)
                self._in_txn = not flags & MARIADB_FL_STANDALONE
                self._txn_xa = bool(flags & MARIADB_FL_PREPARED_XA)  # no XA START query
            elif etype in (MYSQL_GTID, MYSQL_GTID_TAGGED, MYSQL_ANONYMOUS_GTID):
                self._mysql_gtid(data, etype, len(data) - tail)
            elif etype == MYSQL_TRANSACTION_PAYLOAD:
                yield from self._payload(data, len(data) - tail)
            elif etype == ROTATE:
                self._file = data[28 : len(data) - tail].decode()
                self._at = _U64(data, 20)[0]
                # After a start by GTID the server's first (artificial) rotate names the file
                # it scans from, not a boundary we passed: resuming there would replay it.
                by_gtid = self._resume.file is None and data[18] & ARTIFICIAL
                if not self._in_txn_started() and not by_gtid:
                    self._resume = BinlogPosition(self._file, self._at, self._gtid_state)
            elif etype in (HEARTBEAT, HEARTBEAT_V2):
                yield None
            elif etype == MARIADB_BINLOG_CHECKPOINT and not self._in_txn_started():
                # written on its own after a rotation, possibly after the last transaction: a
                # boundary too, so that an idle checkpoint reaches the end of the binlog. Not
                # before the first boundary after a start by GTID: the server sends it while
                # still silently skipping the transactions before the start.
                if _U32(data, 14)[0] and self._resume.file is not None:
                    yield self._commit(_U32(data, 14)[0])
            elif etype in (MARIADB_GTID_LIST, MYSQL_PREVIOUS_GTIDS):
                if self._gtid_state is None:
                    self._seed_gtid(data, etype, len(data) - tail)
            elif etype == PARTIAL_UPDATE_ROWS:
                self._partial_update(data, f"{self._file}:{self._at}")
            elif etype in UNSUPPORTED:
                raise SourceError(
                    f"the binlog at {self._file}:{_U32(data, 14)[0]} uses {UNSUPPORTED[etype]}"
                    ", which binlog-tailer cannot decode"
                )
            # Where the next event starts. MariaDB 11 writes no end position (0) in the events
            # inside a transaction, only in its GTID and commit events: count their sizes.
            end_pos = _U32(data, 14)[0]
            if end_pos:
                self._at = end_pos
            elif self._in_txn_started():
                self._at += _U32(data, 10)[0]
            if self._stopping and not self._in_txn_started():
                return
            data = None

    def _checksum_mismatch(self, data: bytes) -> None:
        """A damaged event: read it again from the last boundary; a damaged file stops us."""
        where = (self._file, self._at)
        self._damaged_reads = self._damaged_reads + 1 if where == self._damaged_at else 1
        self._damaged_at = where
        if self._damaged_reads >= 3:
            raise SourceError(
                f"the event at {self._file}:{self._at} fails its CRC32 checksum on every read:"
                " the binlog file is damaged there; replay from a later position and accept"
                " the gap, or restore the file"
            )
        raise ConnectionLost(f"event at {self._file}:{self._at} failed its CRC32 checksum")

    def _query(self, data: bytes, end: int, end_pos: int | None = None) -> TxnEnd | None:
        db_len = data[28]
        status_len = struct.unpack_from("<H", data, 31)[0]
        start = 33 + status_len + db_len + 1
        head = data[start : min(end, start + 6)].upper()
        if head == b"BEGIN":  # the common cases first: no parsing
            self._in_txn = True
            return None
        commit_pos = _U32(data, 14)[0] if end_pos is None else end_pos
        if head == b"COMMIT":
            return self._commit(commit_pos)
        stmt = classify(data[start:end])
        kind = stmt.kind
        if kind is Kind.BEGIN:
            self._in_txn = True
        elif kind in (Kind.COMMIT, Kind.ROLLBACK):
            # a logged ROLLBACK carries changes to non-transactional tables, which did happen
            return self._commit(commit_pos)
        elif kind is Kind.DML:
            default_db = data[start - db_len - 1 : start - 1].decode("utf-8", "replace")
            self._refuse_statement_dml(stmt, default_db)
        elif kind is Kind.XA:
            if self._xa_ends_transaction(data[start:end]):
                return self._commit(commit_pos)
            return None
        elif kind is Kind.SAVEPOINT:
            self._savepoint(_savepoint_name(data[start:end]))
        elif kind is Kind.ROLLBACK_TO_SAVEPOINT:
            self._rollback_to_savepoint(_savepoint_name(data[start:end]))
        if not self._in_txn and kind is not Kind.BEGIN:
            # Outside a transaction a statement such as DDL is one of its own. DDL changes
            # table ids and may change what a table map means (a json_valid check added):
            # forget what was learnt of tables.
            self._by_id.clear()
            self._table_maps.clear()
            self._json_columns.clear()
            if kind is Kind.TRUNCATE:
                self._truncated(stmt, data[start - db_len - 1 : start - 1].decode())
            return self._commit(commit_pos)
        return None

    def _refuse_statement_dml(self, stmt: Statement, default_db: str) -> None:
        """A change logged as SQL text has no row images to publish: stop, never skip it."""
        targets = [(db or default_db, table) for db, table in stmt.targets]
        if targets and not any(self._filter(db, table) for db, table in targets):
            return
        what = ", ".join(f"{db}.{t}" for db, t in targets) or f"a table (default db {default_db})"
        raise SourceError(
            f"the binlog at {self._file}:{self._at} has a {stmt.verb} of {what} logged as a"
            " statement, not as rows (binlog_format=STATEMENT or MIXED, possibly set per"
            " session): binlog-tailer cannot publish it. Set binlog_format=ROW on the server"
            " and in every session that writes captured tables, then replay the table"
            " (or start after this transaction and accept the gap)"
        )

    def _truncated(self, stmt: Statement, default_db: str) -> None:
        for db, table in stmt.targets:
            if self._filter(db or default_db, table):
                log.warning(
                    "TRUNCATE of captured table %s.%s at %s:%s: the rows it removed are not"
                    " published (no row images exist for them)",
                    db or default_db, table, self._file, self._at,
                )  # fmt: skip

    def _xa_ends_transaction(self, sql: bytes) -> bool:
        """XA START opens a transaction (its captured rows are refused: an XA transaction
        can still roll back after its rows reach the binlog); XA COMMIT/ROLLBACK end one."""
        words = sql.split()
        verb = words[1].upper() if len(words) > 1 else b""
        if verb in (b"START", b"BEGIN"):
            self._in_txn = True
            self._txn_xa = True
        return verb in (b"COMMIT", b"ROLLBACK")

    def _savepoint(self, name: bytes) -> None:
        if self._held is None:
            self._held, self._held_from, self._held_bytes = [], self._txn_rows, 0
        self._savepoints.pop(name, None)  # setting it again moves it
        self._savepoints[name] = self._txn_rows

    def _rollback_to_savepoint(self, name: bytes) -> None:
        """Drop the held rows since the savepoint. Rows of non-transactional tables never
        appear here: they are logged apart, as transactions of their own (row format)."""
        mark = self._savepoints.get(name)
        held = self._held
        if mark is None or held is None or mark < self._held_from:
            raise SourceError(
                f"the transaction at {self._file}:{self._at} rolled back to savepoint"
                f" {name.decode('utf-8', 'replace')}, but its rows since that savepoint were"
                f" published already (more than {self.hold_limit_bytes >> 20} MiB of binlog"
                " was held after it), or the savepoint was never set; records for rows that"
                " did not happen may be in Kafka. Keep such transactions smaller, then resume"
                " after this transaction"
            )
        while held and held[-1][0] >= mark:
            held.pop()
        names = list(self._savepoints)
        for later in names[names.index(name) + 1 :]:
            del self._savepoints[later]  # savepoints set after it are gone with it

    def _hold_overflow(self) -> list[RowChange]:
        """A transaction holds too much after a savepoint: publish the held rows now (a later
        ROLLBACK TO SAVEPOINT before them is refused)."""
        assert self._held is not None
        log.warning(
            "the transaction at %s:%s holds more than %d MiB of rows after a SAVEPOINT:"
            " publishing them before its commit (a later ROLLBACK TO SAVEPOINT in it stops"
            " the service)",
            self._file, self._at, self.hold_limit_bytes >> 20,
        )  # fmt: skip
        rows = [change for _, change in self._held]
        self._held = None
        return rows

    def _take_released(self) -> list[RowChange]:
        """The rows held until the commit just read: they go out before it."""
        released, self._released = self._released, []
        return released

    def _table_map(self, data: bytes, end: int) -> None:
        raw = data[20:end]
        tm = self._table_maps.get(raw)
        if tm is None:
            tm = parse_table_map(data, 20, end, self.is_mariadb, self._charsets)
            if len(self._table_maps) > SCHEMA_CACHE_LIMIT:  # many distinct tables: bound it
                self._table_maps.clear()
            self._table_maps[raw] = tm
        self._by_id[tm.table_id] = tm

    # Longer than our usual functions on purpose: it runs once per rows event on the hot
    # path, decoding inline (a call per row cost measurable throughput).
    def _rows(
        self, data: bytes, etype: int, end: int, at: tuple[int, int]
    ) -> Generator[RowChange, None, int]:
        """The captured rows of a rows event; returns how many rows it decoded. `at`: the
        event's position and the index of its first row (inside a compressed transaction,
        the payload's position and the rows before it in the transaction)."""
        # Kept whole, like _read: it runs for every rows event, and each helper call here
        # would be paid per event on the hot path.
        low, high = struct.unpack_from("<IH", data, 20)
        tm = self._by_id.get(low | (high << 32))
        if tm is None:
            raise SourceError(
                f"rows event at {self._file}:{at[0]} without its table map;"
                " was the stream opened inside a transaction?"
            )
        if not self._filter(tm.db, tm.table):
            return 0
        if self._txn_xa:
            raise SourceError(
                f"the binlog at {self._file}:{at[0]} has an XA transaction changing"
                f" {tm.db}.{tm.table}: XA transactions are not supported (a prepared XA"
                " transaction can still be rolled back after its rows reach the binlog)"
            )
        if tm.readers is None:  # the first rows of a captured table under this table map
            self._prepare(tm)
        off = 28
        if etype >= WRITE_V2:  # v2 post-header: extra data with its own 2-byte length
            off += struct.unpack_from("<H", data, 28)[0]
        op = ROWS_OPS[etype]
        images = decode_rows(tm, data, off, end, op == "u")
        ts, _, server_id, _, _ = _HEADER.unpack_from(data, 0)
        file = self._file or ""
        start, first = at
        ts_ms = self._txn_ts_ms or ts * 1000
        schema, gtid = tm.schema, self._txn_gtid
        held = self._held
        base = self._txn_rows - first  # row i of this event is row base + i of the transaction
        n = len(images)
        self._txn_rows += n  # the loop runs to its end before anything else is read
        skip = min(self._skip, n)  # published before a reconnect
        if skip:
            self._skip -= skip
            if held is not None:
                self._held_from = base + first + skip
        if self._done is not None:  # published by an earlier run (neither held nor counted)
            skip = max(skip, self._done_rows(file, start, first, n))
        for i, image in enumerate(images, first):
            if skip:
                skip -= 1
                continue
            if op == "u":
                before, after = image
            elif op == "c":
                before, after = None, image
            else:
                before, after = image, None
            change = RowChange(schema, op, before, after, file, start, i, gtid, server_id, ts_ms)
            if held is None:
                yield change
            else:
                held.append((base + i, change))
        if held is not None:
            self._held_bytes += end
            if self._held_bytes > self.hold_limit_bytes:
                yield from self._hold_overflow()
        return len(images)

    def _done_rows(self, file: str, start: int, first: int, n: int) -> int:
        """How many of the `n` rows of the rows event at file:start, whose first row is row
        `first` there, an earlier run published (the start's `done`)."""
        done = self._done
        assert done is not None
        if file != done.file or start > done.pos:
            return 0
        if start < done.pos:
            return n
        return max(0, min(n, done.row + 1 - first))

    def _partial_update(self, data: bytes, where: str) -> None:
        """Partial JSON updates carry diffs, not the row: refused for captured tables only."""
        low, high = struct.unpack_from("<IH", data, 20)
        tm = self._by_id.get(low | (high << 32))
        if tm is not None and not self._filter(tm.db, tm.table):
            return
        table = f"{tm.db}.{tm.table}" if tm is not None else "a table"
        raise SourceError(
            f"the binlog at {where} has a partial JSON update of {table}"
            " (binlog_row_value_options=PARTIAL_JSON), which carries a diff, not the row:"
            " set binlog_row_value_options='' on the server (also per session), then replay"
            " the table or accept that this update is missing"
        )

    def _mysql_gtid(self, data: bytes, etype: int, end: int) -> None:
        self._reset_txn()
        if etype == MYSQL_ANONYMOUS_GTID:  # no GTID (gtid_mode OFF): only its commit time
            with contextlib.suppress(ValueError):
                ts_us = gtid_event_info(MYSQL_GTID, data[20:end]).commit_ts_us
                self._txn_ts_ms = (ts_us or 0) // 1000
            return
        try:
            info = gtid_event_info(etype, data[20:end])
        except ValueError as exc:
            raise SourceError(
                f"cannot read the GTID event at {self._file}:{_U32(data, 14)[0]}: {exc}"
            ) from exc
        self._txn_gtid = info.gtid
        self._txn_mysql_gtid = (info.uuid, info.gno, info.tag)
        if info.commit_ts_us:
            self._txn_ts_ms = info.commit_ts_us // 1000

    def _payload(self, data: bytes, end: int) -> Iterator[Item]:
        """A compressed transaction (MySQL binlog_transaction_compression): its events, read as
        if they stood in the stream. They carry no positions of their own: every row reports
        the payload event's start and its index within the whole transaction, and the commit
        ends at the payload event's end, so resuming never lands inside the payload."""
        _, _, _, size, next_pos = _HEADER.unpack_from(data, 0)
        start, rows = next_pos - size, 0
        try:
            for inner in payload_events(data[20:end]):
                event = b"\x00" + inner  # the OK byte the stream's events start with
                etype = event[5]
                if etype in ROWS_OPS:
                    rows += yield from self._rows(event, etype, len(event), at=(start, rows))
                elif etype == XID:
                    commit = self._commit(next_pos)
                    if self._released:
                        yield from self._take_released()
                    yield commit
                elif etype == TABLE_MAP:
                    self._table_map(event, len(event))
                elif etype == QUERY:
                    item = self._query(event, len(event), end_pos=next_pos)
                    if item is not None:
                        if self._released:
                            yield from self._take_released()
                        yield item
                elif etype == PARTIAL_UPDATE_ROWS:
                    self._partial_update(event, f"{self._file}:{start} (compressed)")
                elif etype in UNSUPPORTED:
                    raise SourceError(
                        f"the compressed transaction at {self._file}:{start} uses"
                        f" {UNSUPPORTED[etype]}, which binlog-tailer cannot decode"
                    )
        except ValueError as exc:
            raise SourceError(
                f"cannot decode the compressed transaction at {self._file}:{start}: {exc}"
            ) from exc

    def _prepare(self, tm: TableMap) -> None:
        tm.prepare()
        json_cols = self._mariadb_json_columns(tm.db, tm.table)
        if json_cols:
            tm.schema = dataclasses.replace(
                tm.schema,
                columns=tuple(
                    dataclasses.replace(c, is_json=c.name in json_cols) for c in tm.schema.columns
                ),
            )

    def _seed_gtid(self, data: bytes, etype: int, end: int) -> None:
        try:
            if etype == MARIADB_GTID_LIST:
                count = _U32(data, 20)[0] & 0x0FFFFFFF
                parts = []
                for k in range(count):
                    domain, server, seq = struct.unpack_from("<IIQ", data, 24 + 16 * k)
                    parts.append(f"{domain}-{server}-{seq}")
                self._gtid_state = MariadbGtidPos.parse(",".join(parts))
            else:
                self._gtid_state = MysqlGtidSet.decode(data[20:end]) or None
        except Exception:  # a state we cannot read is left unknown, never guessed
            log.debug("could not read the GTID list event", exc_info=True)

    def _commit(self, end_pos: int) -> TxnEnd:
        mariadb, mysql, state = self._txn_mariadb_gtid, self._txn_mysql_gtid, self._gtid_state
        if mariadb is not None:
            base = state if isinstance(state, MariadbGtidPos) else MariadbGtidPos()
            self._gtid_state = base.with_gtid(*mariadb)
        elif mysql is not None:
            # a MySQL GTID set is only exact when we know where it started
            self._gtid_state = state.with_gtid(*mysql) if isinstance(state, MysqlGtidSet) else None
        assert self._file is not None, "a commit before any rotate event"
        self._resume = BinlogPosition(
            self._file, end_pos, self._gtid_state, None, self.carry_snapshot, self.carry_signals
        )
        if self._done is not None and (self._file, end_pos) > (self._done.file, self._done.pos):
            self._done = None  # the split transaction ended (not a checkpoint event before it)
        if self._held:
            self._released = [change for _, change in self._held]
        self.last_commit_ms = self._txn_ts_ms
        self._reset_txn()
        self._skip = 0
        return TxnEnd(self._resume)

    def _mariadb_json_columns(self, db: str, table: str) -> frozenset[str]:
        """MariaDB's JSON is LONGTEXT plus a json_valid() check: find those columns."""
        if not self.is_mariadb:
            return frozenset()
        key = (db, table)
        cols = self._json_columns.get(key)
        if cols is None:
            assert self._meta_conn is not None
            try:
                try:
                    self._meta_conn.ping()
                except pymysql.err.MySQLError:  # idle for long: a connection of the moment
                    self._meta_conn = connect(self.settings)
                cols = mariadb_json_columns(self._meta_conn, db, table)
            except pymysql.err.MySQLError as exc:
                raise SourceUnavailable(f"cannot read the schema of {db}.{table}: {exc}") from exc
            self._json_columns[key] = cols
        return cols


class _StopWhen(stop_base):
    """Stop retrying once the source was asked to stop."""

    def __init__(self, source: BinlogSource) -> None:
        self.source = source

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.source._stopping


def _savepoint_name(sql: bytes) -> bytes:
    """The name in `SAVEPOINT name` / `ROLLBACK [WORK] TO [SAVEPOINT] name`, unquoted."""
    match = _SAVEPOINT_NAME.search(sql)
    name = match.group(1) if match else sql.split()[-1]
    if name.startswith(b"`") and name.endswith(b"`"):
        name = name[1:-1].replace(b"``", b"`")
    return name.lower()  # savepoint names are not case-sensitive
