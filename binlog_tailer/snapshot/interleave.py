"""A snapshot read while the stream runs, without locks: Netflix DBLog's watermarks.

Chunks of the table are read between stream items, at transaction boundaries (and idle
heartbeats). A chunk waits until the stream has read the binlog up to the chunk's high
watermark (the end of the binlog after its SELECT), and is published there, as `op: "r"` rows,
minus every key the stream changed in the meantime: those rows' newer state is streamed, so a
streamed change always wins and no row appears in an older state after a newer one.

The window also reaches back `LOOKBACK_SECONDS` before the SELECT: a transaction is in the
binlog (and may be streamed) a moment before its commit is visible to other sessions, so a
SELECT just after the stream read it may still see the row before it.

After each chunk the boundary carries the snapshot's progress (`SnapshotState`), so that the
checkpoint stores it with the position and a restart reads on from the next chunk.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from binlog_tailer.model import RowChange, TxnEnd
from binlog_tailer.position import BinlogPosition
from binlog_tailer.snapshot.reader import Chunk, ChunkReader
from binlog_tailer.snapshot.state import SnapshotState

log = logging.getLogger(__name__)

Item = RowChange | TxnEnd | None


class Stream(Protocol):
    def __iter__(self) -> Iterator[Item]: ...
    def read_position(self) -> tuple[str | None, int]: ...
    @property
    def stopping(self) -> bool: ...


class SnapshotProgress:
    """Rows read per table, for the log and the metrics."""

    def __init__(self) -> None:
        self.table: str | None = None
        self.rows = 0  # of `table`
        self.estimate = 0  # of `table`, information_schema's
        self.total_rows = 0  # of every table, this run
        self.started = time.monotonic()
        self.chunks = 0

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.total_rows / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        left = max(0, self.estimate - self.rows)
        eta = f", ETA {left / rate:.0f} s" if rate > 0 and self.estimate else ""
        share = f" ({100 * self.rows / self.estimate:.0f}%)" if self.estimate else ""
        return (
            f"snapshot of {self.table}: {self.rows:,} of ~{self.estimate:,} rows{share},"
            f" {rate:,.0f} rows/s{eta}"
        )


class SnapshotInterleaver:
    LOOKBACK_SECONDS = 2.0

    def __init__(
        self,
        stream: Stream,
        reader: ChunkReader,
        state: SnapshotState,
        start: BinlogPosition,
        log_seconds: float = 10.0,
    ) -> None:
        self.stream = stream
        self.reader = reader
        self.state: SnapshotState | None = state
        self.last = dataclasses.replace(start, snapshot=None)  # the last stream boundary
        self.progress = SnapshotProgress()
        self.log_seconds = log_seconds
        self._logged = time.monotonic()
        self._pending: Chunk | None = None
        self._drop: set[tuple[Any, ...]] = set()
        self._recent: deque[tuple[float, tuple[Any, ...]]] = deque()
        self._watch: tuple[str, str] | None = None
        self._key: tuple[str, ...] = ()
        self._begin_table(state)

    def __iter__(self) -> Iterator[Item]:
        source: Iterable[Item] = self.stream
        items = iter(source)
        watch = self._note
        for item in items:
            if item is None:
                yield None
            elif isinstance(item, TxnEnd):
                self.last = item.position
                yield TxnEnd(dataclasses.replace(item.position, snapshot=self.state))
            else:
                if (item.schema.db, item.schema.table) == self._watch:
                    watch(item)
                yield item
                continue
            if not self.stream.stopping:
                yield from self._steps()
            if self.state is None:  # done: the stream alone from here
                self.reader.close()
                yield from items
                return

    def _begin_table(self, state: SnapshotState | None) -> None:
        self._recent.clear()
        if state is None:
            self._watch = None
            return
        table = self.reader.table(state.table)
        self._watch = (table.schema.db, table.schema.table)
        self._key = table.key
        p = self.progress
        p.table, p.rows, p.estimate = state.table, state.rows, max(table.estimate, state.rows)
        where = "from its start" if state.after is None else f"after key {list(state.after)}"
        log.info("snapshot of %s: reading ~%d rows %s", state.table, table.estimate, where)

    def _note(self, change: RowChange) -> None:
        """A streamed row of the table being read: its keys win over any chunk around it."""
        now = time.monotonic()
        recent, key = self._recent, self._key
        for image in (change.before, change.after):
            if image is not None:
                k = tuple(image.get(c) for c in key)
                recent.append((now, k))
                if self._pending is not None:
                    self._drop.add(k)
        horizon = now - self.LOOKBACK_SECONDS
        while recent and recent[0][0] < horizon:
            recent.popleft()

    def _steps(self) -> Iterator[Item]:
        """Read chunks and publish those the stream has caught up with."""
        while self.state is not None and not self.stream.stopping:
            if self._pending is None:
                chunk = self.reader.read(self.state.table, self.state.after)
                since = chunk.read_at - self.LOOKBACK_SECONDS
                self._drop = {k for t, k in self._recent if t >= since}
                self._pending = chunk
            chunk = self._pending
            file, pos = self.stream.read_position()
            if file is None or (file, pos) < chunk.high:
                return  # published once the stream has read up to its high watermark
            yield from self._publish(chunk, self.state)

    def _publish(self, chunk: Chunk, state: SnapshotState) -> Iterator[Item]:
        at, drop, schema = self.last, self._drop, chunk.table.schema
        assert at.file is not None and at.pos is not None
        now_ms = int(time.time() * 1000)
        for i, (image, key) in enumerate(zip(chunk.rows, chunk.keys, strict=True)):
            if key not in drop:
                yield RowChange(schema, "r", None, image, at.file, at.pos, i, None, 0, now_ms)
        p = self.progress
        p.rows += len(chunk.rows)
        p.total_rows += len(chunk.rows)
        p.chunks += 1
        if chunk.last:
            log.info("snapshot of %s: done, %d rows", state.table, p.rows)
            self.state = state.next_table()
            self._begin_table(self.state)
            if self.state is None:
                log.info("snapshot: every table read; streaming goes on")
        else:
            self.state = state.next_chunk(chunk.keys[-1], len(chunk.rows))
        self._pending, self._drop = None, set()
        yield TxnEnd(dataclasses.replace(at, snapshot=self.state))
        if time.monotonic() - self._logged >= self.log_seconds and self.state is not None:
            self._logged = time.monotonic()
            log.info("%s", p.line())
