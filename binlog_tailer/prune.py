"""`binlog-tailer outbox prune`: bounded deletion of outbox rows that are old and published.

Binlog path: a row is published once the stored checkpoint has passed the end of the binlog
read *after* the SELECT that saw the row (it committed before that SELECT, so its events lie
before that end). Relay path (relay.after_publish = mark): a row is published once the relay
set its sent column. Rows go in DELETE transactions of at most prune.batch_size, by primary key.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pymysql

from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.errors import ConfigError, PruneStopped, SourceError
from binlog_tailer.filtering import TableFilter
from binlog_tailer.position import BinlogPosition, passed
from binlog_tailer.server import (
    ACCESS_DENIED,
    PRIVILEGE_DENIED,
    asking,
    connect,
    connection_kwargs,
    latest_position,
    require_tls,
    translate,
)
from binlog_tailer.settings import MysqlSettings, Settings

log = logging.getLogger(__name__)

SCAN_ROWS = 100_000  # ids read per wait for the checkpoint (then deleted in batches)
CHECKPOINT_POLL_SECONDS = 0.5


@dataclass
class Pruned:
    """What prune did to one table."""

    table: str
    rows: int = 0
    transactions: int = 0
    seconds: float = 0.0
    note: str | None = None  # why nothing was to be done
    dry_run: bool = False

    def __str__(self) -> str:
        if self.note is not None:
            return f"{self.table}: nothing to prune ({self.note})"
        if self.dry_run:
            return f"{self.table}: {self.rows} rows to delete (dry run: nothing deleted)"
        return (
            f"{self.table}: {self.rows} rows deleted in {self.transactions} DELETE"
            f" transactions, {self.seconds:.1f} s"
        )


def prune_mysql(settings: Settings) -> MysqlSettings:
    """mysql.* with prune.user / prune.password in place of the CDC user's (when set)."""
    p = settings.prune
    update: dict[str, object] = {}
    if p.user is not None:
        update["user"] = p.user
    if p.password is not None:
        update["password"] = p.password
    return settings.mysql.model_copy(update=update)


def batches(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def ident(name: str) -> str:
    return f"`{name.replace('`', '``')}`"


def quote(db: str, table: str) -> str:
    return f"{ident(db)}.{ident(table)}"


def wait_until_passed(
    load: Callable[[], BinlogPosition | None],
    end: BinlogPosition,
    wait_seconds: float,
    deleted: int,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once the stored checkpoint has passed `end`; PruneStopped after `wait_seconds`."""
    deadline = clock() + wait_seconds
    while True:
        stored = load()
        if stored is None:
            raise PruneStopped(_no_checkpoint())
        if passed(stored, end):
            log.debug("the checkpoint %s has passed %s", stored, end)
            return
        if clock() >= deadline:
            raise PruneStopped(
                f"the stored checkpoint ({stored}) did not pass the end of the binary log read"
                f" after selecting the rows ({end}) within {wait_seconds:g} s: binlog-tailer is"
                f" not running or is behind; nothing unpublished was deleted ({deleted} rows"
                " deleted so far)"
            )
        sleep(min(CHECKPOINT_POLL_SECONDS, max(deadline - clock(), 0.0)))


def _no_checkpoint() -> str:
    return (
        "no stored checkpoint: nothing can be proven published, so nothing is deleted (run"
        " binlog-tailer first; prune reads the same checkpoint.* settings)"
    )


class Pruner:
    def __init__(
        self,
        settings: Settings,
        store: CheckpointStore | None,
        *,
        dry_run: bool = False,
        wait_seconds: float = 60.0,
    ) -> None:
        o = settings.outbox
        if not o.tables:
            raise ConfigError("outbox prune needs outbox.tables [env BINLOG_TAILER_OUTBOX__TABLES]")
        if o.timestamp_column is None:
            raise ConfigError(
                "outbox prune needs outbox.timestamp_column: the column the retention is"
                " measured on [env BINLOG_TAILER_OUTBOX__TIMESTAMP_COLUMN]"
            )
        self.settings = settings
        self.store = store
        self.dry_run = dry_run
        self.wait_seconds = wait_seconds
        self.mysql = prune_mysql(settings)
        self.ts = o.timestamp_column
        self.relay = o.source == "poll"

    def run(self, report: Callable[[Pruned], None]) -> None:
        """Prune every outbox table; `report` gets each table's result as it is done."""
        if self.relay and self.settings.relay.after_publish == "delete":
            names = ", ".join(self.settings.outbox.tables)
            report(Pruned(names, note="relay.after_publish = delete: the relay deletes each row"))
            return
        if not self.relay and not self.dry_run:
            assert self.store is not None
            if self.store.load() is None:
                raise PruneStopped(_no_checkpoint())
        conn = self._connect()
        try:
            tables = self._tables(conn)
            with asking("the retention's cutoff"), conn.cursor() as cur:
                micros = int(self.settings.prune.retention_hours * 3600 * 1_000_000)
                cur.execute("SELECT NOW(6) - INTERVAL %s MICROSECOND", (micros,))
                (cutoff,) = cur.fetchone()
            for db, table, engine in tables:
                report(self._prune(conn, db, table, engine, cutoff))
        finally:
            conn.close()

    def _connect(self) -> pymysql.Connection:
        s = self.mysql
        try:
            conn = pymysql.connect(**connection_kwargs(s), autocommit=True)  # type: ignore[arg-type]
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == ACCESS_DENIED:
                raise SourceError(
                    f"MySQL at {s.host}:{s.port} refused user {s.user!r} (access denied): check"
                    " prune.user / prune.password (default: mysql.user / mysql.password)"
                ) from exc
            raise translate(exc, s) from exc
        require_tls(conn, s)
        return conn

    def _tables(self, conn: pymysql.Connection) -> list[tuple[str, str, str]]:
        """(db, table, engine) of the tables outbox.tables names, as the user sees them."""
        wanted = TableFilter(self.settings.outbox.tables)
        with asking("its tables (information_schema.TABLES)"), conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.TABLES"
                " WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME"
            )
            found = [(d, t, e or "") for d, t, e in cur.fetchall() if wanted(d, t)]
        if not found:
            raise PruneStopped(
                f"no table matching outbox.tables ({', '.join(self.settings.outbox.tables)}) is"
                f" visible to user {self.mysql.user!r}: check the names, and that the user has"
                " SELECT and DELETE on them"
            )
        return found

    def _prune(
        self, conn: pymysql.Connection, db: str, table: str, engine: str, cutoff: object
    ) -> Pruned:
        result = Pruned(f"{db}.{table}", dry_run=self.dry_run)
        if engine.upper() == "BLACKHOLE":
            result.note = "a BLACKHOLE table stores no rows"
            return result
        name, ts = quote(db, table), ident(self.ts)
        where = f"{ts} < %s"
        if self.relay:
            where += f" AND {ident(self.settings.relay.sent_column)} IS NOT NULL"
        if self.dry_run:
            with asking(f"the old rows of {db}.{table}"), conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {name} WHERE {where}", (cutoff,))
                result.rows = int(cur.fetchone()[0])
            return result
        started = time.monotonic()
        self._probe_delete(conn, db, table)
        id_col = ident(self.settings.outbox.id_column)
        limit = SCAN_ROWS if not self.relay else self.settings.prune.batch_size
        while True:
            with asking(f"the old rows of {db}.{table}"), conn.cursor() as cur:
                cur.execute(
                    f"SELECT {id_col} FROM {name} WHERE {where} ORDER BY {ts} LIMIT {limit}",
                    (cutoff,),
                )
                ids = [row[0] for row in cur.fetchall()]
            if not ids:
                break
            if not self.relay:
                self._wait_published(result.rows)
            log.debug("deleting %d rows of %s.%s: %s .. %s", len(ids), db, table, ids[0], ids[-1])
            self._delete(conn, db, table, id_col, ids, result)
            if len(ids) < limit:
                break
        result.seconds = time.monotonic() - started
        return result

    def _wait_published(self, deleted: int) -> None:
        """Wait until the checkpoint passes the end of the binlog as it is now (read with the
        CDC user: the prune user need not see the binlog)."""
        assert self.store is not None
        with connect(self.settings.mysql) as cdc:
            end = latest_position(cdc)
        wait_until_passed(self.store.load, end, self.wait_seconds, deleted)

    def _delete(
        self,
        conn: pymysql.Connection,
        db: str,
        table: str,
        id_col: str,
        ids: list[str],
        result: Pruned,
    ) -> None:
        p = self.settings.prune
        name = quote(db, table)
        for chunk in batches(ids, p.batch_size):
            if result.transactions and p.pause_ms:
                time.sleep(p.pause_ms / 1000)
            placeholders = ",".join(["%s"] * len(chunk))
            sql = f"DELETE FROM {name} WHERE {id_col} IN ({placeholders})"
            if self.relay:  # a row the relay has marked stays marked; belt and braces
                sql += f" AND {ident(self.settings.relay.sent_column)} IS NOT NULL"
            with _deleting(conn, db, table), conn.cursor() as cur:
                conn.begin()
                deleted = cur.execute(sql, list(chunk))
                conn.commit()
            result.rows += deleted
            result.transactions += 1

    def _probe_delete(self, conn: pymysql.Connection, db: str, table: str) -> None:
        """A DELETE that matches nothing: a missing privilege shows before any waiting."""
        with _deleting(conn, db, table), conn.cursor() as cur:
            cur.execute(f"DELETE FROM {quote(db, table)} WHERE 1 = 0")


@contextlib.contextmanager
def _deleting(conn: pymysql.Connection, db: str, table: str) -> Iterator[None]:
    """Turns a refused DELETE into one line naming the GRANT to run."""
    with asking(f"to delete from {db}.{table}"):
        try:
            yield
        except pymysql.err.MySQLError as exc:
            if not exc.args or exc.args[0] not in PRIVILEGE_DENIED:
                raise
            raise SourceError(
                f"MySQL refused to delete from {db}.{table} ({exc.args[-1]}): grant it with"
                f" GRANT SELECT, DELETE ON {quote(db, table)} TO {_current_user(conn)}"
            ) from exc


def _current_user(conn: pymysql.Connection) -> str:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            user, _, host = str(cur.fetchone()[0]).rpartition("@")
    except pymysql.err.MySQLError:
        return "the prune user"
    return f"'{user}'@'{host}'"
