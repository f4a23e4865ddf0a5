"""Binlog files that differ from one another in how they were written."""

import json

import pytest

from tests.integration.stack import Stack, consume
from tests.integration.tailer import Tailer, master_position


@pytest.mark.changes_server_globals
def test_files_written_with_and_without_checksums_are_read_live_and_replayed_exactly(
    stack: Stack, database: str, tailer: Tailer
):
    """Each file's format description event says whether its events carry a CRC32: a file
    written with binlog_checksum=NONE between two CRC32 files is read exactly, live and again
    from an earlier position."""
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))")
        cur.execute("SELECT @@GLOBAL.binlog_checksum")
        (original,) = cur.fetchone()
    begin_file, begin_pos, _ = master_position(stack)
    tailer.start()
    expected = []
    with stack.admin(database) as conn, conn.cursor() as cur:
        try:
            for setting, ids in (("NONE", (1, 2, 3)), ("CRC32", (4, 5, 6))):
                cur.execute(f"SET GLOBAL binlog_checksum = {setting}")  # starts a new file
                conn.begin()
                for i in ids[:2]:
                    cur.execute("INSERT INTO t VALUES (%s, %s)", (i, f"{setting} {i}"))
                conn.commit()
                cur.execute("INSERT INTO t VALUES (%s, %s)", (ids[2], f"{setting} {ids[2]}"))
                expected += [(i, f"{setting} {i}") for i in ids]
        finally:
            cur.execute(f"SET GLOBAL binlog_checksum = {original}")
        cur.execute("INSERT INTO t VALUES (7, 'after')")  # a boundary past every switch
        expected.append((7, "after"))
    assert master_position(stack)[0] != begin_file  # the switches rotated the binlog

    def published() -> list[tuple[int, str]]:
        msgs = consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=len(expected))
        return [(v["after"]["id"], v["after"]["v"]) for v in (json.loads(m.value()) for m in msgs)]

    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=120)  # a loaded server (500k-row tests)
    assert tailer.stop() == 0, tailer.log()
    assert published() == expected
    assert "checksum" not in tailer.log()  # no event was taken for a damaged one

    tailer.topic_prefix += "_again"
    tailer.env["BINLOG_TAILER_CAPTURE__TOPIC_PREFIX"] = tailer.topic_prefix
    tailer.start("--from", f"{begin_file}:{begin_pos}")
    tailer.wait_checkpoint_at_least(file, pos, timeout=120)  # a loaded server (500k-row tests)
    assert tailer.stop() == 0, tailer.log()
    assert published() == expected
    assert "checksum" not in tailer.log()
