"""Snapshots on real servers: the topic, rebuilt as the last record per key, equals the table,
row for row, after a snapshot taken while a writer updates, deletes and inserts rows - also
through kill -9 at random moments, and after the stored position was purged."""

from __future__ import annotations

import json
import random
import re
import threading

import pytest

from tests.integration.stack import Stack, consume, topic_sizes, wait_until
from tests.integration.tailer import Tailer, master_position

ROWS = 200_000


class Churn(threading.Thread):
    """Updates, deletes and inserts random rows of `items`, 1-3 per transaction."""

    def __init__(self, stack: Stack, database: str, first_new_id: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.stack, self.database = stack, database
        self.next_id, self.rng = first_new_id, random.Random(seed)
        self.stop_event = threading.Event()
        self.transactions = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = self.rng
        try:
            with self.stack.admin(self.database) as conn, conn.cursor() as cur:
                while not self.stop_event.is_set():
                    conn.begin()
                    for _ in range(rng.randint(1, 3)):
                        op, target = rng.random(), rng.randint(1, self.next_id)
                        if op < 0.5:
                            cur.execute("UPDATE items SET v = v + 1 WHERE id = %s", (target,))
                        elif op < 0.75:
                            cur.execute("DELETE FROM items WHERE id = %s", (target,))
                        else:
                            cur.execute(
                                "INSERT INTO items VALUES (%s, 0, %s)",
                                (self.next_id, f"new {self.next_id}"),
                            )
                            self.next_id += 1
                    if rng.random() < 0.1:
                        conn.rollback()  # never published
                    else:
                        conn.commit()
                    self.transactions += 1
                    self.stop_event.wait(0.002)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.stop_event.set()
        self.join(60)
        if self.error is not None:
            raise self.error


def load(stack: Stack, database: str, rows: int) -> None:
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))")
        for start in range(1, rows + 1, 5000):
            batch = [(i, i % 97, f"row {i}") for i in range(start, min(start + 5000, rows + 1))]
            cur.executemany("INSERT INTO items VALUES (%s, %s, %s)", batch)


def table_state(stack: Stack, database: str) -> dict[int, dict]:
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v, note FROM items")
        return {i: {"id": i, "v": v, "note": n} for i, v, n in cur.fetchall()}


def topic_state(stack: Stack, topic: str) -> tuple[dict[int, dict], list[tuple[int, str]]]:
    """(the last state per key, every (id, op) in topic order)."""
    size = topic_sizes(stack.kafka_bootstrap, [topic])[topic]
    msgs = consume(stack.kafka_bootstrap, [topic], expect=size, timeout=120)
    assert len(msgs) == size
    state: dict[int, dict] = {}
    ops = []
    for m in msgs:
        if m.value() is None:
            continue
        key = json.loads(m.key())["id"]
        value = json.loads(m.value())
        ops.append((key, value["op"]))
        if value["op"] == "d":
            state.pop(key, None)
        else:
            state[key] = value["after"]
    return state, ops


def caught_up(stack: Stack, tailer: Tailer) -> None:
    file, pos, _ = master_position(stack)
    try:
        tailer.wait_checkpoint_at_least(file, pos, timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the service's log:\n{tailer.log()[-5000:]}") from None


def snapshot_done(tailer: Tailer) -> bool:
    return "every table read" in tailer.log()


def snapshot_env(tailer: Tailer, mode: str = "initial", chunk: int = 1000) -> None:
    tailer.env["BINLOG_TAILER_SNAPSHOT__MODE"] = mode
    tailer.env["BINLOG_TAILER_SNAPSHOT__CHUNK_SIZE"] = str(chunk)


def test_initial_snapshot_with_a_writer_equals_the_table(
    stack: Stack, database: str, tailer: Tailer
):
    load(stack, database, ROWS)
    snapshot_env(tailer)
    churn = Churn(stack, database, ROWS + 1, seed=1)
    churn.start()
    tailer.start()
    wait_until(lambda: snapshot_done(tailer) or tailer.proc.poll() is not None, 300, "snapshot")
    churn.finish()
    assert snapshot_done(tailer), tailer.log()
    caught_up(stack, tailer)
    assert tailer.stop() == 0, tailer.log()
    state, ops = topic_state(stack, tailer.topic(database, "items"))
    expected = table_state(stack, database)
    assert len(expected) > ROWS * 0.9 and churn.transactions > 100
    assert state == expected
    snapshot_rows = sum(1 for _, op in ops if op == "r")
    assert ROWS * 0.9 < snapshot_rows <= ROWS + churn.next_id - ROWS
    # the stored position has no snapshot left: a restart streams on
    assert "snapshot" not in tailer.stored_position()


def test_snapshot_resumes_after_kill_9_at_chunk_granularity(
    stack: Stack, database: str, tailer: Tailer
):
    load(stack, database, ROWS)
    snapshot_env(tailer)
    churn = Churn(stack, database, ROWS + 1, seed=2)
    churn.start()
    rng = random.Random(3)
    kills = 0
    tailer.start()
    while kills < 5:
        progress = (tailer.stored_position() or {}).get("snapshot") or {}
        target = progress.get("rows", 0) + rng.randint(5_000, 25_000)

        def moved(target: int = target) -> bool:
            snap = (tailer.stored_position() or {}).get("snapshot")
            return snap is None or snap["rows"] >= target or tailer.proc.poll() is not None

        wait_until(moved, 120, "snapshot progress")
        if (tailer.stored_position() or {}).get("snapshot") is None:
            break  # finished before the fifth kill
        tailer.kill()
        kills += 1
        resumed = tailer.stored_position()["snapshot"]
        tailer.start()
        assert "snapshot of" in tailer.log() and "after key" in tailer.log(), tailer.log()
        assert resumed["after"] is not None
    assert kills >= 4, f"the snapshot ended after {kills} kills"
    wait_until(lambda: snapshot_done(tailer) or tailer.proc.poll() is not None, 300, "snapshot")
    churn.finish()
    assert snapshot_done(tailer), tailer.log()
    caught_up(stack, tailer)
    assert tailer.stop() == 0, tailer.log()
    state, ops = topic_state(stack, tailer.topic(database, "items"))
    assert state == table_state(stack, database)
    snapshot_ops = [i for i, op in ops if op == "r"]
    twice = len(snapshot_ops) - len(set(snapshot_ops))
    print(f"kill -9 x{kills}: {twice} snapshot rows read twice (~{twice / 1000:.1f} chunks)")
    assert twice <= kills * 1000 * 3  # what was in flight at each kill, not the table


@pytest.mark.purges_binlogs
def test_when_needed_reads_the_tables_again_when_the_position_was_purged(
    stack: Stack, database: str, tailer: Tailer
):
    load(stack, database, 20_000)
    snapshot_env(tailer, "when_needed")
    tailer.start()
    wait_until(lambda: snapshot_done(tailer), 120, "the first snapshot")
    caught_up(stack, tailer)
    assert tailer.stop() == 0, tailer.log()
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("UPDATE items SET v = v + 1000 WHERE id % 7 = 0")
        cur.execute("INSERT INTO items VALUES (50001, 1, 'while away')")
    gone = purge_all_but_current(stack)
    assert tailer.cli("offsets", "set", f"{gone}:4").returncode == 0
    # without when_needed a purged position is refused, naming the way out
    for mode in ("never", "initial"):
        tailer.env["BINLOG_TAILER_SNAPSHOT__MODE"] = mode
        r = tailer.cli("run")
        assert r.returncode == 1 and "snapshot.mode = when_needed" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    tailer.env["BINLOG_TAILER_SNAPSHOT__MODE"] = "when_needed"
    tailer.start()
    wait_until(lambda: tailer.log().count("every table read") >= 1, 120, "the second snapshot")
    assert "THE STORED POSITION" in tailer.log() and "IS GONE" in tailer.log()
    caught_up(stack, tailer)
    assert tailer.stop() == 0, tailer.log()
    state, _ = topic_state(stack, tailer.topic(database, "items"))
    assert state == table_state(stack, database)


def purge_all_but_current(stack: Stack) -> str:
    """FLUSH, then purge every binlog file but the current one: the name of a purged file."""
    first, _, _ = master_position(stack)
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        current = stack.current_binlog()

        def purged() -> bool:
            # a file still read by a dump thread is kept: purge again once it is gone
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            return first not in [row[0] for row in cur.fetchall()]

        wait_until(purged, 60, f"{first} to be purged")
    return first


def test_on_demand_snapshot_of_a_running_service_with_status_and_stop(
    stack: Stack, database: str, tailer: Tailer
):
    load(stack, database, 50_000)
    tailer.env["BINLOG_TAILER_SNAPSHOT__CHUNK_SIZE"] = "200"
    churn = Churn(stack, database, 50_001, seed=4)
    tailer.start()
    churn.start()
    assert "no snapshot running" in tailer.cli("snapshot", "status").stdout
    # a stop while none runs, then a snapshot of only some rows
    asked = tailer.cli("snapshot", f"{database}.items", "--where", "id <= 1000")
    assert asked.returncode == 0 and "requested the snapshot" in asked.stdout, asked.stderr
    wait_until(lambda: snapshot_done(tailer), 60, "the partial snapshot")
    code, metrics = tailer.http_get("/metrics")
    read = re.search(r"^binlog_tailer_snapshot_rows_read_total (\S+)$", metrics, re.M)
    assert code == 200 and read and 900 < float(read.group(1)) <= 1000, metrics
    assert "binlog_tailer_snapshot_running 0.0" in metrics
    # the whole table, stopped on the way, then asked again
    stop_a_running_snapshot(tailer, f"{database}.items")
    wait_until(lambda: not snapshot_running(tailer), 60, "status to show none")
    done_before = tailer.log().count("every table read")
    assert tailer.cli("snapshot", f"{database}.items").returncode == 0
    wait_until(lambda: tailer.log().count("every table read") > done_before, 120, "snapshot")
    churn.finish()
    caught_up(stack, tailer)
    assert tailer.stop() == 0, tailer.log()
    state, ops = topic_state(stack, tailer.topic(database, "items"))
    assert state == table_state(stack, database)
    snapshot_ids = [i for i, op in ops if op == "r"]
    # the --where snapshot came first, alone: the rows read until the next one starts over
    again = next(n for n in range(1, len(snapshot_ids)) if snapshot_ids[n] <= snapshot_ids[n - 1])
    partial = snapshot_ids[:again]
    assert len(partial) > 900 and max(partial) <= 1000
    # each signal is applied once: a restart starts no snapshot
    requested = tailer.log().count("requested")
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("UPDATE items SET v = v + 1 WHERE id = 1")  # something to checkpoint
    caught_up(stack, tailer)
    assert tailer.stop() == 0
    assert tailer.log().count("requested") == 0 and requested >= 3


def snapshot_running(tailer: Tailer) -> bool:
    return "running: snapshot of" in tailer.cli("snapshot", "status").stdout


def stop_a_running_snapshot(tailer: Tailer, table: str, attempts: int = 5) -> None:
    """Ask for a snapshot of `table`, and stop it once status shows it running. A snapshot can
    end before a stop reaches it (50,000 rows take seconds, two commands about one): then the
    stop finds none running, and the pair is tried again."""
    missed = []
    for _ in range(attempts):
        outcome = _snapshot_then_stop(tailer, table)
        if "snapshot stopped" in outcome:
            return
        assert "no snapshot is running" in outcome, outcome
        missed.append(outcome)
    raise AssertionError(f"no stop reached a running snapshot: {missed}")


def _snapshot_then_stop(tailer: Tailer, table: str) -> str:
    """The log line of the stop's outcome; returns once the snapshot stopped or ended."""
    done_before = tailer.log().count("every table read")

    def ended() -> bool:
        return tailer.log().count("every table read") > done_before

    assert tailer.cli("snapshot", table).returncode == 0
    wait_until(lambda: snapshot_running(tailer) or ended(), 60, "status to show the snapshot")
    stop = tailer.cli("snapshot", "stop")
    found = re.search(r"\(signal (\w+),", stop.stdout)
    assert stop.returncode == 0 and found, stop.stderr
    applied = f"signal {found.group(1)}: "
    wait_until(lambda: applied in tailer.log(), 60, "the stop to be applied")
    outcome = next(line for line in tailer.log().splitlines() if applied in line)
    if "snapshot stopped" not in outcome:
        wait_until(ended, 60, "the snapshot's end")
    return outcome


def test_snapshot_requests_that_cannot_be_read_are_one_clear_line(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE nokey (a INT, b INT)")
    cases = [
        (("snapshot", f"{database}.nokey"), "snapshot.keys"),
        (("snapshot", f"{database}.missing"), "does not exist"),
        (("snapshot", "elsewhere.t"), "not captured"),
        (("snapshot", "nodot"), "db.table"),
        (("snapshot", f"{database}.nokey", "--where", "a >"), "snapshot.keys"),
    ]
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE keyed (id INT PRIMARY KEY)")
    cases.append((("snapshot", f"{database}.keyed", "--where", "nope > 1"), "snapshot --where"))
    for args, words in cases:
        r = tailer.cli(*args)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    tailer.env["BINLOG_TAILER_SNAPSHOT__SIGNAL_TOPIC"] = ""
    r = tailer.cli("snapshot", f"{database}.nokey")
    assert r.returncode == 2 and "on-demand snapshots are off" in r.stderr, r.stderr
