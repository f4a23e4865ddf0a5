"""The loop: source -> filter -> map -> publish -> checkpoint.

Depends only on small protocols; the CLI wires the concrete adapters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from binlog_tailer.acks import AckTracker
from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.errors import BadRecord, PublishError, PublishInterrupted, RecordRejected
from binlog_tailer.exactly_once import KafkaTransactions
from binlog_tailer.heartbeat import Heartbeats
from binlog_tailer.mapping import Mapper
from binlog_tailer.mapping.dead_letter import DeadLetters
from binlog_tailer.mapping.transactions import TransactionMetadata
from binlog_tailer.model import Record, RowChange, TxnEnd
from binlog_tailer.position import BinlogPosition
from binlog_tailer.stats import PipelineStats

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish(self, record: Record, seq: int, give_up: Callable[[], bool]) -> None: ...
    def poll(self, timeout: float = 0.0) -> None: ...
    def flush(self, timeout: float) -> int: ...
    def take_rejected(self) -> list[RecordRejected]: ...


class Pipeline:
    # Delivery reports are served every POLL_EVERY items (rows and transaction ends), at least
    # every POLL_INTERVAL seconds while items flow, and at every idle tick (server heartbeat).
    POLL_EVERY = 256
    POLL_INTERVAL = 0.05

    def __init__(
        self,
        source: Iterable[RowChange | TxnEnd | None],
        mapper: Mapper,
        publisher: Publisher,
        tracker: AckTracker[BinlogPosition],
        store: CheckpointStore,
        checkpoint_interval: float = 1.0,
        drain_timeout: float = 60.0,
        dead_letters: DeadLetters | None = None,
        transactions: KafkaTransactions | None = None,
        transaction_metadata: TransactionMetadata | None = None,
        heartbeats: Heartbeats | None = None,
    ) -> None:
        self.source = source
        self.mapper = mapper
        self.publisher = publisher
        self.tracker = tracker
        self.store = store
        self.checkpoint_interval = checkpoint_interval
        self.drain_timeout = drain_timeout
        self.dead_letters = dead_letters  # None: a bad record stops the service
        # Exactly-once: positions are committed in Kafka transactions, not by the store
        self.transactions = transactions
        self.transaction_metadata = transaction_metadata  # BEGIN/END records
        self.heartbeats = heartbeats  # records while no other is published
        self._prepared = False
        self.saved: BinlogPosition | None = None
        self._last_save = 0.0
        self.rows = 0
        self.records = 0
        self.dead_lettered = 0
        self._txn_records = 0  # self.records when the current transaction began
        self._stop_requested = False
        self._drain_deadline: float | None = None
        self.stats = PipelineStats()
        self._commit_ms = 0  # when the newest row read was committed (ms)
        self.snapshot: Any = None  # the SnapshotInterleaver feeding `source`, if any
        self._rows_at_mark = 0

    @property
    def checkpoint(self) -> BinlogPosition | None:
        """The position stored last (exactly-once: committed last); None before the first."""
        return self.transactions.committed if self.transactions is not None else self.saved

    def stop(self) -> None:
        """Ask the run to end (signal-safe). The source, stopped too, ends the stream at the
        next transaction boundary; getting there must not wait for Kafka to make room for the
        rest of a large transaction: a record that finds Kafka's local queue full is not sent,
        nor is anything after it. The checkpoint then stays before that transaction, and the
        next run publishes all of it again."""
        self._stop_requested = True

    def run(self) -> None:
        """Run until the source ends (stop requested) or an error; always checkpoints what is
        safe before returning or raising."""
        if self.transactions is not None:
            self._run_transactions(self.transactions)
            return
        try:
            self._loop()
        except PublishInterrupted as exc:
            self._interrupted(exc)
        except BaseException:
            self._drain(report=False)
            raise
        self._drain(report=True)

    def prepare(self) -> None:
        """Exactly-once: open the first Kafka transaction, committing the start position
        first when it is not the stored one (done by `run` when not called before)."""
        if self.transactions is not None and not self._prepared:
            self.transactions.start(self.records)
            self._prepared = True

    def _run_transactions(self, txns: KafkaTransactions) -> None:
        """Exactly-once: what an error interrupts is aborted, never partly visible; the last
        committed position stays."""
        self.prepare()
        try:
            self._loop()
            txns.commit_now(self.records)  # the source ended at a MySQL commit
        except PublishInterrupted:
            txns.abort()
            log.warning(
                "the stop found Kafka's local queue full: the open Kafka transaction is"
                " aborted, and the position stays at %s",
                txns.committed,
            )
        except BaseException:
            txns.abort()
            raise
        finally:
            self.saved = txns.committed

    def _give_up(self) -> bool:
        """Whether a record waiting for room in Kafka's full queue gives up: once a stop is
        requested; while draining, at the drain's deadline."""
        self.stats.touch()  # waiting for room in Kafka's queue is alive
        if self._drain_deadline is not None:
            return time.monotonic() >= self._drain_deadline
        return self._stop_requested

    def _interrupted(self, exc: PublishInterrupted) -> None:
        origin = exc.record.origin
        where = f" of the row at {origin.file}:{origin.pos}" if origin is not None else ""
        if origin is not None and origin.gtid:
            where += f" (GTID {origin.gtid})"
        sent = self.records - self._txn_records
        log.warning(
            "the stop interrupted the transaction%s while Kafka's local queue was full: the"
            " rest of it is not published, and the checkpoint stays before it; the next start"
            " publishes the whole transaction again, its %d record(s) sent already included",
            where,
            sent,
        )

    def _loop(self) -> None:
        since_poll, last_poll = 0, time.monotonic()
        issue, publish = self.tracker.issue, self._publish
        boundary: Callable[[BinlogPosition], None] = self.tracker.boundary
        txns = self.transactions
        if txns is not None:

            def boundary(position: BinlogPosition) -> None:
                txns.boundary(position, self.records)

        meta, hb = self.transaction_metadata, self.heartbeats
        if meta is not None or hb is not None:
            boundary = self._with_metadata(boundary)
        by_table, new_table = self.stats.by_table, self.stats.table
        commit_ms = self._commit_ms  # of the newest row read (a local: one store per row less)
        for item in self.source:
            if item is not None:
                if isinstance(item, RowChange):
                    self.rows += 1
                    records = self._map(item)
                    if meta is not None:
                        begin = meta.begin()  # at the transaction's first record
                        if begin is not None:
                            publish(begin, issue())
                    for record in records:
                        publish(record, issue())
                    counts = (by_table.get(item.schema) or new_table(item.schema))[item.op]
                    counts[0] += 1
                    counts[1] += len(records)
                    commit_ms = item.ts_ms
                    if txns is not None:
                        txns.row_done(item, self.records)
                else:
                    boundary(item.position)
                    self._txn_records = self.records
                since_poll += 1
                if (
                    since_poll < self.POLL_EVERY
                    and time.monotonic() - last_poll < self.POLL_INTERVAL
                ):
                    continue
            since_poll, last_poll = 0, time.monotonic()
            self._poll(0)
            if hb is not None:
                self._heartbeat(hb, last_poll)
            self._maybe_save()
            self._commit_ms = commit_ms
            self._mark()

    def _with_metadata(
        self, boundary: Callable[[BinlogPosition], None]
    ) -> Callable[[BinlogPosition], None]:
        """`boundary` after the transaction's END record (published before its position can
        become safe, and in the same Kafka transaction under exactly-once), keeping the last
        boundary for heartbeats."""
        meta, hb, issue = self.transaction_metadata, self.heartbeats, self.tracker.issue

        def with_metadata(position: BinlogPosition) -> None:
            if meta is not None:
                end = meta.end(position)
                if end is not None:
                    self._publish(end, issue())
            if hb is not None:
                hb.position = position
            boundary(position)

        return with_metadata

    def _heartbeat(self, hb: Heartbeats, now: float) -> None:
        """A heartbeat record when due. Exactly-once: only between MySQL transactions (a
        Kafka transaction is committed only there), and committed as records between them."""
        txns = self.transactions
        if txns is not None and not txns.between(self.records):
            return
        record = hb.tick(self.records, now)
        if record is not None:
            self._publish(record, self.tracker.issue())
            if txns is not None:
                txns.produced_between(self.records)

    def idle(self) -> None:
        """Serve delivery reports and store what they made safe, while the source waits (for
        a server that went away): acknowledged work is checkpointed even then."""
        self._poll(0)
        self._maybe_save()
        self._mark()

    def _mark(self) -> None:
        # Records issued since the last mark without a row read (heartbeats) are no change
        # waiting: they get no commit time (the newest row's would make the lag jump).
        rows, self._rows_at_mark = self._rows_at_mark, self.rows
        commit_ms = self._commit_ms if self.rows != rows else 0
        tracker = self.tracker
        self.stats.mark(tracker.issued, commit_ms, tracker.oldest, self._caught_up())

    def _caught_up(self) -> bool:
        """Whether everything read is acknowledged and the checkpoint (exactly-once: the last
        Kafka transaction committed) reaches it."""
        if self.tracker.pending:
            return False
        txns = self.transactions
        if txns is not None:
            return txns.committed == txns.position
        return self.tracker.safe == self.saved

    def _map(self, change: RowChange) -> list[Record]:
        try:
            records = self.mapper.map(change)
        except BadRecord as exc:
            if self.dead_letters is None:
                raise
            log.warning("dead letter (%s): %s", exc.reason, exc)
            self.dead_lettered += 1
            self.stats.dead_letter(exc.reason)
            return [self.dead_letters.bad_row(change, exc)]
        for record in records:
            record.origin = change
        return records

    def _publish(self, record: Record, seq: int) -> None:
        try:
            self.publisher.publish(record, seq, self._give_up)
        except RecordRejected as exc:
            self.records += 1
            self._dead_letter_rejected(exc)
        else:
            self.records += 1

    def _poll(self, timeout: float) -> None:
        self.publisher.poll(timeout)
        for rejected in self.publisher.take_rejected():
            self._dead_letter_rejected(rejected)

    def _dead_letter_rejected(self, exc: RecordRejected) -> None:
        record: Record = exc.record
        if self.dead_letters is None or record.origin is None:
            raise exc
        log.warning("dead letter (rejected by Kafka): %s", exc)
        self.dead_lettered += 1
        self.stats.dead_letter("rejected")
        letter = self.dead_letters.rejected(exc)
        # The same sequence number: the position passes the row only once its dead letter is
        # acknowledged.
        self.publisher.publish(letter, exc.seq, self._give_up)
        self.records += 1

    def _maybe_save(self, force: bool = False) -> None:
        if self.transactions is not None:
            self.transactions.tick(self.records)
            return
        safe = self.tracker.safe
        if safe is None or safe == self.saved:
            return
        now = time.monotonic()
        if force or now - self._last_save >= self.checkpoint_interval:
            # Only a transaction boundary whose records (and all earlier ones) Kafka has
            # acknowledged gets here: resuming from it can lose nothing.
            self.store.save(safe)
            self.saved = safe
            self._last_save = now
            log.debug("checkpoint %s", safe)

    def _drain(self, report: bool) -> None:
        """Wait for outstanding deliveries (dead-lettering rejected records on the way), then
        store the newest safe position. With `report`, raise a delivery failure found on the
        way (the position stays before it)."""
        failure: PublishError | None = None
        remaining = 0
        deadline = self._drain_deadline = time.monotonic() + self.drain_timeout
        while True:
            remaining = self.publisher.flush(max(0.0, deadline - time.monotonic()))
            published = self.records
            try:
                self._poll(0)
            except PublishError as exc:
                failure = exc
                break
            except PublishInterrupted:  # a dead letter found no room in the queue in time
                remaining += 1
                break
            # a rejected record was dead-lettered just now: flush that one too
            if self.records == published or time.monotonic() >= deadline:
                break
        self._maybe_save(force=True)
        if not report:
            return
        if failure is not None:
            raise failure
        if remaining:
            raise PublishError(
                f"{remaining} records were not acknowledged by Kafka within"
                f" {self.drain_timeout:.0f}s; the checkpoint stays before them"
            )
