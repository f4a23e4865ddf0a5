"""The Kafka publisher's wait for room in a full local queue (a real producer, no broker)."""

import pytest

from binlog_tailer.errors import PublishInterrupted
from binlog_tailer.model import Record
from binlog_tailer.publisher import KafkaPublisher
from binlog_tailer.settings import KafkaSettings


@pytest.fixture
def publisher():
    """A producer whose queue holds one record, and nothing to deliver to (port 1 refuses)."""
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:1", producer={"queue.buffering.max.messages": 1}
    )
    pub = KafkaPublisher(settings, on_ack=lambda seq: None)
    yield pub
    pub._producer.purge()
    pub._producer.flush(0)


def never_asked() -> bool:
    raise AssertionError("asked to give up while the queue had room")


def test_a_full_queue_waits_until_asked_to_give_up_and_does_not_send_the_record(publisher):
    publisher.publish(Record("t", None, b"first"), 0, never_asked)
    asked = []

    def give_up() -> bool:  # asked at each attempt: a stop ends the wait within one poll
        asked.append(1)
        return len(asked) == 3

    with pytest.raises(PublishInterrupted) as raised:
        publisher.publish(Record("t", None, b"second"), 1, give_up)
    assert raised.value.seq == 1 and raised.value.record.value == b"second"
    assert len(publisher._producer) == 1  # only the first is queued
