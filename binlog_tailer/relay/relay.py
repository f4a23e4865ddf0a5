"""The relay's loop: become the active relay, then poll, publish, await acks, remove.

A batch's rows are removed (deleted or marked sent) only after Kafka acknowledged every record
of the batch (dead letters included): a crash or `kill -9` at any moment leaves at most that
one batch to be published again, by whichever relay becomes active next. The next batch is
read only after that, so every record of a row precedes, in Kafka, those of rows read after it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from binlog_tailer.errors import (
    BadRecord,
    PublishError,
    PublishInterrupted,
    RecordRejected,
    SourceError,
    SourceUnavailable,
)
from binlog_tailer.mapping.dead_letter import DeadLetters
from binlog_tailer.mapping.outbox import OutboxMapper
from binlog_tailer.model import Record, RowChange, TableSchema
from binlog_tailer.publisher import KafkaPublisher
from binlog_tailer.relay import lock
from binlog_tailer.relay.checks import privilege_problem, table_problems
from binlog_tailer.relay.table import RelayTable
from binlog_tailer.server import CANNOT_CONNECT, PRIVILEGE_DENIED, connect, translate
from binlog_tailer.settings import MysqlSettings, RelaySettings

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        mysql: MysqlSettings,
        settings: RelaySettings,
        tables: Sequence[RelayTable],
        mapper: OutboxMapper,
        publisher: KafkaPublisher,
        dead_letters: DeadLetters | None,
        connector: str,
        ack_timeout: float,
    ) -> None:
        self.mysql = mysql
        self.settings = settings
        self.tables = list(tables)
        self.mapper = mapper
        self.publisher = publisher
        self.dead_letters = dead_letters  # None: a bad row stops the relay
        self.lock_name = lock.lock_name(connector)
        self.ack_timeout = ack_timeout
        self.alive_at = time.monotonic()  # the loop's last sign of life (/healthz)
        self.state = "connecting"  # connecting | standby | active
        self.batch_at: float | None = None  # when the last batch was removed (time.time())
        self.rows_by_table: dict[str, int] = {t.name: 0 for t in self.tables}
        self.rows = 0  # rows published and removed
        self.records = 0
        self.dead_lettered = 0
        self.batches = 0
        self.activations = 0
        self._stop = False
        self._seq = 0  # sequence numbers of records produced (latency sampling)
        self._schemas: dict[tuple[str, tuple[Any, ...]], TableSchema] = {}

    def stop(self) -> None:
        """Finish the batch in hand (publish, await acks, remove), then return (signal-safe)."""
        self._stop = True

    def run(self) -> None:
        """Relay until stopped. A lost connection is reopened (for up to
        mysql.reconnect_timeout_seconds); the relay then waits to be the active one again."""
        while not self._stop:
            self.state = "connecting"
            conn = self._connect()
            if conn is None:
                return
            try:
                if self._become_active(conn):
                    self._relay(conn)
            except SourceUnavailable as exc:
                log.warning("relay: lost MySQL (%s); reconnecting", exc)
            finally:
                conn.close()

    # ------------------------------------------------------------------ connection and lock
    def _connect(self) -> pymysql.Connection | None:
        retrying = Retrying(
            retry=retry_if_exception_type(SourceUnavailable),
            stop=stop_after_delay(self.mysql.reconnect_timeout_seconds),
            wait=wait_exponential(multiplier=0.2, max=5),
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda rs: log.warning(
                "MySQL unavailable (%s); retrying", rs.outcome.exception() if rs.outcome else "?"
            ),
        )
        for attempt in retrying:
            with attempt:
                if self._stop:
                    return None
                conn = connect(self.mysql)
                with self._asking("the relay's session settings"), conn.cursor() as cur:
                    # no gap locks, no snapshot held between polls: writers never wait on us
                    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                return conn
        return None  # not reached

    def _become_active(self, conn: pymysql.Connection) -> bool:
        """Wait for the lock (as a standby) until it is ours; False when stopped first."""
        told = False
        wait = self.settings.standby_check_seconds
        while not self._stop:
            with self._asking("the active relay's lock"):
                if lock.try_acquire(conn, self.lock_name, wait):
                    break
                other = lock.holder(conn, self.lock_name)
            self._alive()
            self.state = "standby"
            if not told:
                log.info(
                    "relay: standby; the active relay is MySQL connection %s (lock %r): taking"
                    " over when it ends",
                    other,
                    self.lock_name,
                )
                told = True
        else:
            return False
        self.activations += 1
        self.state = "active"
        for table in self.tables:
            with self._asking(f"the shape of {table.name}"):
                problems = table_problems(conn, table)
                # before publishing anything: a relay that could not remove what it published
                # would publish it again at every restart
                problem = None if problems else privilege_problem(conn, table)
            problems += [problem] if problem else []
            if problems:
                raise SourceError("; ".join(problems))
        log.info(
            "relay: active (lock %r): relaying %s, rows %s once Kafka acknowledged them",
            self.lock_name,
            ", ".join(t.name for t in self.tables),
            "marked sent" if self.settings.after_publish == "mark" else "deleted",
        )
        return True

    # ------------------------------------------------------------------ the loop
    def _relay(self, conn: pymysql.Connection) -> None:
        batch = self.settings.batch_size
        idle = self.settings.poll_interval_ms / 1000
        while not self._stop:
            found = False
            for table in self.tables:
                with self._asking(f"the next rows of {table.name}"), conn.cursor() as cur:
                    cur.execute(table.select_batch(batch))
                    rows = cur.fetchall()
                    schema = self._schema(table, cur.description)
                if rows:
                    self._publish_batch(conn, table, schema, rows)
                    found = True
            self._alive()
            # Rows committed while a batch was published are read at once; only a poll that
            # found nothing waits (what bounds the latency of an event after a quiet spell).
            if not found:
                self.publisher.poll(idle)

    def _schema(self, table: RelayTable, description: Any) -> TableSchema:
        key = (table.name, tuple(tuple(d[:2]) for d in description))
        schema = self._schemas.get(key)
        if schema is None:
            schema = self._schemas[key] = table.schema(description)
        return schema

    def _publish_batch(
        self, conn: pymysql.Connection, table: RelayTable, schema: TableSchema, rows: Any
    ) -> None:
        done: list[int] = []  # sequences of the rows whose records were handed to Kafka
        try:
            for row in rows:
                change = table.change(schema, row)
                for record in self._map(change):
                    self._publish(record)
                done.append(change.pos)
        except (BadRecord, PublishInterrupted):
            # dead_letter.mode = stop, or a stop while Kafka's queue was full: what was sent
            # before is acknowledged and removed; the rest stays for the next run
            self._await_acks()
            self._remove(conn, table, done)
            raise
        self._await_acks()
        self._remove(conn, table, done)
        self.batches += 1

    def _map(self, change: RowChange) -> list[Record]:
        try:
            records = self.mapper.map(change)
        except BadRecord as exc:
            if self.dead_letters is None:
                raise
            log.warning("dead letter (%s): %s", exc.reason, exc)
            self.dead_lettered += 1
            return [self.dead_letters.bad_row(change, exc)]
        for record in records:
            record.origin = change
        return records

    def _publish(self, record: Record) -> None:
        self._seq += 1
        try:
            self.publisher.publish(record, self._seq, lambda: self._stop)
        except RecordRejected as exc:
            self._dead_letter_rejected(exc)
        self.records += 1

    def _dead_letter_rejected(self, exc: RecordRejected) -> None:
        record: Record = exc.record
        if self.dead_letters is None or record.origin is None:
            raise exc
        log.warning("dead letter (rejected by Kafka): %s", exc)
        self.dead_lettered += 1
        letter = self.dead_letters.rejected(exc)
        self.publisher.publish(letter, exc.seq)

    def _await_acks(self) -> None:
        """Until Kafka acknowledged every record produced (refused ones dead-lettered), or
        PublishError: nothing of the batch is removed then."""
        deadline = time.monotonic() + self.ack_timeout
        while True:
            remaining = self.publisher.flush(max(0.0, min(1.0, deadline - time.monotonic())))
            self.publisher.raise_failure()
            rejected = self.publisher.take_rejected()
            for exc in rejected:
                self._dead_letter_rejected(exc)
            self._alive()
            if remaining == 0 and not rejected:
                return
            if time.monotonic() >= deadline:
                raise PublishError(
                    f"{remaining} records were not acknowledged by Kafka within"
                    f" {self.ack_timeout:.0f}s; their outbox rows stay, to be published again"
                )

    def _remove(self, conn: pymysql.Connection, table: RelayTable, seqs: list[int]) -> None:
        if not seqs:
            return
        what = "mark as sent" if table.sent_column else "delete"
        with self._asking(f"to {what} published rows of {table.name}"), conn.cursor() as cur:
            cur.execute(table.remove(len(seqs)), seqs)
        self.rows += len(seqs)
        self.rows_by_table[table.name] += len(seqs)
        self.batch_at = time.time()

    # ------------------------------------------------------------------ helpers
    def _alive(self) -> None:
        self.alive_at = time.monotonic()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop and time.monotonic() < deadline:
            self._alive()
            self.publisher.poll(max(0.0, min(0.1, deadline - time.monotonic())))

    def _asking(self, what: str) -> contextlib.AbstractContextManager[None]:
        return _asking(self.mysql, what)


@contextlib.contextmanager
def _asking(mysql: MysqlSettings, what: str) -> Iterator[None]:
    """Translates the server's errors while asking `what` into one clear error: a lost
    connection into SourceUnavailable (reconnect), a refused privilege into its GRANT."""
    try:
        yield
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        message = exc.args[-1] if exc.args else exc
        if code in CANNOT_CONNECT or isinstance(exc, pymysql.err.InterfaceError):
            raise SourceUnavailable(f"lost MySQL while asking {what}: {message}") from exc
        if code in PRIVILEGE_DENIED:
            raise SourceError(
                f"MySQL refused {what} to user {mysql.user!r}: {message}; the relay needs"
                " SELECT and DELETE (relay.after_publish = mark: SELECT and UPDATE) on the"
                " outbox table: GRANT SELECT, DELETE ON db.outbox TO ..."
            ) from exc
        raise translate(exc, mysql) from exc
