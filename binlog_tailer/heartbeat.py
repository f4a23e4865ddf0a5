"""Heartbeat records (`heartbeat.interval_seconds`): while no record is published for an
interval (the captured tables are idle), one record on the heartbeat topic, so that a consumer
sees that the connector is alive and how far it has read:

    key   {"server": "<name>"}
    value {"ts_ms": <now>, "position": {"file", "pos", "gtid"}}

The position is the last transaction boundary read (it moves while other tables change). A
heartbeat is a record like any other for the acknowledgements (a checkpoint after it waits for
it), but it never registers a position: what is stored stays a boundary whose records Kafka
acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from binlog_tailer.mapping.encode import dumps
from binlog_tailer.model import Record
from binlog_tailer.position import BinlogPosition


class Heartbeats:
    def __init__(
        self,
        topic: str,
        name: str,
        interval: float,
        start: BinlogPosition,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic = topic
        self.interval = interval
        self.position = start  # the last boundary read (kept by the pipeline)
        self._key = dumps({"server": name})
        self._wall = wall_clock
        self._records = -1  # the records published when last looked at
        self._since = 0.0  # when that count last changed (or the last heartbeat)
        self.sent = 0

    def tick(self, records: int, now: float) -> Record | None:
        """A heartbeat when no record was published for an interval (`records`: how many were
        published so far; `now`: monotonic time), else None."""
        if records != self._records:
            self._records, self._since = records, now
            return None
        if now - self._since < self.interval:
            return None
        self._records, self._since = records + 1, now  # the heartbeat itself is counted
        self.sent += 1
        return self.record()

    def record(self) -> Record:
        p = self.position
        ts_ms = int(self._wall() * 1000)
        value = {
            "ts_ms": ts_ms,
            "position": {"file": p.file, "pos": p.pos, "gtid": str(p.gtid) if p.gtid else None},
        }
        return Record(self.topic, self._key, dumps(value), timestamp_ms=ts_ms)
