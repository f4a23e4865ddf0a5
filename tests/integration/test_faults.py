"""Stop, crash and connection loss under continuous writes: nothing committed is lost."""

import collections
import contextlib
import json
import random

import pytest

from tests.integration.stack import Stack, consume, topic_sizes, wait_until
from tests.integration.tailer import Tailer, master_position
from tests.integration.writer import Writer


def _ids_and_sources(stack: Stack, topic: str):
    """Every record of the topic (all acknowledged: the checkpoint passed the end)."""
    size = topic_sizes(stack.kafka_bootstrap, [topic])[topic]
    msgs = consume(stack.kafka_bootstrap, [topic], expect=size, timeout=60)
    assert len(msgs) == size
    out = []
    for m in msgs:
        v = json.loads(m.value())
        out.append((v["after"]["id"], (v["source"]["file"], v["source"]["pos"])))
    return out


def _under_load(stack: Stack, database: str, tailer: Tailer, **writer_options) -> Writer:
    """The tailer streaming while a Writer inserts continuously into a fresh `events` table."""
    Writer.create_table(stack, database)
    tailer.start()
    writer = Writer(stack, database, **writer_options)
    writer.start()
    return writer


def _finish(stack: Stack, tailer: Tailer, writer: Writer) -> list[int]:
    committed = writer.finish()
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=120)
    assert tailer.stop() == 0, tailer.log()
    return committed


def test_clean_stop_and_restart_under_load_loses_and_duplicates_nothing(
    stack: Stack, database: str, tailer: Tailer
):
    writer = _under_load(stack, database, tailer, max_rows=6000)
    for round_ in range(3):
        writer.wait_rows(1000 * (round_ + 1))
        assert tailer.stop() == 0, tailer.log()
        tailer.start()
    committed = _finish(stack, tailer, writer)

    got = _ids_and_sources(stack, tailer.topic(database, "events"))
    ids = [i for i, _ in got]
    assert sorted(ids) == committed  # every committed row, once
    assert ids == sorted(ids)  # one partition: commit order kept across restarts


def test_kill_9_at_random_moments_loses_nothing(stack: Stack, database: str, tailer: Tailer):
    writer = _under_load(stack, database, tailer, max_rows=12_000, pause=0.002)
    rng = random.Random(42)
    checkpoints_at_restart = []
    for target in sorted(rng.sample(range(500, 10_000), 4)):
        writer.wait_rows(target)
        tailer.kill()
        checkpoints_at_restart.append(tailer.stored_position())
        tailer.start()
    committed = _finish(stack, tailer, writer)

    got = _ids_and_sources(stack, tailer.topic(database, "events"))
    counts = collections.Counter(i for i, _ in got)
    assert set(counts) == set(committed), "a committed row is missing"
    duplicates = {i: c for i, c in counts.items() if c > 1}
    total = sum(c - 1 for c in duplicates.values())
    print(f"kill -9 x4: {len(committed)} rows committed, {total} duplicate records")
    # A duplicate is only ever a row at or after the checkpoint the restart resumed from.
    resumed_from = [(p["file"], p["pos"]) for p in checkpoints_at_restart if p]
    for i, source in got:
        if i in duplicates:
            assert any(source >= r for r in resumed_from), (i, source, resumed_from)
    assert all(c <= 1 + len(checkpoints_at_restart) for c in counts.values())


def test_lost_mysql_connection_resumes_without_loss_or_replay(
    stack: Stack, database: str, tailer: Tailer
):
    writer = _under_load(stack, database, tailer, max_rows=8000)
    killed = 0
    for target in (1500, 3000, 4500):
        writer.wait_rows(target)
        killed += _kill_binlog_dump_connections(stack, tailer)
    assert killed >= 3
    committed = _finish(stack, tailer, writer)

    log = tailer.log()
    assert log.count("lost the replication connection") + log.count("MySQL unavailable") >= 3, log
    got = _ids_and_sources(stack, tailer.topic(database, "events"))
    ids = [i for i, _ in got]
    assert sorted(ids) == committed  # nothing lost, nothing replayed
    assert ids == sorted(ids)


def _kill_binlog_dump_connections(stack: Stack, tailer: Tailer) -> int:
    """Kill this service's replication connection (other workers' services share the server)."""
    with stack.admin() as conn, conn.cursor() as cur:

        def dump_threads():
            ports = tailer.local_ports()
            cur.execute(
                "SELECT ID, HOST FROM information_schema.PROCESSLIST"
                " WHERE COMMAND LIKE 'Binlog Dump%'"
            )
            return [i for i, host in cur.fetchall() if int(host.rsplit(":", 1)[1]) in ports]

        wait_until(lambda: bool(dump_threads()), 30, "the service's replication connection")
        ids = dump_threads()
        for thread_id in ids:
            cur.execute(f"KILL CONNECTION {int(thread_id)}")
        return len(ids)


def test_connection_lost_before_the_first_commit_after_a_gtid_start_replays_nothing(
    stack: Stack, database: str, tailer: Tailer
):
    """The server's first rotate after a start by GTID names a file to scan, not a boundary:
    reopening there would replay that file and move the checkpoint backwards. Nor is a MariaDB
    binlog checkpoint event, which the server sends while skipping up to the start: a fresh
    file has one before the start."""
    Writer.create_table(stack, database)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("INSERT INTO events VALUES (1, 'before the start')")
    _, _, gtid = master_position(stack)
    tailer.start("--from", gtid)
    assert _kill_binlog_dump_connections(stack, tailer) >= 1  # before any commit after the start
    # lost while streaming, or while still opening (the first packet not yet read)
    lost = ("lost the replication connection", "MySQL unavailable")
    wait_until(lambda: any(m in tailer.log() for m in lost), 30, "the loss")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO events VALUES (2, 'after the start')")
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()
    got = _ids_and_sources(stack, tailer.topic(database, "events"))
    assert [i for i, _ in got] == [2]


def test_a_first_run_stopped_at_once_keeps_its_start_and_loses_nothing(
    stack: Stack, database: str, tailer: Tailer
):
    """A first run resolves initial_position=latest; stopped before its first checkpoint, it
    must still have stored that start, or the next run's 'latest' skips what came between."""
    Writer.create_table(stack, database)
    tailer.start()
    assert tailer.stop() == 0, tailer.log()
    assert tailer.stored_position() is not None
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO events VALUES (1, 'between the runs')")
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO events VALUES (2, 'during the second run')")
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()
    assert [i for i, _ in _ids_and_sources(stack, tailer.topic(database, "events"))] == [1, 2]


@pytest.mark.changes_server_globals
def test_too_many_connections_is_waited_out_within_the_reconnect_timeout(
    stack: Stack, database: str, tailer: Tailer
):
    """A server refusing connections for a while (error 1040) is retried, never a stop."""
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("SELECT @@GLOBAL.max_connections")
        (original,) = cur.fetchone()
        file, pos, _ = master_position(stack)
        with contextlib.ExitStack() as fillers:
            try:
                cur.execute("SET GLOBAL max_connections = 1")  # MariaDB's least is 10
                cur.execute("SELECT @@GLOBAL.max_connections, (SELECT COUNT(*)"
                            " FROM information_schema.PROCESSLIST)")  # fmt: skip
                limit, connected = cur.fetchone()
                for _ in range(limit - connected):  # admins may pass the limit, others not
                    fillers.enter_context(stack.admin())
                tailer.start("--from", f"{file}:{pos}")
                wait_until(
                    lambda: "Too many connections); retrying" in tailer.log(),
                    30,
                    "the stream's connection refused and retried",
                )
                cur.execute("INSERT INTO t VALUES (1)")
            finally:
                cur.execute(f"SET GLOBAL max_connections = {int(original)}")
    end_file, end_pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(end_file, end_pos)
    assert tailer.stop() == 0, tailer.log()
    assert "Traceback" not in tailer.log()
    assert [i for i, _ in _ids_and_sources(stack, tailer.topic(database, "t"))] == [1]
