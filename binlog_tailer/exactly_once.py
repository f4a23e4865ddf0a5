"""Exactly-once delivery: when a Kafka transaction commits, and which position it commits.

Every Kafka transaction carries, besides records, the offset record (checkpoint/records.py)
naming the position those records reach; Kafka makes both visible together or neither. A
restart reads the last committed position (read_committed) and resumes there: nothing is
published twice, nothing skipped.

- A Kafka transaction ends at a MySQL commit, once it is `interval` seconds old or holds
  `max_records` records. A commit in the middle of a MySQL transaction would make part of
  it visible, so idle ticks commit only between MySQL transactions.
- A MySQL transaction with more than `split_records` records is split: the offset then names
  the boundary before it plus the last row published (`BinlogPosition.done`), and a restart
  skips the rows up to that one.
- A Kafka transaction left open inside a MySQL transaction for `max_open` seconds (the
  server went away mid-transaction, Kafka slow) is split too, before Kafka aborts it.
- The publisher commits what is open (`commit_now`) before it replaces its producer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from binlog_tailer.checkpoint.records import offset_record
from binlog_tailer.model import Record, RowChange
from binlog_tailer.position import BinlogPosition, RowRef

log = logging.getLogger(__name__)


class TransactionalPublisher(Protocol):
    def begin(self) -> None: ...
    def commit(self, offset: Record, timeout: float) -> None: ...
    def abort(self, timeout: float) -> None: ...


class KafkaTransactions:
    def __init__(
        self,
        publisher: TransactionalPublisher,
        offsets_topic: str,
        name: str,
        start: BinlogPosition,
        *,
        interval: float,
        max_records: int,
        split_records: int,
        commit_timeout: float,
        stored: BinlogPosition | None = None,
        max_open: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.offsets_topic = offsets_topic
        self.name = name
        self.interval = interval
        self.max_records = max_records
        self.split_records = max(split_records, max_records)
        self.commit_timeout = commit_timeout
        self.max_open = max_open  # seconds a transaction may stay open inside a MySQL one
        self._clock = clock
        self.committed = stored  # what the last commit names (at first: what is stored)
        self._boundary = start.boundary  # the last MySQL commit passed
        # rows of the next transaction published: up to `start.done`, or to this row
        self._done: RowRef | None = start.done
        self._last_row: RowChange | None = None
        self._opened_at = 0.0
        self._records_at_open = 0
        self._records_at_boundary = 0
        self._open = False
        self.commits = 0
        self.commit_seconds = 0.0  # spent waiting for commits
        self.splits = 0

    @property
    def position(self) -> BinlogPosition:
        """Where everything produced so far reaches."""
        b, row = self._boundary, self._last_row
        done = self._done if row is None else RowRef(row.file, row.pos, row.row)
        return b if done is None else BinlogPosition(b.file, b.pos, b.gtid, done)

    @property
    def _inside(self) -> bool:
        """Whether rows of an unfinished MySQL transaction were published."""
        return self._done is not None or self._last_row is not None

    def start(self, records: int) -> None:
        """Open the first transaction. A start elsewhere than the stored position (`run
        --from`, a first run) is committed at once, alone: a stop before the first commit
        must not let the next run resolve `latest` again."""
        self.begin(records)
        if self.position != self.committed:
            self._commit(records)

    def begin(self, records: int) -> None:
        self.publisher.begin()
        self._open = True
        self._opened_at = self._clock()
        self._records_at_open = records

    def row_done(self, change: RowChange, records: int) -> None:
        """Every record of `change` is produced (`records`: the count of all produced)."""
        self._last_row = change  # (a reference: the position is built when committed)
        if records - self._records_at_open >= self.split_records:
            self.splits += 1
            log.info(
                "the MySQL transaction after %s is split over Kafka transactions: %d records"
                " so far (exactly_once.split_records); the offset names its last row published",
                self._boundary,
                records - self._records_at_boundary,
            )
            self._commit(records)

    def boundary(self, position: BinlogPosition, records: int) -> None:
        """A MySQL transaction ended at `position`."""
        self._boundary = position
        self._done = self._last_row = None
        self._records_at_boundary = records
        if (
            records - self._records_at_open >= self.max_records
            or self._clock() - self._opened_at >= self.interval
        ):
            self._commit(records)

    def between(self, records: int) -> bool:
        """Whether no record of an unfinished MySQL transaction was produced."""
        return not self._inside and records == self._records_at_boundary

    def produced_between(self, records: int) -> None:
        """Records were produced between MySQL transactions (heartbeats): committed with the
        next commit, idle or not."""
        self._records_at_boundary = records

    def tick(self, records: int) -> None:
        """Between items and while idle: commit a due transaction, when between MySQL
        transactions (no record of an unfinished one produced). Inside one, only when the
        Kafka transaction has been open for half its timeout (the server went away in the
        middle of a MySQL transaction, or Kafka is slow): split there rather than let Kafka
        abort it."""
        age = self._clock() - self._opened_at
        if age < self.interval:
            return
        between = self.between(records)
        if between and (records > self._records_at_open or self.position != self.committed):
            self._commit(records)
        elif not between and age >= self.max_open:
            self.splits += 1
            log.warning(
                "the Kafka transaction has been open %.0fs inside the MySQL transaction after"
                " %s: committed up to its last row published (the rest follows)",
                age,
                self._boundary,
            )
            self._commit(records)

    def commit_now(self, records: int) -> None:
        """Commit what is open, wherever the stream is (a clean stop, a producer replaced)."""
        if self._open and (records > self._records_at_open or self.position != self.committed):
            self._commit(records)

    def abort(self) -> None:
        if self._open:
            self._open = False
            self.publisher.abort(min(self.commit_timeout, 30.0))

    def _commit(self, records: int) -> None:
        position = self.position
        self._open = False  # a failed commit aborted the transaction
        began = self._clock()
        self.publisher.commit(
            offset_record(self.offsets_topic, self.name, position), self.commit_timeout
        )
        self.committed = position
        self.commits += 1
        took, size = self._clock() - began, records - self._records_at_open
        self.commit_seconds += took
        log.debug(
            "committed a Kafka transaction, %d records, in %.1f ms: %s", size, took * 1e3, position
        )
        self.begin(records)
