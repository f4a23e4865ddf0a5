"""The loop: source -> filter -> map -> publish -> checkpoint.

Depends only on small protocols; the CLI wires the concrete adapters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Protocol

from binlog_tailer.acks import AckTracker
from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.errors import PublishError
from binlog_tailer.model import Record, RowChange, TxnEnd
from binlog_tailer.position import BinlogPosition

log = logging.getLogger(__name__)


class Mapper(Protocol):
    def map(self, change: RowChange) -> list[Record]: ...


class Publisher(Protocol):
    def publish(self, record: Record, seq: int) -> None: ...
    def poll(self, timeout: float = 0.0) -> None: ...
    def flush(self, timeout: float) -> int: ...


class Pipeline:
    POLL_EVERY = 500  # rows between delivery-report polls inside a large transaction

    def __init__(
        self,
        source: Iterable[RowChange | TxnEnd | None],
        mapper: Mapper,
        publisher: Publisher,
        tracker: AckTracker[BinlogPosition],
        store: CheckpointStore,
        checkpoint_interval: float = 1.0,
        drain_timeout: float = 60.0,
    ) -> None:
        self.source = source
        self.mapper = mapper
        self.publisher = publisher
        self.tracker = tracker
        self.store = store
        self.checkpoint_interval = checkpoint_interval
        self.drain_timeout = drain_timeout
        self.saved: BinlogPosition | None = None
        self._last_save = 0.0
        self.rows = 0
        self.records = 0

    def run(self) -> None:
        """Run until the source ends (stop requested) or an error; always checkpoints what is
        safe before returning or raising."""
        try:
            self._loop()
        except BaseException:
            self._drain(report=False)
            raise
        self._drain(report=True)

    def _loop(self) -> None:
        since_poll = 0
        for item in self.source:
            if isinstance(item, RowChange):
                self.rows += 1
                for record in self.mapper.map(item):
                    self.publisher.publish(record, self.tracker.issue())
                    self.records += 1
                since_poll += 1
                if since_poll < self.POLL_EVERY:
                    continue
            elif isinstance(item, TxnEnd):
                self.tracker.boundary(item.position)
            since_poll = 0
            self.publisher.poll(0)
            self._maybe_save()

    def _maybe_save(self, force: bool = False) -> None:
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
        """Wait for outstanding deliveries, then store the newest safe position. With `report`,
        raise a delivery failure found on the way (the position stays before it)."""
        remaining = self.publisher.flush(self.drain_timeout)
        failure: PublishError | None = None
        try:
            self.publisher.poll(0)
        except PublishError as exc:
            failure = exc
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
