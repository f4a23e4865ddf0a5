"""Topic settings that make a broker refuse records: only the record at fault is dead-lettered.

A topic whose `max.message.bytes` is small:
The broker checks a topic's limit against a whole batch of records and refuses the batch as a
whole; librdkafka then fails every record in it with MSG_SIZE_TOO_LARGE. Small rows batched
together, or next to an oversized one, must still reach their topic, exactly once, in order.
"""

import base64
import json
import os
import time

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from tests.integration.stack import Stack, consume, topic_sizes, wait_until
from tests.integration.tailer import Tailer, master_position

LIMIT = 20_000


def _body(n: int) -> str:
    """`n` characters that do not compress (lz4 would shrink repeated ones far below LIMIT)."""
    return base64.b64encode(os.urandom(n))[:n].decode()


def _insert(stack: Stack, database: str, rows: list[tuple[int, str]]) -> None:
    """One multi-row INSERT, one transaction."""
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s)", rows)


def _run_to_end(stack: Stack, tailer: Tailer) -> None:
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=60)
    assert tailer.stop() == 0, tailer.log()[-3000:]


@pytest.mark.parametrize(
    ("compression", "delivery"),
    [("lz4", "at_least_once"), ("none", "at_least_once"), ("lz4", "exactly_once")],
)
def test_only_the_oversized_row_is_dead_lettered_its_small_neighbours_are_published(
    stack: Stack, database: str, tailer: Tailer, new_topic, compression: str, delivery: str
):
    """Exactly-once: the batches to the small topic need a new producer (batch.size), made
    between Kafka transactions; the oversized row is refused before it is sent."""
    topic = new_topic(name=tailer.topic(database, "t"), config={"max.message.bytes": str(LIMIT)})
    dlq = f"{database}.dlq"
    tailer.env["BINLOG_TAILER_DEAD_LETTER__TOPIC"] = dlq
    if compression != "lz4":  # lz4: the default
        tailer.env["BINLOG_TAILER_KAFKA__PRODUCER"] = json.dumps({"compression.type": compression})
    if delivery == "exactly_once":
        tailer.use_kafka_store(f"{database}.offsets")
        tailer.env["BINLOG_TAILER_DELIVERY"] = delivery
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, body LONGTEXT) ENGINE=InnoDB")
    tailer.start()

    small = {i: _body(3_000) for i in range(1, 62) if i != 31}
    oversized = (31, _body(30_000))
    rows = lambda ids: [(i, small[i]) for i in ids]  # noqa: E731
    # 20 small rows in one statement: ~66 KB together, each well under the limit
    _insert(stack, database, rows(range(1, 21)))
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()  # the oversized row amid small ones, in one transaction
        cur.executemany("INSERT INTO t VALUES (%s, %s)", rows(range(21, 31)))
        cur.execute("INSERT INTO t VALUES (%s, %s)", oversized)
        cur.executemany("INSERT INTO t VALUES (%s, %s)", rows(range(32, 42)))
        conn.commit()
    _insert(stack, database, rows(range(42, 62)))  # and the stream goes on
    _run_to_end(stack, tailer)

    if delivery == "at_least_once":
        sizes = topic_sizes(stack.kafka_bootstrap, [topic, dlq])
        assert sizes == {topic: len(small), dlq: 1}, tailer.log()[-3000:]
    # (exactly-once: the topics also hold transaction markers; read_committed counts)
    published = [
        json.loads(m.value())["after"]
        for m in consume(stack.kafka_bootstrap, [topic], expect=len(small) + 1, timeout=10)
    ]
    # every small row once, in commit order, with its own value
    assert [(r["id"], r["body"]) for r in published] == sorted(small.items())

    (dead,) = consume(stack.kafka_bootstrap, [dlq], expect=2, timeout=5)
    headers = dict(dead.headers() or [])
    assert headers["dlq.reason"] == b"rejected"
    assert headers["dlq.original_topic"].decode() == topic
    assert json.loads(dead.key()) == {"id": 31}
    assert json.loads(dead.value())["after"] == {"id": 31, "body": oversized[1]}
    assert f"max.message.bytes {LIMIT}".encode() in headers["dlq.error"], headers["dlq.error"]


def _topic_limit(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return int(admin.describe_configs([resource])[resource].result(30)["max.message.bytes"].value)


def test_a_limit_lowered_while_running_stops_the_service_and_dead_letters_nothing(
    stack: Stack, database: str, tailer: Tailer, new_topic, kafka_admin: AdminClient
):
    topic = new_topic(name=tailer.topic(database, "t"))  # the broker's default limit, ~1 MB
    dlq = f"{database}.dlq"
    tailer.env["BINLOG_TAILER_DEAD_LETTER__TOPIC"] = dlq
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, body LONGTEXT) ENGINE=InnoDB")
    tailer.start()
    bodies = {i: _body(3_000) for i in range(0, 41)}
    _insert(stack, database, [(0, bodies[0])])  # the service learns the topic's limit
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)

    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes", str(LIMIT), incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    kafka_admin.incremental_alter_configs([resource])[resource].result(30)
    wait_until(lambda: _topic_limit(kafka_admin, topic) == LIMIT, 30, "the new topic limit")
    time.sleep(0.5)
    _insert(stack, database, [(i, bodies[i]) for i in range(1, 41)])  # ~130 KB in one go

    # the batch refused as a whole: no row of it can be told guilty, none is dead-lettered
    assert tailer.wait_exit(60) == 1, tailer.log()[-3000:]
    log = tailer.log()
    assert "must have been lowered since" in log and "Traceback" not in log, log[-3000:]
    assert topic_sizes(stack.kafka_bootstrap, [dlq]) == {dlq: 0}

    # a restart learns the new limit and publishes every row (a row acknowledged after the
    # refused batch, before the stop, may come twice: replayed from the checkpoint)
    tailer.start()
    _run_to_end(stack, tailer)
    msgs = consume(stack.kafka_bootstrap, [topic], expect=41, settle=1.0)
    published = {(r["id"], r["body"]) for r in (json.loads(m.value())["after"] for m in msgs)}
    assert published == set(bodies.items())
    assert "max.message.bytes" in tailer.log()  # the smaller batches, logged
    assert topic_sizes(stack.kafka_bootstrap, [dlq]) == {dlq: 0}


def test_on_a_compacted_topic_only_the_rows_without_a_key_are_dead_lettered(
    stack: Stack, database: str, tailer: Tailer, new_topic
):
    """A broker refuses a whole batch for one record without a key on a compacted topic
    (INVALID_RECORD for all of them): such a record is refused alone, before it is sent."""
    topic_template = f"{tailer.topic_prefix}.{database}.shared"
    topic = new_topic(name=topic_template, config={"cleanup.policy": "compact"})
    dlq = f"{database}.dlq"
    tailer.env["BINLOG_TAILER_DEAD_LETTER__TOPIC"] = dlq
    tailer.env["BINLOG_TAILER_CAPTURE__TOPIC_TEMPLATE"] = topic_template
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE keyed (id INT PRIMARY KEY, v INT)")
        cur.execute("CREATE TABLE unkeyed (v INT)")
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()  # keyless rows amid keyed ones, in one batch
        for i in range(1, 21):
            cur.execute("INSERT INTO keyed VALUES (%s, %s)", (i, i))
            if i % 5 == 0:
                cur.execute("INSERT INTO unkeyed VALUES (%s)", (i,))
        conn.commit()
    _run_to_end(stack, tailer)
    assert topic_sizes(stack.kafka_bootstrap, [topic, dlq]) == {topic: 20, dlq: 4}
    published = consume(stack.kafka_bootstrap, [topic], expect=20)
    assert [json.loads(m.key())["id"] for m in published] == list(range(1, 21))
    dead = consume(stack.kafka_bootstrap, [dlq], expect=4)
    assert [json.loads(m.value())["after"]["v"] for m in dead] == [5, 10, 15, 20]
    assert all(b"is compacted" in dict(m.headers())["dlq.error"] for m in dead)
