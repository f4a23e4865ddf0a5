"""The local Kafka broker is real: plain and transactional produce, read_committed reads."""

from confluent_kafka import Producer

from tests.integration.stack import consume, unique_name


def test_produce_and_consume_roundtrip(kafka_bootstrap: str, new_topic):
    topic = new_topic()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic, key=f"k{i % 3}", value=f"v{i}".encode())
    assert producer.flush(30) == 0
    got = consume(kafka_bootstrap, [topic], expect=10)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(10)]


def test_read_committed_sees_only_the_committed_transaction(kafka_bootstrap: str, new_topic):
    topic = new_topic()
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("tx")}
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, value=b"committed-after-abort")
    producer.commit_transaction(30)

    # The aborted record sits between the two committed ones: had it been visible, it would
    # be the second record read.
    got = consume(kafka_bootstrap, [topic], expect=2)
    assert [m.value() for m in got] == [b"committed", b"committed-after-abort"]

    # read_uncommitted does see the aborted record: the filter above is the broker's doing.
    raw = consume(kafka_bootstrap, [topic], expect=3, isolation="read_uncommitted")
    assert b"aborted" in [m.value() for m in raw]
