"""The polling relay's pure parts: its statements, rows as row changes, lock names, settings."""

import datetime as dt

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.errors import ConfigError
from binlog_tailer.mapping.dead_letter import DeadLetters
from binlog_tailer.mapping.outbox import OutboxMapper, OutboxOptions
from binlog_tailer.relay.lock import lock_name
from binlog_tailer.relay.table import RelayTable
from binlog_tailer.settings import load_settings

DESCRIPTION = [
    ("seq", FIELD_TYPE.LONGLONG),
    ("id", FIELD_TYPE.STRING),
    ("aggregate_type", FIELD_TYPE.VAR_STRING),
    ("aggregate_id", FIELD_TYPE.VAR_STRING),
    ("event_type", FIELD_TYPE.VAR_STRING),
    ("payload", FIELD_TYPE.JSON),
    ("created_at", FIELD_TYPE.DATETIME),
]


def test_reads_unsent_rows_in_sequence_order_and_removes_exactly_those_read():
    delete = RelayTable("shop", "outbox", OutboxOptions())
    assert delete.select_batch(500) == (
        "SELECT `seq`, `id`, `aggregate_type`, `aggregate_id`, `event_type`, `payload`,"
        " `created_at` FROM `shop`.`outbox` ORDER BY `seq` LIMIT 500"
    )
    assert delete.remove(3) == "DELETE FROM `shop`.`outbox` WHERE `seq` IN (%s, %s, %s)"
    mark = RelayTable("shop", "outbox", OutboxOptions(), sent_column="sent_at")
    assert " WHERE `sent_at` IS NULL ORDER BY `seq` LIMIT 10" in mark.select_batch(10)
    assert mark.remove(2) == (
        "UPDATE `shop`.`outbox` SET `sent_at` = CURRENT_TIMESTAMP(6)"
        " WHERE `seq` IN (%s, %s) AND `sent_at` IS NULL"
    )


def test_never_reads_past_a_high_water_mark():
    """A smaller seq may commit later: the query must not filter by the last seq read."""
    sql = RelayTable("d", "o", OutboxOptions()).select_batch(100)
    assert ">" not in sql and "seq` >" not in sql


def test_columns_follow_the_outbox_settings_without_repeats():
    options = OutboxOptions(
        timestamp_column=None, shard_key_column="tenant", header_columns=("tenant", "trace")
    )
    assert RelayTable("d", "o", options, "n").columns() == [
        "n", "id", "aggregate_type", "aggregate_id", "event_type", "payload", "tenant", "trace",
    ]  # fmt: skip


def test_a_row_becomes_the_insert_the_binlog_path_would_publish():
    table = RelayTable("shop", "outbox", OutboxOptions())
    schema = table.schema(DESCRIPTION)
    payload = schema.columns[5]
    assert payload.type_code == FIELD_TYPE.VAR_STRING  # JSON arrives as its SELECT text
    created = dt.datetime(2026, 11, 25, 9, 0, 0, 123000)
    change = table.change(schema, (42, "e-1", "order", "7", "Made", '{"a": 1}', created))
    assert (change.op, change.file, change.pos, change.before) == ("c", "", 42, None)
    assert change.ts_ms == int(created.replace(tzinfo=dt.UTC).timestamp() * 1000)
    (record,) = OutboxMapper(OutboxOptions()).map(change)
    assert (record.topic, record.key, record.value) == ("outbox.event.order", b"7", b'{"a": 1}')
    headers = dict(record.headers)
    assert headers["outbox_seq"] == "42" and "binlog_position" not in headers
    assert record.timestamp_ms == change.ts_ms


def test_a_dead_letter_of_a_relayed_row_names_its_sequence():
    table = RelayTable("shop", "outbox", OutboxOptions())
    change = table.change(table.schema(DESCRIPTION), (9, "e", "o", "1", "Made", "{", None), 5)
    headers = dict(DeadLetters("dead").record(change, "invalid_json", "bad", b"{").headers)
    assert headers["dlq.outbox_seq"] == "9" and "dlq.position" not in headers
    assert change.ts_ms == 5  # no timestamp: the time it was read


def test_lock_names_fit_mysqls_limit_and_stay_distinct():
    assert lock_name("orders") == "binlog-tailer.relay.orders"
    long_a, long_b = lock_name("a" * 200), lock_name("a" * 199 + "b")
    assert len(long_a) <= 64 and len(long_b) <= 64 and long_a != long_b


@pytest.mark.parametrize(
    ("outbox", "extra", "message"),
    [
        ({}, {}, "needs outbox.tables"),
        ({"tables": ["shop.*"]}, {}, "no patterns.*: shop.*"),
        ({"tables": ["outbox"]}, {}, "database.: outbox"),
        (
            {"tables": ["shop.outbox"]},
            {"capture": {"include": ["shop.orders"]}},
            "outbox tables only",
        ),
        ({"tables": ["a.o"]}, {"heartbeat": {"interval_seconds": 5}}, "binlog path only"),
        ({"tables": ["a.o"]}, {"capture": {"transaction_metadata": True}}, "binlog path only"),
        (
            {"tables": ["shop.outbox"]},
            {"delivery": "exactly_once", "checkpoint": {"store": "kafka"}},
            "publishes at least once",
        ),
    ],
)
def test_poll_settings_that_cannot_work_are_refused(outbox, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(outbox={"source": "poll", **outbox}, **extra)


def test_poll_settings_that_work():
    s = load_settings(outbox={"source": "poll", "tables": ["shop.outbox", "billing.outbox"]})
    assert (s.relay.after_publish, s.relay.batch_size, s.relay.sequence_column) == (
        "delete", 500, "seq",
    )  # fmt: skip
