"""Plain counters the pipeline keeps for metrics, health and progress.

Written by the pipeline's thread only, read by the HTTP and progress threads (ints and floats
under the GIL; dictionaries are copied before they are iterated). The hot path pays a dict
lookup and two increments per row; everything else happens at the pipeline's poll points
(every 256 items or 50 ms) or at scrape time.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable

from binlog_tailer.model import TableSchema

# Kafka delivery latency histogram buckets (seconds)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# schema objects counted apart before their counts are folded by table name (a schema object
# is made per parsed table map: a server with very many tables makes new ones as it goes)
FOLD_AFTER = 4096
# one delivery in this many is timed (a power of two: the sequence number's low bits decide)
LATENCY_SAMPLE_EVERY = 64


class Latency:
    """A histogram kept as plain counts: observe() from the delivery callback, a few times
    a second at most (sampled)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: above every bucket (+Inf)
        self.total = 0.0

    def observe(self, seconds: float | None) -> None:
        if seconds is None:
            return
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it) as Prometheus wants them."""
        out, running = [], 0
        counts = list(self.counts)
        for bound, n in zip((*map(str, self.buckets), "+Inf"), counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class PipelineStats:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # rows and records by table (its schema object, one per table map) and operation:
        # {schema: {"c": [rows, records], "u": [...], "d": [...]}}
        self.by_table: dict[TableSchema, dict[str, list[int]]] = {}
        self._folded: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._fold_lock = threading.Lock()  # the fold against a scrape, never on the hot path
        self.dead_letters: dict[str, int] = {}  # reason -> count
        self.latency = Latency()
        # (records issued before the mark, commit time in ms of the newest change then)
        self._marks: deque[tuple[int, int]] = deque()
        self.oldest_commit_ms: int | None = None  # of the oldest unacknowledged record
        self.alive_at = clock()  # the loop's last sign of life
        self.caught_up = True  # nothing read is waiting for Kafka or the checkpoint
        self.caught_up_at = clock()

    def table(self, schema: TableSchema) -> dict[str, list[int]]:
        """The counters of a table seen for the first time (the hot path's miss)."""
        counters = self.by_table.get(schema)
        if counters is None:
            if len(self.by_table) >= FOLD_AFTER:
                with self._fold_lock:
                    self._folded = self._sum()
                    self.by_table.clear()  # the same object: the loop holds it
            counters = self.by_table[schema] = {"c": [0, 0], "u": [0, 0], "d": [0, 0], "r": [0, 0]}
        return counters

    def dead_letter(self, reason: str) -> None:
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1

    def mark(self, issued: int, commit_ms: int, oldest: int | None, caught_up: bool) -> None:
        """At a poll point, after delivery reports were served: `issued` records were produced
        so far, the newest from a change committed at `commit_ms` (0: none); `oldest`: the
        sequence number of the oldest record Kafka has not acknowledged (None: none)."""
        now = self._clock()
        self.alive_at = now
        marks = self._marks
        if commit_ms and (not marks or marks[-1][0] != issued):
            marks.append((issued, commit_ms))
        done = issued if oldest is None else oldest
        while marks and marks[0][0] <= done:  # every record before that mark is acknowledged
            marks.popleft()
        # The oldest unacknowledged record was produced before the first mark left: it was
        # committed at that mark's commit time or earlier (by less than one poll interval).
        self.oldest_commit_ms = marks[0][1] if marks else None
        self.caught_up = caught_up
        if caught_up:
            self.caught_up_at = now

    def touch(self) -> None:
        """The loop is alive (waiting: for the server, for room in Kafka's queue)."""
        self.alive_at = self._clock()

    def lag_seconds(self, now_ms: float) -> float:
        """Seconds from the commit of the oldest change Kafka has not acknowledged to now;
        0 when everything read is acknowledged."""
        oldest = self.oldest_commit_ms
        return 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000)

    def checkpoint_age(self) -> float:
        """Seconds since the checkpoint last caught up with what was read; 0 when it has."""
        return 0.0 if self.caught_up else max(0.0, self._clock() - self.caught_up_at)

    def table_counts(self) -> dict[tuple[str, str, str], tuple[int, int]]:
        """{(db, table, op): (rows, records)}, summed over the table's schema objects."""
        with self._fold_lock:
            return self._sum()

    def _sum(self) -> dict[tuple[str, str, str], tuple[int, int]]:
        out = dict(self._folded)
        for schema, ops in self.by_table.copy().items():
            for op, (rows, records) in ops.items():
                if op == "r" and not rows:
                    continue  # snapshot rows: only for tables a snapshot read
                key = (schema.db, schema.table, op)
                r, n = out.get(key, (0, 0))
                out[key] = (r + rows, n + records)
        return out
