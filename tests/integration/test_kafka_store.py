"""The Kafka checkpoint store (checkpoint.store=kafka) with the real service and broker."""

import collections
import contextlib
import json
import random
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from binlog_tailer.checkpoint.kafka import KafkaCheckpointStore
from binlog_tailer.checkpoint.records import offset_record
from binlog_tailer.errors import CheckpointError
from binlog_tailer.position import BinlogPosition
from binlog_tailer.settings import KafkaSettings
from tests.integration.stack import (
    Stack,
    consume,
    topic_sizes,
    unique_name,
    wait_until,
)
from tests.integration.tailer import Tailer, master_position
from tests.integration.writer import Writer


@pytest.fixture
def offsets_topic(kafka_admin: AdminClient):
    """A name for a fresh offsets topic (the store creates it); deleted afterwards."""
    name = unique_name("offsets")
    yield name
    for f in kafka_admin.delete_topics([name], operation_timeout=30).values():
        with contextlib.suppress(KafkaException):  # never created
            f.result(timeout=30)


def _at(position: dict | None) -> tuple[str, int]:
    assert position is not None and position["file"] is not None, position
    return position["file"], position["pos"]


def _ids(stack: Stack, topic: str) -> list[int]:
    """The `id` of every record of a data topic, in order (all are acknowledged)."""
    size = topic_sizes(stack.kafka_bootstrap, [topic])[topic]
    msgs = consume(stack.kafka_bootstrap, [topic], expect=size, timeout=60)
    assert len(msgs) == size
    return [json.loads(m.value())["after"]["id"] for m in msgs]


def _insert(stack: Stack, database: str, ids) -> None:
    with stack.admin(database) as conn, conn.cursor() as cur:
        for i in ids:
            cur.execute("INSERT INTO t VALUES (%s)", (i,))


def _shown(tailer: Tailer) -> dict | None:
    r = tailer.cli("offsets", "show")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["store"] == f"Kafka topic {tailer.env['BINLOG_TAILER_CHECKPOINT__TOPIC']}" + (
        f" (key {tailer.name!r})"
    )
    return out["position"]


def test_stops_and_kill_9_under_load_lose_nothing_and_the_position_advances(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str
):
    tailer.use_kafka_store(offsets_topic)
    Writer.create_table(stack, database)
    tailer.start()
    # rows enough to go on through five slow restarts (the waits below are relative)
    writer = Writer(stack, database, max_rows=60_000, pause=0.002)
    writer.start()
    rng = random.Random(5)
    positions = []
    for how in ("stop", "kill", "stop", "kill", "kill"):
        before = _at(tailer.stored_position())
        wait_until(
            lambda before=before: _at(tailer.stored_position()) > before,
            60,
            "the stored position to advance",
        )
        writer.wait_rows(len(writer.committed) + rng.randint(100, 1500))
        if how == "kill":
            tailer.kill()
        else:
            assert tailer.stop() == 0, tailer.log()
        positions.append(_at(tailer.stored_position()))
        tailer.start()
    committed = writer.finish()
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=120)
    assert tailer.stop() == 0, tailer.log()

    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    assert _at(tailer.stored_position()) >= (file, pos)
    counts = collections.Counter(_ids(stack, tailer.topic(database, "events")))
    assert set(counts) == set(committed), "a committed row is missing"
    assert all(c <= 4 for c in counts.values())  # at most once more per kill -9
    assert not tailer.checkpoint.exists(), "the Kafka store wrote a checkpoint file"
    assert "created Kafka topic" in (tailer.workdir / "run1.log").read_text()


def test_offsets_show_set_reset_and_run_from(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str
):
    tailer.use_kafka_store(offsets_topic, name=f"orders-{database}")
    assert _shown(tailer) is None  # no topic yet: nothing stored
    r = tailer.cli("offsets", "set", "binlog.000007:1234")
    assert r.returncode == 0, r.stderr
    assert offsets_topic in r.stdout
    assert _shown(tailer) == {"file": "binlog.000007", "pos": 1234, "gtid": None}
    assert tailer.stored_position() == {"file": "binlog.000007", "pos": 1234, "gtid": None}
    assert tailer.cli("offsets", "set", "0-1-150,1-2-7").returncode == 0
    assert _shown(tailer) == {"file": None, "pos": None, "gtid": "0-1-150,1-2-7"}
    assert tailer.cli("offsets", "reset").returncode == 0
    assert _shown(tailer) is None and tailer.stored_position() is None  # a tombstone
    bad = tailer.cli("offsets", "set", "not-a-position")
    assert bad.returncode == 2 and "cannot read position" in bad.stderr

    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    begin_file, begin_pos, _ = master_position(stack)
    _insert(stack, database, range(1, 6))
    mid_file, mid_pos, _ = master_position(stack)
    _insert(stack, database, range(6, 11))
    end = master_position(stack)[:2]
    topic = tailer.topic(database, "t")

    _run_to(stack, tailer, end, "--from", f"{begin_file}:{begin_pos}")
    assert _ids(stack, topic) == list(range(1, 11))
    assert _at(_shown(tailer)) >= end

    assert tailer.cli("offsets", "set", f"{mid_file}:{mid_pos}").returncode == 0
    _run_to(stack, tailer, end)  # resumes from the position set: 6-10 again
    assert _ids(stack, topic) == [*range(1, 11), *range(6, 11)]

    assert tailer.cli("offsets", "reset").returncode == 0
    tailer.start()  # initial_position=latest: nothing replayed
    _insert(stack, database, [11])
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()
    assert _ids(stack, topic) == [*range(1, 11), *range(6, 12)]
    assert not tailer.checkpoint.exists()

    check = tailer.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert (
        f"ok    checkpoint store Kafka topic {offsets_topic} (key 'orders-{database}'):"
        " compacted, 1 partition" in check.stdout
    )


def _run_to(stack: Stack, tailer: Tailer, end: tuple[str, int], *args: str) -> None:
    tailer.start(*args)
    tailer.wait_checkpoint_at_least(*end)
    assert tailer.stop() == 0, tailer.log()


def test_two_connectors_on_one_offsets_topic_keep_their_own_positions(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str, tmp_path: Path
):
    a = tailer.use_kafka_store(offsets_topic)  # both named by default: their topic prefixes
    (tmp_path / "b").mkdir()
    b = Tailer(stack, tmp_path / "b", database).use_kafka_store(offsets_topic)
    b.topic_prefix += "_b"
    b.env["BINLOG_TAILER_CAPTURE__TOPIC_PREFIX"] = b.topic_prefix
    assert a.name != b.name
    try:
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        a.start()
        b.start()
        _insert(stack, database, [1, 2, 3])
        end1 = master_position(stack)[:2]
        a.wait_checkpoint_at_least(*end1)
        b.wait_checkpoint_at_least(*end1)
        assert b.stop() == 0, b.log()
        _insert(stack, database, [4, 5, 6])
        end2 = master_position(stack)[:2]
        a.wait_checkpoint_at_least(*end2)
        assert a.stop() == 0, a.log()

        at_a, at_b = _at(_shown(a)), _at(_shown(b))
        assert at_a >= end2 and end1 <= at_b < end2
        _run_to(stack, b, end2)  # B resumes from its own position
        assert _ids(stack, b.topic(database, "t")) == [1, 2, 3, 4, 5, 6]
        assert _ids(stack, a.topic(database, "t")) == [1, 2, 3, 4, 5, 6]

        assert b.cli("offsets", "reset").returncode == 0
        assert _shown(b) is None and _at(_shown(a)) == at_a
    finally:
        b.close()


@pytest.mark.parametrize("kind", ["delete", "three_partitions"])
def test_an_offsets_topic_that_cannot_hold_offsets_is_refused(
    tailer: Tailer, kafka_admin: AdminClient, new_topic, kind: str
):
    if kind == "delete":
        topic, expected = new_topic(partitions=1), "has cleanup.policy=delete"
    else:
        topic, expected = new_topic(partitions=3), "has 3 partitions"
        _set_compact(kafka_admin, topic)
    tailer.use_kafka_store(topic)
    for args in (("run",), ("offsets", "show"), ("offsets", "set", "binlog.000001:4")):
        r = tailer.cli(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert f"Kafka topic {topic} {expected}" in r.stderr and "checkpoint.topic" in r.stderr
        assert "Traceback" not in r.stderr
    assert topic_sizes(tailer.stack.kafka_bootstrap, [topic])[topic] == 0  # nothing written
    check = tailer.cli("check")
    assert check.returncode == 3, check.stdout
    assert f"FAIL  checkpoint store: Kafka topic {topic} {expected}" in check.stdout


def _set_compact(admin: AdminClient, topic: str) -> None:
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    entry = ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(timeout=30)


def test_unreachable_kafka_store_stops_run_in_bounded_time_without_secrets(tailer: Tailer):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tailer.use_kafka_store("binlog-tailer.offsets")
    tailer.env["BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
    tailer.env["BINLOG_TAILER_CHECKPOINT__TIMEOUT_SECONDS"] = "2"
    tailer.env |= {
        "BINLOG_TAILER_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "BINLOG_TAILER_KAFKA__SASL_MECHANISM": "PLAIN",
        "BINLOG_TAILER_KAFKA__SASL_USERNAME": "cdc",
        "BINLOG_TAILER_KAFKA__SASL_PASSWORD": "pw-hunter2-kafka",
    }
    for args in (("run",), ("offsets", "show")):
        r = tailer.cli(*args, timeout=20)
        assert r.returncode == 1, r.stderr
        assert f"Kafka at 127.0.0.1:{port} is not reachable within 2s" in r.stderr, r.stderr
        assert "pw-hunter2-kafka" not in r.stderr and "Traceback" not in r.stderr


P1 = BinlogPosition("binlog.000001", 4)
P2 = BinlogPosition("binlog.000002", 400)
P3 = BinlogPosition("binlog.000003", 4000)


def test_a_position_committed_in_a_kafka_transaction_is_read_an_aborted_one_never(
    kafka_bootstrap: str, offsets_topic: str
):
    """What exactly-once delivery will do: the offset record inside a Kafka transaction."""
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    KafkaCheckpointStore(kafka, offsets_topic, "eos").save(P1)  # creates the topic
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("eos")}
    )
    producer.init_transactions(30)

    def in_transaction(position: BinlogPosition) -> None:
        record = offset_record(offsets_topic, "eos", position)
        producer.begin_transaction()
        producer.produce(record.topic, key=record.key, value=record.value)
        producer.flush(30)

    def loads(position: BinlogPosition) -> bool:
        return KafkaCheckpointStore(kafka, offsets_topic, "eos").load() == position

    # A commit returns before its markers reach the partition: the last stable offset passes
    # the record a moment later (a restarted instance's init_transactions waits for that).
    in_transaction(P2)
    producer.commit_transaction(30)
    wait_until(lambda: loads(P2), 30, "the committed position to be read")
    in_transaction(P3)
    producer.abort_transaction(30)
    assert KafkaCheckpointStore(kafka, offsets_topic, "eos").load() == P2

    # A transaction left open (another connector's) before our newest record hides it from
    # read_committed consumers until it ends: reading waits for it, never returns the older.
    record = offset_record(offsets_topic, "other", P1)
    producer.begin_transaction()
    producer.produce(record.topic, key=record.key, value=record.value)
    producer.flush(30)
    KafkaCheckpointStore(kafka, offsets_topic, "eos").save(P3)
    with pytest.raises(CheckpointError, match="was not read up to offset"):
        KafkaCheckpointStore(kafka, offsets_topic, "eos", timeout=2).load()
    loaded: list[BinlogPosition | None] = []
    reader = threading.Thread(
        target=lambda: loaded.append(KafkaCheckpointStore(kafka, offsets_topic, "eos").load())
    )
    reader.start()
    time.sleep(1)  # the reader is waiting on the open transaction (not a synchronisation)
    producer.commit_transaction(30)
    reader.join(30)
    assert loaded == [P3]


def test_check_under_exactly_once_tries_transactions_without_fencing_the_running_service(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str
):
    tailer.use_kafka_store(offsets_topic)
    tailer.env["BINLOG_TAILER_DELIVERY"] = "exactly_once"
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    tailer.start()
    _insert(stack, database, [1, 2])
    check = tailer.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"transactions available (transactional.id binlog-tailer.{tailer.name})" in check.stdout
    _insert(stack, database, [3])
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)  # still committing: not fenced
    assert tailer.stop() == 0, tailer.log()
    assert "fenced" not in tailer.log()
