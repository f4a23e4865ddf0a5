import dataclasses
import datetime as dt
import decimal
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.errors import BadRecord, MappingError
from binlog_tailer.mapping.dead_letter import DeadLetters
from binlog_tailer.mapping.outbox import OutboxMapper, OutboxOptions
from binlog_tailer.model import Column, RowChange, TableSchema
from binlog_tailer.service import outbox_options
from binlog_tailer.settings import OutboxSettings

COLS = ("id", "aggregate_type", "aggregate_id", "event_type", "payload", "created_at", "tenant")
SCHEMA = TableSchema("shop", "outbox", tuple(Column(c, FIELD_TYPE.VARCHAR) for c in COLS), ("id",))
JSON_SCHEMA = TableSchema(  # MySQL: payload JSON, decoded by the binlog reader to a value
    "shop",
    "outbox",
    tuple(Column(c, FIELD_TYPE.JSON if c == "payload" else FIELD_TYPE.VARCHAR) for c in COLS),
    ("id",),
)


def row(**over):
    base = {
        "id": "e-1",
        "aggregate_type": "order",
        "aggregate_id": "42",
        "event_type": "OrderPlaced",
        "payload": '{"total": "9.90"}',
        "created_at": dt.datetime(2024, 1, 2, 3, 4, 5, 600000),
        "tenant": "acme",
    }
    return base | over


def insert(values, op="c", schema=SCHEMA):
    after = values if op != "d" else None
    before = values if op != "c" else None
    return RowChange(schema, op, before, after, "bin.000002", 777, 0, "0-1-9", 1, 1_700_000_000_000)


def test_insert_becomes_one_routed_keyed_event_with_headers():
    (rec,) = OutboxMapper(OutboxOptions(header_columns=("tenant",))).map(insert(row()))
    assert rec.topic == "outbox.event.order"
    assert rec.key == b"42"
    assert rec.value == b'{"total": "9.90"}'  # as stored
    assert dict(rec.headers) == {
        "event_id": "e-1",
        "event_type": "OrderPlaced",
        "aggregate_type": "order",
        "binlog_position": "bin.000002:777",
        "gtid": "0-1-9",
        "tenant": "acme",
    }
    assert rec.timestamp_ms == 1704164645600  # created_at read as UTC


def test_binary_uuid_ids_mysql_json_payloads_and_envelope():
    eid = uuid.uuid4()
    m = OutboxMapper(OutboxOptions(envelope=True, topic_template="{aggregate_type}.{event_type}"))
    (rec,) = m.map(insert(row(id=eid.bytes, payload={"total": 1}), schema=JSON_SCHEMA))
    assert rec.topic == "order.OrderPlaced"
    assert dict(rec.headers)["event_id"] == str(eid)
    value = json.loads(rec.value)
    assert value["payload"] == {"total": 1}
    assert value["id"] == str(eid) and value["aggregate_id"] == "42"


def test_mysql_json_payloads_are_published_as_select_shows_them():
    m = OutboxMapper(OutboxOptions())
    payloads = [{"a": [1, "한"], "d": decimal.Decimal("1.10")}, "just text", 7, None]
    values = [m.map(insert(row(payload=p), schema=JSON_SCHEMA))[0].value for p in payloads]
    assert values == [b'{"a": [1, "\xed\x95\x9c"], "d": 1.10}', b'"just text"', b"7", None]


def test_shard_key_overrides_the_key_and_null_payload_is_a_tombstone():
    m = OutboxMapper(OutboxOptions(shard_key_column="tenant"))
    (rec,) = m.map(insert(row(payload=None)))
    assert rec.key == b"acme" and rec.value is None


def test_deletes_are_ignored_and_updates_follow_the_setting(caplog):
    assert OutboxMapper(OutboxOptions()).map(insert(row(), op="d")) == []
    m = OutboxMapper(OutboxOptions())
    assert m.map(insert(row(), op="u")) == [] and m.updates_seen == 1
    assert "UPDATE of an outbox row" in caplog.text
    assert OutboxMapper(OutboxOptions(on_update="ignore")).map(insert(row(), op="u")) == []
    with pytest.raises(MappingError, match="must only be inserted"):
        OutboxMapper(OutboxOptions(on_update="error")).map(insert(row(), op="u"))


@pytest.mark.parametrize(
    ("values", "options", "reason"),
    [
        (row(payload="{oops"), OutboxOptions(), "invalid_json"),
        (row(aggregate_id=None), OutboxOptions(), "missing_value"),
        (row(aggregate_type="a b"), OutboxOptions(), "invalid_topic"),
        (
            row(),
            OutboxOptions(allowed_topics=("outbox.event.user",)),
            "topic_not_allowed",
        ),
    ],
)
def test_bad_rows_carry_reason_original_bytes_and_event_id(values, options, reason):
    with pytest.raises(BadRecord) as info:
        OutboxMapper(options).map(insert(values))
    assert info.value.reason == reason
    assert info.value.event_id == "e-1"
    assert info.value.original == (values["payload"] or "").encode()


def test_raw_payload_format_skips_json_check():
    (rec,) = OutboxMapper(OutboxOptions(payload_format="raw")).map(insert(row(payload="{oops")))
    assert rec.value == b"{oops"


def test_a_table_without_the_configured_columns_is_a_shape_error():
    schema = TableSchema("shop", "outbox", (Column("id", FIELD_TYPE.VARCHAR),), ("id",))
    with pytest.raises(MappingError, match="has no column") as info:
        OutboxMapper(OutboxOptions()).map(insert({"id": "x"}, schema=schema))
    assert not isinstance(info.value, BadRecord)


def test_dead_letter_record_truncates_and_names_everything():
    dl = DeadLetters("dlq", max_value_bytes=4)
    rec = dl.record(insert(row()), "rejected", "too big", b"0123456789", event_id="e-1")
    assert rec.topic == "dlq" and rec.value == b"0123"
    h = dict(rec.headers)
    assert h["dlq.truncated"] == "true" and h["dlq.original_size"] == "10"
    assert h["dlq.position"] == "bin.000002:777" and h["event_id"] == "e-1"
    assert h["dlq.db"] == "shop" and h["dlq.table"] == "outbox" and h["dlq.reason"] == "rejected"


def test_outbox_settings_become_the_mapper_options():
    settings = OutboxSettings(
        tables=["shop.outbox"], id_column="i", aggregate_type_column="at",
        aggregate_id_column="ai", event_type_column="et", payload_column="p",
        timestamp_column=None, shard_key_column="sk", header_columns=["h1", "h2"],
        topic_template="{db}.{aggregate_type}", allowed_topics=["shop.order"],
        payload_format="raw", envelope=True, on_update="error",
    )  # fmt: skip
    options = outbox_options(settings)
    for f in dataclasses.fields(OutboxOptions):
        value = getattr(settings, f.name)
        assert getattr(options, f.name) == (tuple(value) if isinstance(value, list) else value)
        assert getattr(options, f.name) != f.default, f"{f.name}: set a non-default above"
    assert outbox_options(OutboxSettings()) == OutboxOptions()  # the same defaults


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _std_json_accepts(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        _JSON_VALUES.map(lambda v: json.dumps(v).encode()),  # NaN, Infinity, big integers too
        _JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-16")),
        st.binary(max_size=40),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"\xef\xbb\xbf{}", b'"\\ud800"', b"[1e400]", b"NaN", b" 1 ", b"{oops"]),
    )
)
def test_a_text_payload_is_refused_exactly_when_the_standard_json_parser_refuses_it(payload):
    """The fast check (orjson) decides only what it accepts; anything it refuses is decided by
    json.loads, so the accepted set is json.loads's, no more and no less."""
    mapper = OutboxMapper(OutboxOptions())
    values = row(payload=payload)
    if _std_json_accepts(payload):
        (rec,) = mapper.map(insert(values, schema=SCHEMA))
        assert rec.value == payload
    else:
        with pytest.raises(BadRecord) as info:
            mapper.map(insert(values, schema=SCHEMA))
        assert info.value.reason == "invalid_json"
        assert info.value.original == payload


def test_the_envelope_keeps_every_digit_of_a_big_integer_in_the_payload():
    big = b'{"n": 123456789012345678901234567890}'
    mapper = OutboxMapper(OutboxOptions(envelope=True))
    (rec,) = mapper.map(insert(row(payload=big), schema=SCHEMA))
    assert json.loads(rec.value)["payload"] == {"n": 123456789012345678901234567890}


def test_a_topic_remembered_for_one_table_is_not_used_for_another():
    mapper = OutboxMapper(OutboxOptions(topic_template="{db}.{table}.{aggregate_type}"))
    other = dataclasses.replace(SCHEMA, db="crm")
    (a,) = mapper.map(insert(row(), schema=SCHEMA))
    (b,) = mapper.map(insert(row(), schema=other))
    (c,) = mapper.map(insert(row(), schema=SCHEMA))
    assert (a.topic, b.topic, c.topic) == ("shop.outbox.order", "crm.outbox.order", a.topic)
    with pytest.raises(BadRecord) as info:  # a refused topic is refused every time
        mapper.map(insert(row(aggregate_type="a b"), schema=SCHEMA))
    with pytest.raises(BadRecord):
        mapper.map(insert(row(aggregate_type="a b"), schema=SCHEMA))
    assert info.value.reason == "invalid_topic"
