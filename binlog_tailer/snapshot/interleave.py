"""A snapshot read while the stream runs, without locks: Netflix DBLog's watermarks.

Chunks of the table are read between stream items, at transaction boundaries (and idle
heartbeats). A chunk waits until the stream has read the binlog up to the chunk's high
watermark (the end of the binlog after its SELECT), and is published there, as `op: "r"` rows,
minus every key the stream changed in the meantime: those rows' newer state is streamed, so a
streamed change always wins and no row appears in an older state after a newer one.

The window also reaches back `LOOKBACK_SECONDS` before the SELECT: a transaction is in the
binlog (and may be streamed) a moment before its commit is visible to other sessions, so a
SELECT just after the stream read it may still see the row before it.

After each chunk the boundary carries the snapshot's progress (`SnapshotState`), and the
offset of the next signal, so that the checkpoint stores them with the position: a restart
reads on from the next chunk and applies each signal once.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from binlog_tailer.errors import BinlogTailerError, SourceError
from binlog_tailer.model import RowChange, TxnEnd
from binlog_tailer.position import BinlogPosition
from binlog_tailer.snapshot.reader import Chunk, ChunkReader
from binlog_tailer.snapshot.signals import Signal, SignalListener
from binlog_tailer.snapshot.state import SnapshotState

log = logging.getLogger(__name__)

Item = RowChange | TxnEnd | None


class Stream(Protocol):
    carry_snapshot: SnapshotState | None
    carry_signals: int | None

    def __iter__(self) -> Iterator[Item]: ...
    def read_position(self) -> tuple[str | None, int]: ...
    @property
    def stopping(self) -> bool: ...


class SnapshotProgress:
    """Rows read, for the log and the metrics."""

    def __init__(self) -> None:
        self.table: str | None = None  # being read (None: no snapshot running)
        self.rows = 0  # of `table`
        self.estimate = 0  # of `table`, information_schema's
        self.total_rows = 0  # of every table, this run
        self.chunks = 0
        self._rate_since: tuple[float, int] = (time.monotonic(), 0)

    def rate(self) -> float:
        since, rows = self._rate_since
        elapsed = time.monotonic() - since
        return (self.total_rows - rows) / elapsed if elapsed > 0 else 0.0

    def restart_rate(self) -> None:
        self._rate_since = (time.monotonic(), self.total_rows)

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
        start: BinlogPosition,
        signals: SignalListener | None = None,
        captured: Callable[[str, str], bool] = lambda db, table: True,
        log_seconds: float = 10.0,
    ) -> None:
        self.stream = stream
        self.reader = reader
        self.signals = signals
        self.captured = captured
        self.state: SnapshotState | None = start.snapshot
        self.signal_offset = start.signals
        if self.signal_offset is None and signals is not None:
            self.signal_offset = stream.carry_signals = signals.start
        self.last = start  # the last stream boundary
        self.progress = SnapshotProgress()
        self.log_seconds = log_seconds
        self._logged = time.monotonic()
        self._pending: Chunk | None = None
        self._drop: set[tuple[Any, ...]] = set()
        self._recent: deque[tuple[float, tuple[Any, ...]]] = deque()
        self._watch: tuple[str, str] | None = None
        self._key: tuple[str, ...] = ()
        if self.state is not None:
            self._begin_table(self.state)

    def close(self) -> None:
        self.reader.close()
        if self.signals is not None:
            self.signals.close()

    def __iter__(self) -> Iterator[Item]:
        source: Iterable[Item] = self.stream
        items = iter(source)
        signals = self.signals
        for item in items:
            if item.__class__ is RowChange:
                if self._watch is not None:
                    self._note(item)  # type: ignore[arg-type]
                yield item
                continue
            if item is not None:
                self.last = item.position  # type: ignore[union-attr]
            yield item
            if self.stream.stopping:
                continue
            if signals is not None and signals.pending:
                yield from self._apply_signals(signals)
            if self.state is not None:
                yield from self._steps()
            elif signals is None:  # done, and nothing can start another: the stream alone
                self.reader.close()
                yield from items
                return

    # ------------------------------------------------------------------ signals
    def _apply_signals(self, signals: SignalListener) -> Iterator[Item]:
        while signals.pending:
            offset, signal = signals.pending.popleft()
            if signal.action == "snapshot":
                self._request(signal)
            elif signal.action == "stop":
                if self.state is not None:
                    log.warning("signal %s: snapshot stopped (%s)", signal.id, self.state)
                    self._set_state(None)
                else:
                    log.info("signal %s: stop, but no snapshot is running", signal.id)
            self.signal_offset = offset + 1
        self.stream.carry_signals = self.signal_offset
        yield TxnEnd(self._position())

    def _request(self, signal: Signal) -> None:
        tables = []
        for name in signal.tables:
            db, _, table = name.partition(".")
            if not self.captured(db, table):
                log.error("signal %s: %s is not a captured table; not read", signal.id, name)
                continue
            try:
                self.reader.table(name)
            except BinlogTailerError as exc:
                log.error("signal %s: %s; not read", signal.id, exc)
                continue
            tables.append(name)
        if not tables:
            return
        log.info(
            "signal %s: snapshot of %s%s requested",
            signal.id,
            ", ".join(tables),
            f" where {signal.where}" if signal.where else "",
        )
        if self.state is None:
            self._set_state(SnapshotState.of(tuple(tables), signal.where))
        else:
            self.state = self.stream.carry_snapshot = self.state.with_tables(
                tuple(tables), signal.where
            )

    # ------------------------------------------------------------------ chunks
    def _set_state(self, state: SnapshotState | None) -> None:
        table_changed = state is None or self.state is None or state.table != self.state.table
        self.state = self.stream.carry_snapshot = state
        if table_changed:
            self._pending, self._drop = None, set()
            self._begin_table(state)

    def _position(self) -> BinlogPosition:
        return dataclasses.replace(self.last, snapshot=self.state, signals=self.signal_offset)

    def _begin_table(self, state: SnapshotState | None) -> None:
        self._recent.clear()
        p = self.progress
        if state is None:
            self._watch, p.table = None, None
            return
        table = self.reader.table(state.table)
        self._watch = (table.schema.db, table.schema.table)
        self._key = table.key
        p.table, p.rows, p.estimate = state.table, state.rows, max(table.estimate, state.rows)
        p.restart_rate()
        log.info("%s: ~%d rows in the table", state, table.estimate)

    def _note(self, change: RowChange) -> None:
        """A streamed row of the table being read: its keys win over any chunk around it."""
        if (change.schema.db, change.schema.table) != self._watch:
            return
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
                state = self.state
                try:
                    chunk = self.reader.read(state.table, state.after, state.condition())
                except SourceError as exc:  # dropped, or a condition it cannot run
                    log.error("%s; the snapshot goes on with the next table", exc)
                    self._set_state(state.next_table())
                    yield TxnEnd(self._position())
                    continue
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
        self._pending, self._drop = None, set()
        if chunk.last:
            log.info("snapshot of %s: done, %d rows", state.table, p.rows)
            self._set_state(state.next_table())
            if self.state is None:
                log.info("snapshot: every table read; streaming goes on")
        else:
            self.state = self.stream.carry_snapshot = state.next_chunk(
                chunk.keys[-1], len(chunk.rows)
            )
        yield TxnEnd(self._position())
        if time.monotonic() - self._logged >= self.log_seconds and self.state is not None:
            self._logged = time.monotonic()
            log.info("%s", p.line())
