"""The Kafka checkpoint store's pure parts: its records, the topic rules, its settings. The
store against a real broker is tested in tests/integration/test_kafka_store.py."""

import json
import socket
import time

import pytest

from binlog_tailer.checkpoint.file import FileCheckpointStore
from binlog_tailer.checkpoint.kafka import (
    KafkaCheckpointStore,
    TopicState,
    new_topic_settings,
    topic_problem,
)
from binlog_tailer.checkpoint.records import (
    UnreadableOffsetRecord,
    decode_offset_value,
    last_position,
    offset_record,
    offset_tombstone,
)
from binlog_tailer.errors import CheckpointError, ConfigError
from binlog_tailer.kafka_client import redact
from binlog_tailer.position import BinlogPosition, MariadbGtidPos, MysqlGtidSet
from binlog_tailer.publisher import connection_config, producer_config
from binlog_tailer.settings import KafkaSettings, load_settings

P1 = BinlogPosition("binlog.000001", 1234, MariadbGtidPos.parse("0-1-9,1-2-7"))
P2 = BinlogPosition("binlog.000002", 4)
P3 = BinlogPosition(None, None, MysqlGtidSet.parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10"))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("BINLOG_TAILER_"):
            monkeypatch.delenv(k)


def test_offset_record_is_keyed_by_name_and_holds_the_file_stores_document(tmp_path):
    record = offset_record("offsets", "shop-cdc", P1, saved_at=1700000000.25)
    assert (record.topic, record.key) == ("offsets", b"shop-cdc")
    assert record.value is not None
    assert json.loads(record.value) == {
        "position": {"file": "binlog.000001", "pos": 1234, "gtid": "0-1-9,1-2-7"},
        "saved_at": 1700000000.25,
        "format": 1,
    }
    assert record.timestamp_ms == 1700000000250
    # one document for both stores: what the file store writes, the record holds
    store = FileCheckpointStore(tmp_path / "offsets.json")
    store.save(P1)
    on_disk = json.loads(store.path.read_text())
    assert on_disk.keys() == json.loads(record.value).keys()
    assert decode_offset_value(store.path.read_bytes()) == P1


@pytest.mark.parametrize("position", [P1, P2, P3])
def test_offset_record_reads_back(position):
    value = offset_record("t", "n", position).value
    assert value is not None and decode_offset_value(value) == position


def test_a_tombstone_has_the_name_and_no_value():
    t = offset_tombstone("offsets", "shop-cdc")
    assert (t.topic, t.key, t.value) == ("offsets", b"shop-cdc", None)


def _kv(record):
    return record.key, record.value


def test_the_last_record_of_the_name_wins_and_other_names_are_ignored():
    records = [
        _kv(offset_record("t", "a", P1)),
        _kv(offset_record("t", "b", P2)),
        _kv(offset_record("t", "a", P2)),
        _kv(offset_record("t", "b", P3)),
        (None, b"not ours, no key"),
        (b"c", b"not json, not ours"),
    ]
    assert last_position(records, "a") == P2
    assert last_position(records, "b") == P3
    assert last_position(records, "c-other") is None
    assert last_position([], "a") is None
    assert last_position(iter(records), "a") == P2  # one pass over a stream


def test_a_tombstone_resets_until_the_next_record():
    a1, a2 = _kv(offset_record("t", "a", P1)), _kv(offset_record("t", "a", P2))
    gone = _kv(offset_tombstone("t", "a"))
    assert last_position([a1, gone], "a") is None
    assert last_position([a1, gone, a2], "a") == P2
    assert last_position([a1, _kv(offset_tombstone("t", "b"))], "a") == P1


def test_only_the_last_value_is_decoded():
    a2 = _kv(offset_record("t", "a", P2))
    assert last_position([(b"a", b"garbage"), a2], "a") == P2
    with pytest.raises(UnreadableOffsetRecord):
        last_position([a2, (b"a", b"garbage")], "a")
    assert issubclass(UnreadableOffsetRecord, CheckpointError)


def test_a_record_of_a_newer_format_is_refused_not_misread():
    value = json.dumps({"format": 4, "position": P2.to_dict(), "saved_at": 1.0}).encode()
    with pytest.raises(CheckpointError, match="newer binlog-tailer"):
        decode_offset_value(value)
    bad = json.dumps({"format": 1, "position": {"file": None, "pos": None, "gtid": None}})
    with pytest.raises(UnreadableOffsetRecord):
        decode_offset_value(bad.encode())


def test_a_compacted_single_partition_topic_is_fit():
    assert topic_problem("o", TopicState(1, 3, "compact", "2")) is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TopicState(1, 1, "delete", "1"), "cleanup.policy=delete"),
        (TopicState(1, 1, "compact,delete", "1"), "cleanup.policy=compact,delete"),
        (TopicState(3, 1, "compact", "1"), "3 partitions"),
    ],
)
def test_other_topics_are_refused_with_their_fix(state, expected):
    problem = topic_problem("offsets", state)
    assert problem is not None and expected in problem
    assert "Kafka topic offsets" in problem and "checkpoint.topic" in problem


@pytest.mark.parametrize(
    ("brokers", "replication", "min_isr"), [(1, 1, "1"), (2, 2, "1"), (3, 3, "2"), (7, 3, "2")]
)
def test_a_new_topic_is_compacted_and_replicated_as_the_cluster_allows(
    brokers, replication, min_isr
):
    got_replication, config = new_topic_settings(brokers)
    assert got_replication == replication
    assert config["cleanup.policy"] == "compact"
    assert config["min.insync.replicas"] == min_isr


def test_connection_settings_are_the_producers_without_producer_only_ones():
    kafka = KafkaSettings(
        bootstrap_servers="k1:9092,k2:9092",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="cdc",
        sasl_password="s3cret-pw",
        producer={"compression.type": "zstd", "batch.size": 100_000},
    )
    conn = connection_config(kafka)
    assert conn["bootstrap.servers"] == "k1:9092,k2:9092"
    assert conn["sasl.password"] == "s3cret-pw" and conn["security.protocol"] == "SASL_SSL"
    for producer_only in ("acks", "enable.idempotence", "linger.ms", "compression.type"):
        assert producer_only in producer_config(kafka)
        assert producer_only not in conn
    assert "batch.size" not in conn and "queue.buffering.max.kbytes" not in conn


def test_redact_hides_secret_values_only():
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="cdc-user",
        sasl_password="s3cret-pw",
        producer={"sasl.oauthbearer.client.secret": "oauth-s3cret", "acks": "all"},
    )
    text = redact("auth failed for cdc-user with s3cret-pw, oauth-s3cret (acks all)", kafka)
    assert "s3cret-pw" not in text and "oauth-s3cret" not in text
    assert "acks all" in text and "cdc-user" in text


def test_the_name_defaults_to_the_topic_prefix():
    assert load_settings().connector_name == "cdc"
    assert load_settings(capture={"topic_prefix": "shop"}).connector_name == "shop"
    named = load_settings(name="shop-eu", capture={"topic_prefix": "shop"})
    assert named.connector_name == "shop-eu"
    with pytest.raises(ConfigError, match="set name"):
        _ = load_settings(capture={"topic_prefix": "a b"}).connector_name


def test_kafka_store_settings(monkeypatch):
    s = load_settings()
    assert (s.checkpoint.store, s.checkpoint.topic) == ("file", "binlog-tailer.offsets")
    monkeypatch.setenv("BINLOG_TAILER_CHECKPOINT__STORE", "kafka")
    monkeypatch.setenv("BINLOG_TAILER_CHECKPOINT__TOPIC", "ops.offsets")
    monkeypatch.setenv("BINLOG_TAILER_NAME", "orders")
    s = load_settings()
    assert (s.checkpoint.store, s.checkpoint.topic, s.connector_name) == (
        "kafka",
        "ops.offsets",
        "orders",
    )
    from binlog_tailer.service import checkpoint_store

    store = checkpoint_store(s)  # connects to nothing yet
    assert isinstance(store, KafkaCheckpointStore)
    assert (store.topic, store.name) == ("ops.offsets", "orders")
    assert store.describe() == "Kafka topic ops.offsets (key 'orders')"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("BINLOG_TAILER_NAME", "has space"), ("BINLOG_TAILER_CHECKPOINT__TOPIC", "..")],
)
def test_names_kafka_cannot_take_are_refused(monkeypatch, setting, value):
    monkeypatch.setenv(setting, value)
    with pytest.raises(ConfigError, match=setting):
        load_settings()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("action", ["load", "save", "reset", "check"])
def test_unreachable_kafka_is_a_clear_error_within_the_timeout_and_no_secret(action):
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{_free_port()}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="cdc",
        sasl_password="hunter2-s3cret",
    )
    store = KafkaCheckpointStore(kafka, "offsets", "n", timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(CheckpointError) as info:
        if action == "save":
            store.save(P2)
        else:
            getattr(store, action)()
    assert time.monotonic() - t0 < 5
    text = str(info.value)
    assert "not reachable within 1s" in text and "kafka.bootstrap_servers" in text
    assert "hunter2-s3cret" not in text
