"""Which settings a topic is created with, and how a refused creation reads."""

from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError, KafkaException
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.errors import TopicNotCreated
from binlog_tailer.model import Column, Record, RowChange, TableSchema
from binlog_tailer.settings import TopicsSettings
from binlog_tailer.topics import TopicCreator, TopicSpec, create_topic

DATA = TableSchema("shop", "orders", (Column("id", FIELD_TYPE.LONG),), ("id",))
OUTBOX = TableSchema("shop", "outbox", (Column("id", FIELD_TYPE.LONG),), ("id",))


class FakeAdmin:
    def __init__(self, error: int | None = None) -> None:
        self.error = error
        self.created: list = []

    def create_topics(self, topics, request_timeout, operation_timeout):
        self.created += topics
        future: Future = Future()
        if self.error is None:
            future.set_result(None)
        else:
            future.set_exception(KafkaException(KafkaError(self.error, "scripted")))
        return {topics[0].topic: future}


def record(schema, key=b'{"id":1}', topic="t"):
    change = RowChange(schema, "c", None, {"id": 1}, "b.1", 4, 0, None, 1, 0)
    r = Record(topic, key, b"{}")
    r.origin = change
    return r


def creator(admin=None, **settings):
    return TopicCreator(
        TopicsSettings(**settings),
        lambda: admin or FakeAdmin(),
        lambda db, table: table == "outbox",
    )


def test_keyed_data_topics_are_compacted_when_chosen_outbox_and_own_topics_never():
    c = creator(partitions=3, replication_factor=1, config={"retention.ms": 1000, "x": True},
                compact_data_topics=True)  # fmt: skip
    base = {"retention.ms": "1000", "x": "true"}
    assert c.spec_for(record(DATA)) == TopicSpec(3, 1, base | {"cleanup.policy": "compact"})
    assert c.spec_for(record(DATA, key=None)).config == base  # a table without a primary key
    assert c.spec_for(record(OUTBOX)).config == base
    assert c.spec_for(Record("dead-letters", None, b"x")).config == base  # no origin
    assert creator().spec_for(record(DATA)) == TopicSpec(1, -1, {})


def test_create_passes_the_spec_and_returns_it():
    admin = FakeAdmin()
    c = creator(admin, partitions=4, config={"cleanup.policy": "delete"})
    assert c.create(record(DATA, topic="cdc.shop.orders")) == TopicSpec(
        4, -1, {"cleanup.policy": "delete"}
    )
    (new,) = admin.created
    assert (new.topic, new.num_partitions, new.replication_factor) == ("cdc.shop.orders", 4, -1)
    assert new.config == {"cleanup.policy": "delete"}


def test_a_topic_created_meanwhile_by_another_instance_is_fine():
    admin = FakeAdmin(KafkaError.TOPIC_ALREADY_EXISTS)
    assert create_topic(admin, "t", TopicSpec(), 5.0) is False
    assert creator(admin).create(record(DATA)) is None


@pytest.mark.parametrize(
    "code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED]
)
def test_no_create_permission_is_one_line_naming_the_topic_and_the_fix(code):
    with pytest.raises(TopicNotCreated) as info:
        create_topic(FakeAdmin(code), "cdc.shop.orders", TopicSpec(3, 2, {}), 5.0)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("not authorized to create Kafka topic cdc.shop.orders")
    assert "create it yourself (partitions 3, replication factor 2)" in text
    assert "grant binlog-tailer's principal Create" in text


def test_other_refusals_name_the_settings():
    with pytest.raises(TopicNotCreated, match=r"fix the topics\.\* settings"):
        create_topic(FakeAdmin(KafkaError.INVALID_REPLICATION_FACTOR), "t", TopicSpec(1, 9), 5.0)


def test_settings_refuse_zero_partitions_and_bad_topic_templates():
    from binlog_tailer.errors import ConfigError
    from binlog_tailer.settings import load_settings

    with pytest.raises(ConfigError, match="BINLOG_TAILER_TOPICS__PARTITIONS"):
        load_settings(topics={"partitions": 0})
    with pytest.raises(ConfigError, match=r"capture\.transaction_topic"):
        load_settings(capture={"transaction_topic": "{prefix}/{nope}"})
    with pytest.raises(ConfigError, match=r"heartbeat\.topic"):
        load_settings(heartbeat={"topic": "a b"})
    s = load_settings(capture={"topic_prefix": "shop", "transaction_metadata": True},
                      heartbeat={"interval_seconds": 5})  # fmt: skip
    assert (s.transaction_topic, s.heartbeat_topic) == ("shop.transaction", "shop.heartbeat")
