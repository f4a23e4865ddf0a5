"""The hot path alone, replayed: CPU microseconds per row, stage by stage, without the noise
of a server streaming and a machine shared with it.

It loads outbox rows (or a data table's rows, ``--table data|wide``) into the local server,
captures the binlog packets the server sends for them once, then runs the real wiring
(``service.build``: source, snapshot interleaver, mapper, publisher, checkpoint store) over the
captured packets, in stages:

- ``decode``: the binlog source alone (event framing, checksums, row decoding);
- ``map``: the source and the mapper (records built, nothing sent);
- ``mapper``: the mapper alone, over rows decoded before the clock starts;
- ``full``: the whole pipeline, publishing to the local Kafka and checkpointing to a file.

Each stage reports rows/s, the process's CPU seconds (librdkafka's threads included), the main
thread's CPU seconds, and both per row. Run it under py-spy for a profile of one stage:

    py-spy record -r 500 -f raw -o /tmp/hot.txt -- python -m benchmarks.hotpath --stages full

Environment: the stack's ``.stack/<server>.env`` (``scripts/dev-up`` writes it).
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.bench import Env, is_mariadb, load, load_table, master_position
from binlog_tailer import service
from binlog_tailer.binlog.protocol import BinlogConnection
from binlog_tailer.checkpoint.file import FileCheckpointStore
from binlog_tailer.mapping.router import RoutingMapper
from binlog_tailer.model import RowChange
from binlog_tailer.outbox import outbox_ddl
from binlog_tailer.position import BinlogPosition
from binlog_tailer.server import connection_kwargs
from binlog_tailer.settings import Settings, load_settings
from binlog_tailer.source import BinlogSource

HEARTBEAT = 27


def capture(
    env: Env, settings: Settings, start: BinlogPosition, end: tuple[str, int]
) -> list[bytes]:
    """The packets the server streams from `start` up to the event ending at `end`."""
    conn = BinlogConnection(connection_kwargs(settings.mysql), 7999, 1.0, is_mariadb(env))
    conn.open(start)
    packets: list[bytes] = []
    file = start.file
    try:
        while True:
            data = conn.read()
            packets.append(data)
            etype = data[5]
            if etype == 4:  # rotate: its own end position is in the file before
                file = data[28 : len(data) - conn.checksum].decode()
                continue
            next_pos = int.from_bytes(data[14:18], "little")
            if file == end[0] and next_pos >= end[1]:
                return packets
    finally:
        conn.close()


class Replay:
    """A BinlogConnection that hands out captured packets, then a heartbeat after asking the
    source to stop (the stream then ends at the boundary after the last transaction)."""

    def __init__(self, packets: list[bytes], source: BinlogSource, checksum: int) -> None:
        self._it = iter(packets)
        self._source = source
        self.checksum = checksum

    def read(self) -> bytes:
        data = next(self._it, None)
        if data is None:
            self._source.stop()
            return heartbeat(self.checksum)
        return data

    def close(self) -> None:
        pass


def heartbeat(checksum: int) -> bytes:
    """A server heartbeat packet (no next position), with its checksum when events have one."""
    body = struct.pack("<IBIIIH", 0, HEARTBEAT, 1, 19 + checksum, 0, 0)
    return b"\0" + body + (struct.pack("<I", zlib.crc32(body)) if checksum else b"")


def replaying(source: BinlogSource, packets: list[bytes], checksum: int) -> None:
    """Make `source` read `packets` instead of a server."""

    def _open() -> None:
        if source._meta_conn is None:
            from binlog_tailer.binlog.charsets import Charsets
            from binlog_tailer.server import collation_charsets, connect, server_info

            source._meta_conn = connect(source.settings)
            source.is_mariadb = server_info(source._meta_conn).is_mariadb
            source._charsets = Charsets(collation_charsets(source._meta_conn))
        source._reset_txn()
        source._file = source._resume.file
        source._gtid_state = source._resume.gtid
        source._by_id.clear()
        source._conn = Replay(packets, source, checksum)  # type: ignore[assignment]
        source._first = source._conn.read()
        source.streaming = True

    source._open = _open  # type: ignore[method-assign]


def cpu() -> tuple[float, float, float]:
    return time.perf_counter(), time.process_time(), time.thread_time()


def report(stage: str, rows: int, before: tuple[float, float, float]) -> dict[str, Any]:
    wall, proc, main = (b - a for a, b in zip(before, cpu(), strict=True))
    figures = {
        "stage": stage,
        "rows": rows,
        "rows_per_s": rows / wall,
        "cpu_s": proc,
        "main_cpu_s": main,
        "cpu_us_per_row": proc / rows * 1e6,
        "main_us_per_row": main / rows * 1e6,
    }
    print(
        f"{stage:8} {rows:>9,} rows {rows / wall:>10,.0f} rows/s   CPU {proc:6.2f} s"
        f" ({proc / rows * 1e6:5.1f} us/row)   main thread {main:6.2f} s"
        f" ({main / rows * 1e6:5.1f} us/row)",
        flush=True,
    )
    return figures


def rows_of(items: Iterator[Any]) -> int:
    return sum(1 for item in items if isinstance(item, RowChange))


def run_stage(
    stage: str, settings: Settings, start: BinlogPosition, packets: list[bytes], checksum: int
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hotpath-"))
    store = FileCheckpointStore(workdir / "offsets.json")
    pipeline, source = service.build(settings, start, store)
    replaying(source, packets, checksum)
    items = pipeline.source
    before = cpu()
    if stage == "decode":
        rows = rows_of(iter(items))
    elif stage == "mapper":
        changes = [item for item in items if isinstance(item, RowChange)]
        map_row = pipeline.mapper.map
        before = cpu()
        for change in changes:
            map_row(change)
        rows = len(changes)
    elif stage == "map":
        mapper: RoutingMapper = pipeline.mapper  # type: ignore[assignment]
        rows = 0
        for item in items:
            if isinstance(item, RowChange):
                rows += 1
                mapper.map(item)
    else:
        pipeline.run()
        rows = pipeline.rows
    figures = report(stage, rows, before)
    source.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--per-txn", type=int, default=1)
    p.add_argument(
        "--table",
        default="outbox",
        choices=["outbox", "data", "wide"],
        help="outbox rows, or a data table of the bench's (published with the envelope)",
    )
    p.add_argument("--stages", default="decode,map,full")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs of each stage (the fastest is the figure)"
    )
    args = p.parse_args(argv)
    env = Env()
    db = f"hotpath_{uuid.uuid4().hex[:6]}"
    with env.admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        if args.table == "outbox":
            cur.execute(outbox_ddl())
    file, pos = master_position(env)
    if args.table == "outbox":
        load(env, db, args.rows, args.per_txn)
        captured: dict[str, Any] = {
            "outbox": {"tables": [f"{db}.outbox"], "topic_template": f"{db}.{{aggregate_type}}"}
        }
    else:
        load_table(env, db, args.table, args.rows, args.per_txn)
        captured = {"capture": {"include": [f"{db}.t"], "topic_prefix": "hotpath"}}
    end = master_position(env)
    start = BinlogPosition(file, pos)
    settings = load_settings(
        **captured,
        log_level="WARNING",
        http={"enabled": False},
        snapshot={"signal_topic": ""},
    )
    packets = capture(env, settings, start, end)
    checksum = 4 if any(p[5] == 15 and p[-5] == 1 for p in packets[:3]) else 0
    print(
        f"{args.rows:,} rows, {args.per_txn} per transaction: {len(packets):,} binlog events,"
        f" {sum(map(len, packets)) / 1e6:.1f} MB",
        flush=True,
    )
    best = {}
    for _ in range(args.repeat):
        for stage in args.stages.split(","):
            figures = run_stage(stage, settings, start, packets, checksum)
            if stage not in best or figures["cpu_s"] < best[stage]["cpu_s"]:
                best[stage] = figures
    print("fastest of each stage:")
    for figures in best.values():
        print(
            f"  {figures['stage']:8} {figures['rows_per_s']:>10,.0f} rows/s"
            f"  {figures['cpu_us_per_row']:5.1f} CPU us/row"
            f"  ({figures['main_us_per_row']:5.1f} in the main thread)"
        )
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "MainThread"
    sys.exit(main())
