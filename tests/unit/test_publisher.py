"""The publisher against a stand-in producer: batch sizes follow topic limits, and a refused
batch dead-letters only a record that was alone in it."""

from typing import ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException

from binlog_tailer import publisher as publisher_module
from binlog_tailer.errors import PublishError, PublishInterrupted
from binlog_tailer.model import Record
from binlog_tailer.publisher import BATCH_MARGIN, KafkaPublisher, _record_bytes
from binlog_tailer.settings import KafkaSettings


class FakeProducer:
    made: ClassVar[list["FakeProducer"]] = []

    def __init__(self, config):
        self.config = config
        self.reports: list = []  # on_delivery callbacks, in produce order
        self.outstanding = 0
        FakeProducer.made.append(self)

    def produce(self, topic, value=None, key=None, headers=None, timestamp=0, on_delivery=None):
        self.reports.append(on_delivery)
        self.outstanding += 1

    def flush(self, timeout):
        for report in self.reports:
            report(None, None)
        self.reports.clear()
        self.outstanding = 0
        return 0

    def poll(self, timeout):
        return 0


@pytest.fixture
def made(monkeypatch):
    FakeProducer.made = []
    monkeypatch.setattr(publisher_module, "Producer", FakeProducer)
    return FakeProducer.made


def _publisher(limits: dict[str, int | None], **kafka) -> tuple[KafkaPublisher, list[int]]:
    acked: list[int] = []
    p = KafkaPublisher(KafkaSettings(**kafka), on_ack=acked.append)
    p._topic_config = lambda r: (limits[r.topic], r.topic.startswith("compact"))  # type: ignore[method-assign]
    return p, acked


def _record(topic: str, size: int) -> Record:
    return Record(topic, b"k", b"v" * (size - 1))


def test_a_topic_with_a_small_limit_shrinks_batches_after_what_is_in_flight(made):
    p, acked = _publisher({"big": 1_048_588, "small": 20_000})
    p.publish(_record("big", 100), 1)
    assert len(made) == 1 and "batch.size" not in made[0].config  # the default 1 MB fits
    p.publish(_record("small", 100), 2)
    # the first producer delivered everything before a second one took over
    assert acked == [1] and made[0].outstanding == 0
    assert len(made) == 2 and made[1].config["batch.size"] == 20_000 - BATCH_MARGIN
    assert made[1].config["enable.idempotence"] is True
    p.publish(_record("big", 100), 3)
    assert len(made) == 2  # learned once per topic; a larger limit changes nothing


def test_a_smaller_batch_size_of_the_settings_is_kept(made):
    p, _ = _publisher({"small": 20_000}, producer={"batch.size": 5_000})
    p.publish(_record("small", 100), 1)
    assert len(made) == 1 and made[0].config["batch.size"] == 5_000


def _refuse(producer: FakeProducer, code: int) -> None:
    for report in producer.reports:
        report(KafkaError(code), None)
    producer.reports.clear()


def test_a_record_too_large_to_share_a_batch_is_rejected_with_the_topic_limit(made):
    p, _ = _publisher({"small": 20_000})
    p.publish(_record("small", 30_000), 7)
    _refuse(made[-1], KafkaError.MSG_SIZE_TOO_LARGE)
    p.poll()  # no failure
    (rejected,) = p.take_rejected()
    assert rejected.seq == 7
    assert "30000-byte record for topic 'small' (max.message.bytes 20000)" in str(rejected)


def test_a_record_that_may_have_shared_a_refused_batch_stops_instead_of_dead_lettering(made):
    p, _ = _publisher({"small": 20_000})
    for seq in range(3):
        p.publish(_record("small", 3_000), seq)
    _refuse(made[-1], KafkaError.MSG_SIZE_TOO_LARGE)
    assert p.take_rejected() == []
    with pytest.raises(PublishError, match="must have been lowered since"):
        p.poll()


def test_unknown_limit_the_stop_names_batch_size(made):
    p, _ = _publisher({"t": None})
    p.publish(_record("t", 3_000), 1)
    _refuse(made[-1], KafkaError.MSG_SIZE_TOO_LARGE)
    with pytest.raises(PublishError, match=r"set kafka\.producer batch\.size"):
        p.poll()


def test_record_bytes_count_key_value_and_headers():
    r = Record("t", b"key", b"value", [("h", "é"), ("n", None), ("b", b"xy")])
    assert _record_bytes(r) == 3 + 5 + (1 + 2) + 1 + (1 + 2)


def test_a_record_without_a_key_is_refused_alone_before_it_reaches_a_compacted_topic(made):
    from binlog_tailer.errors import RecordRejected

    p, acked = _publisher({"compacted": 1_048_588, "plain": 1_048_588})
    p.publish(Record("plain", None, b"v"), 1)  # fine where nothing is compacted
    with pytest.raises(RecordRejected, match=r"is compacted .* takes no record without a key"):
        p.publish(Record("compacted", None, b"v"), 2)
    p.publish(Record("compacted", b"k", b"v"), 3)
    p.flush(1)
    assert acked == [1, 3]


def test_an_invalid_batch_stops_instead_of_dead_lettering_its_records(made):
    p, _ = _publisher({"t": 1_048_588})
    p.publish(_record("t", 100), 1)
    p.publish(_record("t", 100), 2)
    invalid = KafkaError(KafkaError.INVALID_RECORD)
    for report in made[-1].reports:
        report(invalid, None)
    assert p.take_rejected() == []
    with pytest.raises(PublishError, match="refuses a whole batch for one invalid record"):
        p.poll()


@pytest.fixture
def publisher_without_broker():
    """A producer whose queue holds one record, and nothing to deliver to (port 1 refuses)."""
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:1", producer={"queue.buffering.max.messages": 1}
    )
    pub = KafkaPublisher(settings, on_ack=lambda seq: None)
    pub._topic_config = lambda r: (None, False)  # type: ignore[method-assign]
    yield pub
    pub._producer.purge()
    pub._producer.flush(0)


def never_asked() -> bool:
    raise AssertionError("asked to give up while the queue had room")


def test_a_full_queue_waits_until_asked_to_give_up_and_does_not_send_the_record(
    publisher_without_broker,
):
    publisher_without_broker.publish(Record("t", None, b"first"), 0, never_asked)
    asked = []

    def give_up() -> bool:  # asked at each attempt: a stop ends the wait within one poll
        asked.append(1)
        return len(asked) == 3

    with pytest.raises(PublishInterrupted) as raised:
        publisher_without_broker.publish(Record("t", None, b"second"), 1, give_up)
    assert raised.value.seq == 1 and raised.value.record.value == b"second"
    assert len(publisher_without_broker._producer) == 1  # only the first is queued


class FencedProducer(FakeProducer):
    """A producer fenced meanwhile (another instance took over its transactional.id, or Kafka
    aborted its transaction while the process was paused): librdkafka refuses every call
    with "Erroneous state", and reports the fatal cause to the error callback at the next
    poll."""

    def produce(self, *args, **kw):
        raise KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))

    reported = True  # poll reports the fatal error to error_cb (else: raises it)

    def begin_transaction(self):
        raise KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))

    def abort_transaction(self, timeout):  # ending the transaction finds it fenced
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))

    polls = 0

    def poll(self, timeout):
        self.polls += 1
        if self.polls < 3:  # the report follows the failed call a moment later
            return 0
        fenced = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
        if FencedProducer.reported:
            self.config["error_cb"](fenced)
            return 0
        raise KafkaException(fenced)  # confluent-kafka 2.x: poll raises a fatal error


@pytest.mark.parametrize("reported", [True, False])
@pytest.mark.parametrize("timed_out_first", [False, True])
@pytest.mark.parametrize("call", ["publish", "begin", "commit", "poll"])
def test_a_fenced_producer_stops_with_the_fenced_line_not_an_erroneous_state(
    monkeypatch, call: str, timed_out_first: bool, reported: bool
):
    monkeypatch.setattr(publisher_module, "Producer", FencedProducer)
    monkeypatch.setattr(FencedProducer, "reported", reported)
    p = KafkaPublisher(
        KafkaSettings(), on_ack=lambda seq: None, transactional_id="binlog-tailer.shop",
        name="shop",
    )  # fmt: skip
    p._topic_config = lambda r: (None, False)  # type: ignore[method-assign]
    if timed_out_first:  # paused past the transaction timeout: its records timed out first
        p._failure = PublishError("Kafka did not accept a record for topic 't': timed out")
    with pytest.raises(PublishError) as raised:
        if call == "publish":
            p.publish(Record("t", b"k", b"v"), 1)
        elif call == "begin":
            p.begin()
        elif call == "poll":
            for _ in range(5):  # served as usual, until the failure is reported
                p.poll(0)
        else:
            p.commit(Record("offsets", b"shop", b"{}"), timeout=1)
    text = str(raised.value)
    assert text.startswith("fenced by a newer instance of shop: "), text
    assert "Erroneous state" not in text and "was aborted" not in text


def _kafka_away(answers: list) -> object:
    """A _topic_config that raises (Kafka not answering) until `answers` yields a result."""

    def topic_config(record):
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return topic_config


@pytest.mark.parametrize(
    "away",
    [TimeoutError(), KafkaException(KafkaError(KafkaError._TRANSPORT))],
    ids=["request timed out", "transport"],
)
def test_a_new_topic_waits_for_kafka_to_answer_before_its_first_record_is_sent(made, away):
    p = KafkaPublisher(KafkaSettings(), on_ack=lambda seq: None)
    p._serve = lambda timeout: None  # type: ignore[method-assign]
    p._topic_config = _kafka_away([away, away, (50_000, False)])  # type: ignore[method-assign]
    p.publish(_record("new", 100), 1)
    assert made[-1].outstanding == 1  # sent once Kafka answered, with its limit learnt
    assert p._limits["new"] == 50_000


def test_a_new_topic_gives_up_waiting_for_kafka_after_the_delivery_timeout(made, monkeypatch):
    p = KafkaPublisher(KafkaSettings(delivery_timeout_ms=1000), on_ack=lambda seq: None)
    clock = iter(range(0, 100, 1))  # one second per look at the clock
    monkeypatch.setattr(publisher_module.time, "monotonic", lambda: float(next(clock)))
    p._serve = lambda timeout: None  # type: ignore[method-assign]
    p._topic_config = _kafka_away([TimeoutError()] * 5)  # type: ignore[method-assign]
    with pytest.raises(PublishError, match=r"did not answer within 1000 ms .* topic 'new'"):
        p.publish(_record("new", 100), 1)
    assert made[-1].outstanding == 0


def test_a_stop_ends_the_wait_for_kafka_about_a_new_topic(made):
    p = KafkaPublisher(KafkaSettings(), on_ack=lambda seq: None)
    p._serve = lambda timeout: None  # type: ignore[method-assign]
    p._topic_config = _kafka_away([TimeoutError()] * 5)  # type: ignore[method-assign]
    with pytest.raises(PublishInterrupted):
        p.publish(_record("new", 100), 1, lambda: True)
    assert made[-1].outstanding == 0


def test_a_refusal_to_describe_a_topic_is_not_waited_for(made):
    p = KafkaPublisher(KafkaSettings(), on_ack=lambda seq: None)
    denied = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    p._topic_config = _kafka_away([denied])  # type: ignore[method-assign]
    with pytest.raises(KafkaException):  # not the wait's business: _topic_config's own
        p.publish(_record("new", 100), 1)
