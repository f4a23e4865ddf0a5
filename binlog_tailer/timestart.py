"""Where to start for a point in time: the boundary before the first transaction committed at
or after it, found from the binlog's own commit times.

Bounded reading: a binary search over the binlog files reads each probed file only up to its
first transaction; then one file (and the next ones, should the time fall past its end) is read
up to the transaction sought. Rows are never decoded: the reader captures no table.

Commit times: MySQL's GTID events carry the commit in microseconds; MariaDB's binlog has
seconds, so there every transaction of the second the time falls in is included (never one
committed after the time left out).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from binlog_tailer.errors import ConfigError
from binlog_tailer.filtering import TableFilter
from binlog_tailer.model import TxnEnd
from binlog_tailer.position import BinlogPosition
from binlog_tailer.server import binlog_files, connect
from binlog_tailer.settings import MysqlSettings
from binlog_tailer.source import BinlogSource


@dataclass(frozen=True)
class Found:
    position: BinlogPosition
    commit_ms: int | None  # the commit time of the transaction there (None: none yet, the end)
    purged: bool  # the oldest binlog left starts after the time: earlier ones are gone


def position_at(settings: MysqlSettings, when: dt.datetime) -> Found:
    when_ms = int(when.timestamp() * 1000)
    with connect(settings) as conn:
        files = binlog_files(conn)
    if not files:
        raise ConfigError("the server has no binary logs: is log_bin on?")
    # the last file whose first transaction committed before the time: it holds the boundary
    lo, hi, start = 0, len(files) - 1, -1
    while lo <= hi:
        mid = (lo + hi) // 2
        first = _first_commit_ms(settings, files[mid])
        if first is not None and first < _floor(when_ms, first):
            start, lo = mid, mid + 1
        else:
            hi = mid - 1
    found = _scan(settings, BinlogPosition(files[max(start, 0)], 4), when_ms)
    return Found(found.position, found.commit_ms, purged=start < 0)


def _floor(when_ms: int, commit_ms: int) -> int:
    """`when_ms` as precise as the binlog's commit times: whole seconds unless a commit time
    has milliseconds (MySQL)."""
    return when_ms - when_ms % 1000 if commit_ms % 1000 == 0 else when_ms


def _reader(settings: MysqlSettings, start: BinlogPosition) -> BinlogSource:
    # Short heartbeats: reaching the end of the binlog shows as an idle tick soon. A server id
    # of its own: a server ends the older of two binlog readers with the same id (the running
    # service's, for `offsets set` with a time).
    quick = settings.model_copy(
        update={"heartbeat_seconds": 0.2, "server_id": random.randint(1 << 31, (1 << 32) - 1)}
    )
    return BinlogSource(quick, start, TableFilter((), ()))


def _first_commit_ms(settings: MysqlSettings, file: str) -> int | None:
    """The commit time of the first transaction from the start of `file` (None: none yet)."""
    source = _reader(settings, BinlogPosition(file, 4))
    try:
        for item in source:
            if item is None:  # idle: the end of the binlog
                return None
            if isinstance(item, TxnEnd) and source.last_commit_ms:
                return source.last_commit_ms
    finally:
        source.close()
    return None


def _scan(settings: MysqlSettings, start: BinlogPosition, when_ms: int) -> Found:
    """The boundary before the first transaction from `start` committed at or after `when_ms`
    (the end of the binlog when there is none)."""
    source = _reader(settings, start)
    before = start
    try:
        for item in source:
            if item is None:
                return Found(before, None, False)
            if isinstance(item, TxnEnd):
                commit = source.last_commit_ms
                if commit and commit >= _floor(when_ms, commit):
                    return Found(before, commit, False)
                before = item.position
    finally:
        source.close()
    return Found(before, None, False)


def describe(when: dt.datetime, found: Found) -> str:
    """One line on the position chosen for `when`."""
    at = f"{found.position.file}:{found.position.pos}"
    if found.commit_ms is None:
        return (
            f"no transaction committed at or after {when.isoformat()} yet: starting at the end"
            f" of the binlog, {at}"
        )
    committed = dt.datetime.fromtimestamp(found.commit_ms / 1000, dt.UTC).isoformat()
    line = (
        f"{when.isoformat()}: the first transaction committed at or after it is at {at}"
        f" (committed {committed})"
    )
    if found.purged:
        line += (
            "; the oldest binlog left starts after that time: anything committed before it is"
            " no longer on the server"
        )
    return line
