"""Exactly-once delivery (delivery=exactly_once) with the real service, broker and servers.

What a read_committed consumer sees must be every committed row exactly once, in commit order,
whatever happens to the service: a newer instance fencing a paused one, kill -9 or a clean stop
in the middle of a MySQL transaction split over Kafka transactions, a bad row under
dead_letter.mode=stop.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from binlog_tailer.outbox import write_event
from tests.integration.stack import SERVERS, Stack, set_producer_quota, unique_name, wait_until
from tests.integration.tailer import Tailer, master_position
from tests.integration.writer import Writer


@pytest.fixture
def offsets_topic(kafka_admin: AdminClient) -> Iterator[str]:
    """A name for a fresh offsets topic (the store creates it); deleted afterwards."""
    name = unique_name("offsets")
    yield name
    for f in kafka_admin.delete_topics([name], operation_timeout=30).values():
        with contextlib.suppress(KafkaException):  # never created
            f.result(timeout=30)


def _eos(tailer: Tailer, offsets_topic: str, **env: str) -> Tailer:
    tailer.use_kafka_store(offsets_topic)
    tailer.env["BINLOG_TAILER_DELIVERY"] = "exactly_once"
    tailer.env.update(env)
    return tailer


def _read(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[bytes]:
    """The value of every record of `topic`, in order, read from the beginning to the end of
    every partition: the high watermark (read_uncommitted), or the last stable offset
    (read_committed: up to the first open transaction, aborted records skipped)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("eos"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.max.bytes": 50 * 1024 * 1024,
        }
    )
    out: list[bytes] = []
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        if meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return []  # nothing published to it yet
        assert meta.error is None, f"topic {topic}: {meta.error}"
        partitions = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        at_end: set[int] = set()
        deadline = time.monotonic() + 120
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"{topic} not read to its end in 120 s"
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is None:
                    out.append(msg.value())
                    at_end.discard(msg.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                else:
                    raise AssertionError(f"consumer error: {err}")
    finally:
        consumer.close()
    return out


def _ids(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[int]:
    return [json.loads(v)["after"]["id"] for v in _read(bootstrap, topic, isolation)]


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def _stored(tailer: Tailer) -> dict:
    """The committed position (a commit's markers reach the partition a moment after it
    returns: a position committed at start-up is awaited)."""
    found: list[dict] = []

    def committed() -> bool:
        p = tailer.stored_position()
        found[:] = [p] if p is not None and p["file"] is not None else []
        return bool(found)

    wait_until(committed, 30, "a committed position")
    return found[0]


def _finish(stack: Stack, tailer: Tailer, timeout: float = 120) -> None:
    """Wait until the running service has committed the server's end of binlog, then stop it.
    (Not `wait_checkpoint_at_least`: a restart at the end commits nothing new, so its
    position keeps the time of the run before.)"""
    file, pos, _ = master_position(stack)
    wait_until(
        lambda: (_stored(tailer)["file"], _stored(tailer)["pos"]) >= (file, pos),
        timeout,
        f"the committed position to reach {file}:{pos}",
    )
    assert tailer.stop() == 0, tailer.log()[-5000:]


def _clean(log: str) -> None:
    assert "Traceback" not in log, log[-5000:]


# -- 1. a newer instance fences a paused one


def _open_transaction_ids(bootstrap: str, topic: str) -> set[int]:
    """Ids sent to the broker but not visible read_committed: the records of an open Kafka
    transaction (nothing was aborted yet)."""
    uncommitted = _ids(bootstrap, topic, "read_uncommitted")
    committed = set(_ids(bootstrap, topic))
    return set(uncommitted) - committed


def test_a_newer_instance_fences_a_paused_one_which_exits_and_nothing_is_duplicated(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str, tmp_path: Path
):
    a = _eos(tailer, offsets_topic)
    (tmp_path / "b").mkdir()
    b = Tailer(stack, tmp_path / "b", database)
    b.env.update({k: v for k, v in a.env.items() if k != "BINLOG_TAILER_MYSQL__SERVER_ID"})
    b.env["BINLOG_TAILER_CHECKPOINT__PATH"] = str(b.checkpoint)
    assert a.name == b.name
    topic = a.topic(database, "events")
    Writer.create_table(stack, database)
    a.start()
    writer = Writer(stack, database, max_rows=100_000, pause=0.005)
    writer.start()
    try:
        writer.wait_rows(500)
        first = (_stored(a)["file"], _stored(a)["pos"])
        wait_until(lambda: (_stored(a)["file"], _stored(a)["pos"]) > first, 30, "A to commit")
        held = _pause_holding_a_transaction(stack, a, writer, topic)
        assert a.proc is not None
        paused = master_position(stack)  # A read no further

        b.start()  # registers the transactional.id: A is fenced, its transaction aborted
        # B goes on, from A's last commit: the rows A held are published again
        b.wait_checkpoint_at_least(*paused[:2])
        os.kill(a.proc.pid, signal.SIGCONT)
        woke = time.monotonic()
        try:
            code = a.wait_exit(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"A still runs 30 s after SIGCONT though fenced:\n{a.log()[-5000:]}")
        print(f"{stack.server}: A exited {time.monotonic() - woke:.1f} s after SIGCONT")
        log = a.log()
        assert code != 0, log[-5000:]
        fenced = [line for line in log.splitlines() if "fenced by a newer instance of" in line]
        assert len(fenced) == 1, log[-5000:]
        assert f"fenced by a newer instance of {a.name}:" in fenced[0]
        assert [line for line in log.splitlines() if " ERROR " in line] == fenced
        _clean(log)

        writer.wait_rows(len(writer.committed) + 500)  # B still goes on
        committed = writer.finish()
        _finish(stack, b)
        _clean(b.log())
        assert "fenced" not in b.log()
        ids = _ids(stack.kafka_bootstrap, topic)
        assert len(ids) == len(set(ids)), "a row is published twice"
        assert ids == committed  # every committed row once, in commit order
        assert held <= set(ids)
        # the held records are in the log, aborted: a read_uncommitted consumer sees them twice
        assert len(_ids(stack.kafka_bootstrap, topic, "read_uncommitted")) > len(ids)
    finally:
        if a.proc is not None and a.proc.poll() is None:
            os.kill(a.proc.pid, signal.SIGCONT)
        writer._stop_event.set()
        b.close()


def _pause_holding_a_transaction(stack: Stack, tailer: Tailer, writer: Writer, topic: str):
    """SIGSTOP the service while it holds an open Kafka transaction with records on the
    broker (writes flow, so one is open nearly always; again in the rare gap after a commit).
    Returns the ids of those records."""
    assert tailer.proc is not None
    for _attempt in range(10):
        os.kill(tailer.proc.pid, signal.SIGSTOP)
        held = _open_transaction_ids(stack.kafka_bootstrap, topic)
        if held:
            return held
        os.kill(tailer.proc.pid, signal.SIGCONT)
        writer.wait_rows(len(writer.committed) + 50)
    raise AssertionError("never paused with an open Kafka transaction holding records")


def _transaction_open(bootstrap: str, topic: str) -> bool:
    """Whether a transaction is open on the topic: its last stable offset is before its end."""
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, 0)
    ends = [
        admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level)[tp].result(30).offset
        for level in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED)
    ]
    return ends[0] < ends[1]


def test_an_instance_paused_past_the_transaction_timeout_exits_and_a_restart_is_exact(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str
):
    """No newer instance: Kafka itself aborts the transaction of a paused instance after
    exactly_once.transaction_timeout_ms (and bumps its epoch). Woken up, the instance cannot
    go on: it exits with one line, and the next start resumes at its last commit."""
    _eos(tailer, offsets_topic, BINLOG_TAILER_EXACTLY_ONCE__TRANSACTION_TIMEOUT_MS="5000")
    topic = tailer.topic(database, "events")
    Writer.create_table(stack, database)
    tailer.start()
    writer = Writer(stack, database, max_rows=100_000, pause=0.005)
    writer.start()
    try:
        writer.wait_rows(500)
        held = _pause_holding_a_transaction(stack, tailer, writer, topic)
        assert tailer.proc is not None
        wait_until(
            lambda: not _transaction_open(stack.kafka_bootstrap, topic),
            60,
            "Kafka to abort the paused instance's transaction",
        )
        os.kill(tailer.proc.pid, signal.SIGCONT)
        try:
            code = tailer.wait_exit(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still runs 30 s after SIGCONT:\n{tailer.log()[-5000:]}")
        log = tailer.log()
        assert code == 1, log[-5000:]
        lines = [line for line in log.splitlines() if " ERROR " in line]
        assert len(lines) == 1 and "fenced by a newer instance of" in lines[0], log[-5000:]
        assert "Erroneous state" not in lines[0]
        _clean(log)

        tailer.start()
        writer.wait_rows(len(writer.committed) + 500)
        committed = writer.finish()
        _finish(stack, tailer)
        _clean(tailer.log())
    finally:
        writer._stop_event.set()
    ids = _ids(stack.kafka_bootstrap, topic)
    assert ids == committed  # every committed row once, in commit order
    assert held <= set(ids)


# -- 2. kill -9, clean stops and lost connections under load: never a duplicate


def test_kill_9_stops_and_lost_connections_under_load_publish_every_row_exactly_once(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str
):
    from tests.integration.test_faults import _kill_binlog_dump_connections

    # Kafka transactions of a second: a kill finds one open with records on the broker (at
    # the default 100 ms a loaded machine can spend most of its time in commits)
    _eos(tailer, offsets_topic, BINLOG_TAILER_EXACTLY_ONCE__TRANSACTION_INTERVAL_MS="1000")
    topic = tailer.topic(database, "events")
    Writer.create_table(stack, database)
    tailer.start()
    # the writer goes on until finish(): every wait below needs new commits
    writer = Writer(stack, database, max_rows=200_000, pause=0.002)
    writer.start()
    positions = []
    for target, how in zip(
        (1000, 2500, 4000, 5500, 7000), ("kill", "stop", "connection", "kill", "kill"), strict=True
    ):
        before = (_stored(tailer)["file"], _stored(tailer)["pos"])
        wait_until(
            lambda before=before: (_stored(tailer)["file"], _stored(tailer)["pos"]) > before,
            60,
            "the running service to commit",
        )
        writer.wait_rows(target)
        if how == "kill":
            wait_until(
                lambda: (
                    _topic_high_watermark(stack.kafka_bootstrap, topic)
                    > _topic_high_watermark(stack.kafka_bootstrap, topic, True)
                ),
                30,
                "an open Kafka transaction with records",
            )
            tailer.kill()
        elif how == "stop":
            assert tailer.stop() == 0, tailer.log()[-5000:]
        else:
            assert _kill_binlog_dump_connections(stack, tailer) >= 1
            continue
        positions.append((_stored(tailer)["file"], _stored(tailer)["pos"]))
        _clean(tailer.log())
        tailer.start()
    committed = writer.finish()
    _finish(stack, tailer)
    _clean(tailer.log())

    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    ids = _ids(stack.kafka_bootstrap, topic)
    assert len(ids) == len(set(ids)), "a row is published twice"
    assert ids == committed  # every committed row once, in commit order
    # the kills interrupted open transactions: their records are in the log, aborted
    aborted = len(_ids(stack.kafka_bootstrap, topic, "read_uncommitted")) - len(ids)
    print(f"{stack.server}: {len(ids)} rows, {aborted} records of aborted transactions")
    assert aborted > 0


# -- 3. a 500,000-row MySQL transaction split over Kafka transactions, kill -9 in its middle

BIG_ROWS = 500_000


def _insert_one_transaction(stack: Stack, database: str, rows: int) -> None:
    """Rows id = 1..rows in ascending order, in one INSERT ... SELECT (one transaction)."""
    digits = " UNION ALL ".join(f"SELECT {d} AS d" for d in range(10))
    parts = "abcdef"
    terms = " + ".join(f"{10**i} * {p}.d" for i, p in enumerate(parts))
    sources = ", ".join(f"({digits}) AS {p}" for p in parts)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO big (id, n) SELECT 1 + {terms} AS i, 7 FROM {sources}"
            f" WHERE {terms} < {rows} ORDER BY i"
        )
        assert cur.rowcount == rows


@pytest.mark.parametrize("stack", SERVERS, indirect=True)
def test_a_huge_transaction_is_split_bounded_in_memory_and_a_kill_9_in_it_resumes_exactly(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str, kafka_admin: AdminClient
):
    rows = BIG_ROWS
    _eos(tailer, offsets_topic)  # split_records: the default, 50,000
    topic = tailer.topic(database, "big")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, n INT NOT NULL)")
    try:
        began = time.monotonic()
        tailer.start()
        _insert_one_transaction(stack, database, rows)
        inserted = time.monotonic()
        assert tailer.proc is not None
        pid, peaks = tailer.proc.pid, []

        def split_and_in_the_middle() -> bool:
            peaks.append(_peak_rss_mb(pid))
            p = tailer.stored_position()
            if not (p and p.get("done")):
                return False
            size = _topic_high_watermark(stack.kafka_bootstrap, topic)
            if size < min(200_000, rows * 0.6):
                return False
            # records in the open Kafka transaction, and far from its commit: the kill must
            # interrupt it (a kill during its commit would let the commit complete)
            open_records = size - _topic_high_watermark(stack.kafka_bootstrap, topic, True)
            return 1000 <= open_records <= 30_000

        wait_until(split_and_in_the_middle, 300, "a split commit and part of the transaction")
        peaks.append(_peak_rss_mb(pid))
        tailer.kill()
        killed = time.monotonic()
        at_kill = tailer.stored_position()
        assert at_kill is not None and at_kill.get("done"), at_kill  # inside the transaction
        _clean(tailer.log())

        end = master_position(stack)
        tailer.start()
        pid = tailer.proc.pid

        def at_end() -> bool:
            peaks.append(_peak_rss_mb(pid))
            p = tailer.stored_position()
            return bool(p and not p.get("done") and (p["file"], p["pos"]) >= end[:2])

        wait_until(at_end, 600, "the restart to commit the whole transaction")
        peaks.append(_peak_rss_mb(pid))
        done = time.monotonic()
        assert tailer.stop() == 0, tailer.log()[-5000:]
        log = tailer.log()
        _clean(log)
        assert "is split over Kafka transactions" in log, log[-5000:]

        ids = _ids(stack.kafka_bootstrap, topic)
        assert len(ids) == rows, (len(ids), rows)
        assert ids == list(range(1, rows + 1))  # each row once, in order
        # the kill interrupted an open Kafka transaction with records: aborted, not lost
        assert _topic_high_watermark(stack.kafka_bootstrap, topic) > rows + rows // 50_000
        peak = max(peaks)
        print(
            f"{stack.server}: {rows} rows in one transaction: inserted in"
            f" {inserted - began:.1f} s, killed after {killed - inserted:.1f} s at {at_kill},"
            f" the rest in {done - killed:.1f} s; peak RSS {peak:.0f} MB"
            f" (first run {max(peaks[: len(peaks) // 2]):.0f} MB)"
        )
        assert peak < 300, peak
    finally:
        tailer.close()
        for f in kafka_admin.delete_topics([topic], operation_timeout=30).values():
            f.exception(timeout=30)


def _topic_high_watermark(bootstrap: str, topic: str, committed: bool = False) -> int:
    """Records and transaction markers, committed, aborted and open alike; `committed`: up to
    the first open transaction's first record (the last stable offset)."""
    isolation = "read_committed" if committed else "read_uncommitted"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("hw"),
            "isolation.level": isolation,
        }
    )
    try:
        meta = consumer.list_topics(timeout=30)
        if topic not in meta.topics:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in meta.topics[topic].partitions
        )
    finally:
        consumer.close()


# -- 4. a clean stop inside a split transaction


@pytest.mark.parametrize("queue", ["room", "full"])
def test_a_clean_stop_inside_a_split_transaction_resumes_exactly(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str, queue: str
):
    """A transaction split over Kafka transactions, a SIGTERM inside it. With room in Kafka's queue
    the stop publishes the rest of the transaction and commits it. With the queue full (Kafka
    made slow for this service alone by a broker quota on its client.id) the stop aborts the
    open Kafka transaction: the position keeps the last split ("done"), and the next run
    publishes exactly the rows after it."""
    client_id = unique_name("eos_slow")
    env = {
        "BINLOG_TAILER_EXACTLY_ONCE__SPLIT_RECORDS": "100",
        "BINLOG_TAILER_EXACTLY_ONCE__TRANSACTION_MAX_RECORDS": "100",
        "BINLOG_TAILER_KAFKA__PRODUCER": json.dumps({"client.id": client_id}),
    }
    if queue == "full":
        # 2,000 rows of 3 KB (random: compression does not shrink them), split every 400
        # (1.2 MB): a Kafka transaction is larger than the 1 MB queue, which fills up
        rows = [(i, base64.b64encode(os.urandom(2250)).decode()) for i in range(1, 2001)]
        env["BINLOG_TAILER_KAFKA__MAX_BUFFERED_KBYTES"] = "1024"
        env["BINLOG_TAILER_EXACTLY_ONCE__SPLIT_RECORDS"] = "400"
    else:  # 5,000 small rows: 50 Kafka transactions, some seconds
        rows = [(i, "x" * 20) for i in range(1, 5001)]
    _eos(tailer, offsets_topic, **env)
    topic = tailer.topic(database, "t")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, body TEXT NOT NULL)")
    start = master_position(stack)
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()
        cur.executemany("INSERT INTO t VALUES (%s, %s)", rows)
        conn.commit()
    if queue == "full":  # the broker lets ~10 s worth (1 MB) go at full speed first
        set_producer_quota(stack.kafka_bootstrap, client_id, 100e3)
    try:
        tailer.start("--from", f"{start[0]}:{start[1]}")
        wait_until(
            lambda: bool((tailer.stored_position() or {}).get("done")),
            60,
            "a split commit inside the transaction",
        )
        assert tailer.stop(timeout=60) == 0, tailer.log()[-5000:]
        log = tailer.log()
        _clean(log)
        # the SIGTERM came inside the transaction: splits followed it
        after = log[log.index("SIGTERM: draining") :]
        stopped_at = tailer.stored_position()
        assert stopped_at is not None
        if queue == "full":
            assert "the open Kafka transaction is aborted" in log, log[-5000:]
            assert stopped_at.get("done"), stopped_at  # resumes inside the transaction
        else:
            assert "is split over Kafka transactions" in after, log[-5000:]
            assert "aborted" not in log, log[-5000:]
            assert not stopped_at.get("done"), stopped_at  # the whole transaction committed
            # past the transaction (the boundary after it; other tests write to the server too)
            assert (stopped_at["file"], stopped_at["pos"]) > start[:2]
        set_producer_quota(stack.kafka_bootstrap, client_id, None)
        tailer.start()
        _finish(stack, tailer)
        _clean(tailer.log())
    finally:
        set_producer_quota(stack.kafka_bootstrap, client_id, None)
    assert _ids(stack.kafka_bootstrap, topic) == [i for i, _ in rows]  # each once, in order


# -- 5. a bad row under dead_letter.mode=stop


LOOSE_OUTBOX = """
CREATE TABLE outbox (
  id CHAR(36) NOT NULL PRIMARY KEY, aggregate_type VARCHAR(255) NOT NULL,
  aggregate_id VARCHAR(255) NULL, event_type VARCHAR(255) NOT NULL,
  payload LONGTEXT NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
)"""


def test_a_bad_row_under_stop_aborts_its_kafka_transaction_and_a_restart_resumes_exactly(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str
):
    """dead_letter.mode=stop: the bad row's MySQL transaction had records in the open Kafka
    transaction already: aborted, none visible; what an earlier Kafka transaction committed is.
    The service exits 1 with one line; a restart meets the bad row again; with
    dead_letter.mode=dead_letter it goes on, every good event once."""
    tailer.env.pop("BINLOG_TAILER_CAPTURE__INCLUDE")
    _eos(
        tailer,
        offsets_topic,
        BINLOG_TAILER_OUTBOX__TABLES=f"{database}.outbox",
        BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE=f"{database}.event.{{aggregate_type}}",
        BINLOG_TAILER_DEAD_LETTER__TOPIC=f"{database}.dlq",
        BINLOG_TAILER_DEAD_LETTER__MODE="stop",
    )
    topic, dlq = f"{database}.event.order", f"{database}.dlq"
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(LOOSE_OUTBOX)
    tailer.start()

    def event_ids(t: str = topic) -> list[str]:
        return [json.loads(v)["event"] for v in _read(stack.kafka_bootstrap, t)]

    events: list[str] = []
    with stack.admin(database) as conn, conn.cursor() as cur:
        for n in range(3):  # committed, each in a transaction of its own
            events.append(write_event(cur, "order", n, "Placed", {"event": f"before {n}"}))
    wait_until(lambda: len(event_ids()) == 3, 30, "the events before the bad row")
    committed_before = _stored(tailer)
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()  # a good event, the bad row, a good event: one MySQL transaction
        write_event(cur, "order", 10, "Placed", {"event": "with the bad row 1"})
        write_event(cur, "order", 11, "Placed", "{not json")
        write_event(cur, "order", 12, "Placed", {"event": "with the bad row 2"})
        conn.commit()
    assert tailer.wait_exit(30) == 1, tailer.log()[-5000:]
    log = tailer.log()
    _clean(log)
    errors = [line for line in log.splitlines() if "is not JSON" in line]
    assert len(errors) == 1 and " ERROR " in errors[0], log[-5000:]
    assert event_ids() == ["before 0", "before 1", "before 2"]
    # The position stays before the bad row (the restart below meets it again); idle commits
    # may have moved it past other tests' transactions on the shared server meanwhile.
    stored = _stored(tailer)
    assert (stored["file"], stored["pos"]) >= (committed_before["file"], committed_before["pos"])

    tailer.start()  # the bad row again
    assert tailer.wait_exit(30) == 1, tailer.log()[-5000:]
    assert "is not JSON" in tailer.log()
    assert event_ids() == ["before 0", "before 1", "before 2"]

    tailer.env["BINLOG_TAILER_DEAD_LETTER__MODE"] = "dead_letter"
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        write_event(cur, "order", 13, "Placed", {"event": "after"})
    _finish(stack, tailer)
    _clean(tailer.log())
    assert event_ids() == [
        "before 0",
        "before 1",
        "before 2",
        "with the bad row 1",
        "with the bad row 2",
        "after",
    ]
    assert _read(stack.kafka_bootstrap, dlq) == [b"{not json"]
