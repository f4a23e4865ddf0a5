"""Exactly-once delivery under faults: continuous writes with rollbacks and bad outbox rows,
30+ kill -9 of the service (some in the middle of a MySQL transaction split over Kafka
transactions) and a kill -9 of the Kafka broker; then a read_committed read of every topic
holds each committed row exactly once, in order, and nothing rolled back."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tests.integration.stack import Stack, kafka_pid, start_kafka, unique_name, wait_until
from tests.integration.tailer import Tailer, master_position

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(os.environ.get("BT_STACK_DIR", ROOT / ".stack"))

KILLS = 30  # kill -9 of the service
KAFKA_KILL_AFTER = 12  # ... the broker is killed -9 after this many of them
SPLIT_RECORDS = 100  # a MySQL transaction of more records spans several Kafka transactions
LARGE_ROWS = 350  # rows of a large transaction: split three times
AGGREGATES = 8

OUTBOX = """
CREATE TABLE outbox (
  id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  aggregate_type VARCHAR(255) NOT NULL, aggregate_id VARCHAR(255) NOT NULL,
  event_type VARCHAR(255) NOT NULL,
  payload LONGTEXT NOT NULL,  -- not JSON: a bad payload reaches the binlog, to dead-letter
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
)"""
INSERT_EVENT = "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)"
INSERT_EVENT += " VALUES (%s, 'order', %s, 'Changed', %s)"


class OutboxWriter(threading.Thread):
    """Transactions of 1-5 rows (outbox events, some with a payload that is not JSON, and
    rows of a data table), about 20% rolled back, and when asked a large one of LARGE_ROWS
    rows. Keeps what committed and what was rolled back."""

    def __init__(self, stack: Stack, database: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.stack, self.database = stack, database
        self.rng = random.Random(seed)
        self.events: list[tuple[str, str, int]] = []  # (event id, aggregate, seq): committed
        self.bad: list[str] = []  # event ids of committed rows whose payload is not JSON
        self.items: list[int] = []  # ids of committed data rows
        self.rolled_back: set[str | int] = set()  # event and item ids of rolled-back rows
        self.transactions = self.rollbacks = self.large = 0
        self.seq = dict.fromkeys(range(AGGREGATES), 0)  # per aggregate, committed events
        self.next_item = 1
        self._want_large = threading.Event()
        self._stop_event = threading.Event()
        self.error: BaseException | None = None

    def ask_large(self) -> None:
        self._want_large.set()

    def run(self) -> None:
        try:
            with self.stack.admin(self.database) as conn, conn.cursor() as cur:
                while not self._stop_event.is_set():
                    self._transaction(conn, cur)
                    self._stop_event.wait(0.02)  # about 40 transactions a second
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def _transaction(self, conn, cur) -> None:
        rng = self.rng
        large = self._want_large.is_set()
        n = LARGE_ROWS if large else rng.randint(1, 5)
        rollback = not large and rng.random() < 0.2
        seq = dict(self.seq)
        events: list[tuple[str, str, int]] = []
        bad: list[str] = []
        items: list[int] = []
        statements: list[tuple[str, list[tuple]]] = []  # runs of rows of one kind
        for _ in range(n):
            kind = rng.random()
            if kind < 0.3:
                items.append(self.next_item + len(items))
                row: tuple = (items[-1], f"item {items[-1]}")
                sql = "INSERT INTO items VALUES (%s, %s)"
            else:
                event_id, aggregate = str(uuid.uuid4()), rng.randrange(AGGREGATES)
                if kind < 0.35:  # not JSON: dead-lettered
                    bad.append(event_id)
                    payload = f"{{not json {event_id}"
                else:
                    seq[aggregate] += 1
                    events.append((event_id, f"a{aggregate}", seq[aggregate]))
                    payload = json.dumps({"aggregate": aggregate, "seq": seq[aggregate]})
                row, sql = (event_id, f"a{aggregate}", payload), INSERT_EVENT
            if statements and statements[-1][0] == sql:
                statements[-1][1].append(row)
            else:
                statements.append((sql, [row]))
        conn.begin()
        for sql, rows in statements:
            cur.executemany(sql, rows)  # multi-row INSERTs: several rows per binlog event
        if rollback:
            conn.rollback()
            self.rolled_back.update(e for e, _, _ in events)
            self.rolled_back.update(bad)
            self.rolled_back.update(items)
            self.next_item += len(items)  # a rolled-back id is never written again
            self.rollbacks += 1
            return
        conn.commit()
        self.seq = seq
        self.next_item += len(items)
        self.events.extend(events)
        self.bad.extend(bad)
        self.items.extend(items)
        self.transactions += 1
        if large:
            self.large += 1
            self._want_large.clear()

    def finish(self) -> None:
        self._stop_event.set()
        self.join(60)
        assert not self.is_alive(), "writer did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def topics_deleted(kafka_bootstrap: str):
    """Names of topics the test may create, deleted afterwards (a broker with fewer topics
    restarts faster after a kill -9)."""
    names: list[str] = []
    yield names
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # not one that saw Kafka away
    for f in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(KafkaException):  # never created
            f.result(timeout=30)


def _read_all(bootstrap: str, topics: list[str], isolation: str) -> list[Message]:
    """Every record of `topics` visible at `isolation`, read to the end of each partition
    (its high watermark: every transaction has ended, so read_committed gets there too)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("eos"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    try:
        meta = consumer.list_topics(timeout=30)
        high = {}
        for t in topics:
            for p in meta.topics[t].partitions:
                high[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)[1]
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in high])
        pending, out = set(high), []
        deadline = time.monotonic() + 90
        while pending:
            assert time.monotonic() < deadline, (
                f"{isolation} read of {sorted(pending)} did not reach the end"
                f" {[high[k] for k in sorted(pending)]}: a transaction left open?"
            )
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, f"consumer error: {err}"
                if msg.offset() >= high[(msg.topic(), msg.partition())]:
                    pending.discard((msg.topic(), msg.partition()))
                continue
            out.append(msg)
        return out
    finally:
        consumer.close()


def _topics_of(bootstrap: str, database: str) -> set[str]:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30)
    return {t for t in meta.topics if database in t}


def _header(msg: Message, name: str) -> str:
    return dict(msg.headers() or [])[name].decode()


def _at(position: dict | None) -> tuple[str, int]:
    if position is None or position["file"] is None:
        return ("", 0)
    return position["file"], position["pos"]


@pytest.mark.stops_kafka
@pytest.mark.timeout(480)  # setup may wait for the tests running to end (stops_kafka)
def test_kill_9_of_service_and_broker_under_exactly_once_loses_and_duplicates_nothing(
    stack: Stack, database: str, tailer: Tailer, topics_deleted: list[str]
):
    started = time.monotonic()
    outbox_topic, dlq_topic = f"{database}.event.order", f"{database}.dlq"
    items_topic = tailer.topic(database, "items")
    offsets_topic = unique_name("offsets")
    topics_deleted += [outbox_topic, dlq_topic, items_topic, offsets_topic]
    tailer.use_kafka_store(offsets_topic)
    tailer.env.update(
        {
            "BINLOG_TAILER_CAPTURE__INCLUDE": f"{database}.items",
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{database}.event.{{aggregate_type}}",
            "BINLOG_TAILER_DEAD_LETTER__TOPIC": dlq_topic,
            "BINLOG_TAILER_DELIVERY": "exactly_once",
            # split_records is at least transaction_max_records
            "BINLOG_TAILER_EXACTLY_ONCE__TRANSACTION_MAX_RECORDS": str(SPLIT_RECORDS),
            "BINLOG_TAILER_EXACTLY_ONCE__SPLIT_RECORDS": str(SPLIT_RECORDS),
        }
    )
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(OUTBOX)
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, body VARCHAR(100))")
    rng = random.Random(f"eos-faults-{stack.server}")
    writer = OutboxWriter(stack, database, seed=rng.randrange(2**32))
    tailer.start()
    writer.start()
    kills = kafka_kills = exits = aimed = 0
    kafka_away = 0.0

    def restart_if_exited(kafka_was_away: bool = False) -> None:
        """The service may stop by itself when Kafka was away (and only then): with exit code
        1 and a line naming Kafka's failure, never a traceback."""
        nonlocal exits
        assert tailer.proc is not None
        code = tailer.proc.poll()
        if code is None:
            return
        log = tailer.log()
        assert kafka_was_away, f"the service exited ({code}) by itself:\n{log}"
        assert code == 1 and "Traceback" not in log, f"exit {code}:\n{log}"
        assert any(" ERROR " in line and "Kafka" in line for line in log.splitlines()), log
        exits += 1
        tailer.start()

    def running() -> bool:
        return tailer.proc is not None and tailer.proc.poll() is None

    def stored_at() -> tuple[str, int]:
        try:
            return _at(tailer.stored_position())
        except (KafkaException, AssertionError):  # Kafka still coming back
            return ("", 0)

    def split_logged() -> int:
        return tailer.log().count("is split over Kafka transactions")

    try:
        while kills < KILLS:
            assert writer.error is None, writer.error
            if kills % 2:
                # In the middle of a split transaction: right after one of its Kafka
                # transactions is committed, or while it commits.
                before = split_logged()
                writer.ask_large()
                wait_until(
                    lambda before=before: split_logged() > before or not running(),
                    60,
                    "a large transaction to be split",
                )
                time.sleep(rng.uniform(0, 0.03))  # the moment of the kill, not a synchronisation
                aimed += 1
            else:
                time.sleep(rng.uniform(0.05, 1.5))  # the moment of the kill
            if not running():
                restart_if_exited()
                continue
            tailer.kill()
            kills += 1
            tailer.start()
            if kills == KAFKA_KILL_AFTER:
                # The broker killed while the service runs; the writer goes on meanwhile.
                time.sleep(rng.uniform(0.2, 1.0))
                pid = kafka_pid()
                assert pid is not None, "Kafka is not running"
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
                wait_until(lambda: kafka_pid() is None, 30, "Kafka to die")
                kafka_kills += 1
                time.sleep(rng.uniform(1, 2))  # how long Kafka stays away (and ~40 s to restart)
                start_kafka(stack.kafka_bootstrap)
                kafka_away = time.monotonic() - killed_at
                # Back: the service carries on (or exits, and is restarted) and commits what
                # was written while Kafka was away.
                end = master_position(stack)[:2]
                wait_until(
                    lambda end=end: not running() or stored_at() >= end,
                    150,
                    "the service to commit again after Kafka came back",
                )
                restart_if_exited(kafka_was_away=True)
        writer.finish()
        restart_if_exited()
        end = master_position(stack)[:2]
        wait_until(
            lambda: stored_at() >= end or not running(),
            120,
            f"the stored position to reach {end}",
        )
        assert running(), tailer.log()
        assert tailer.stop() == 0, tailer.log()
    finally:
        if kafka_pid() is None:  # never leave the shared broker down
            start_kafka(stack.kafka_bootstrap)
    elapsed = time.monotonic() - started

    logs = [(tailer.workdir / f"run{n}.log").read_text() for n in range(1, tailer.runs + 1)]
    for n, log in enumerate(logs, 1):
        assert "Traceback" not in log, f"run {n}:\n{log}"
    resumed_inside = sum(
        "done up to row" in line
        for log in logs
        for line in log.splitlines()
        if "streaming from" in line
    )
    assert any("is split over Kafka transactions" in log for log in logs)
    # Some restarts began in the middle of a split MySQL transaction (its rows up to the one
    # named done were published by the run killed, and are skipped).
    assert resumed_inside >= 1, "no restart resumed inside a split transaction"

    bootstrap = stack.kafka_bootstrap
    topics = [outbox_topic, dlq_topic, items_topic]
    assert _topics_of(bootstrap, database) == set(topics)  # nothing published elsewhere
    committed = _read_all(bootstrap, topics, "read_committed")
    everything = _read_all(bootstrap, topics, "read_uncommitted")
    by_topic: dict[str, list[Message]] = collections.defaultdict(list)
    for m in committed:
        by_topic[m.topic()].append(m)

    # Outbox events: each committed one exactly once, none rolled back, per-aggregate order.
    got_events = collections.Counter(_header(m, "event_id") for m in by_topic[outbox_topic])
    want_events = collections.Counter(e for e, _, _ in writer.events)
    _same("outbox events", got_events, want_events, writer.rolled_back)
    per_aggregate: dict[str, list[int]] = collections.defaultdict(list)
    for m in by_topic[outbox_topic]:
        per_aggregate[m.key().decode()].append(json.loads(m.value())["seq"])
    for aggregate, seqs in per_aggregate.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"aggregate {aggregate} out of order"

    # Dead letters: each committed bad row exactly once, for being no JSON.
    got_bad = collections.Counter(_header(m, "event_id") for m in by_topic[dlq_topic])
    _same("dead letters", got_bad, collections.Counter(writer.bad), writer.rolled_back)
    assert {_header(m, "dlq.reason") for m in by_topic[dlq_topic]} == {"invalid_json"}

    # The data table: each committed row once, in commit order (one partition).
    ids = [json.loads(m.value())["after"]["id"] for m in by_topic[items_topic]]
    _same(
        "data rows", collections.Counter(ids), collections.Counter(writer.items), writer.rolled_back
    )
    assert ids == sorted(ids)

    # The faults did hit Kafka transactions in flight: their records are in the log, aborted.
    aborted = len(everything) - len(committed)
    assert aborted > 0, "no record of an aborted transaction: did a kill hit one in flight?"
    print(
        f"\n[{stack.server}] exactly-once faults: {elapsed:.0f}s,"
        f" {writer.transactions} transactions committed ({writer.large} large of {LARGE_ROWS}"
        f" rows), {writer.rollbacks} rolled back; {len(writer.events)} events,"
        f" {len(writer.bad)} dead letters, {len(writer.items)} data rows; {kills} kill -9"
        f" ({aimed} in split transactions, {resumed_inside} restarts inside one),"
        f" {kafka_kills} broker kill -9 (away {kafka_away:.0f}s), {exits} exits by itself;"
        f" records read_committed {len(committed)}, read_uncommitted {len(everything)}"
        f" ({aborted} aborted), 0 lost, 0 duplicates"
    )


def _same(
    what: str,
    got: collections.Counter,
    want: collections.Counter,
    rolled_back: set,
) -> None:
    missing = want - got
    extra = got - want
    duplicates = {k: c for k, c in got.items() if c > 1}
    assert not (got.keys() & rolled_back), f"{what}: rolled-back rows published"
    assert not duplicates, f"{what}: {len(duplicates)} published more than once"
    assert not missing, f"{what}: {len(missing)} committed ones lost: {list(missing)[:5]}"
    assert not extra, f"{what}: {len(extra)} never written: {list(extra)[:5]}"
