import json

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.errors import MappingError
from binlog_tailer.mapping.envelope import EnvelopeMapper, EnvelopeOptions
from binlog_tailer.model import Column, RowChange, TableSchema

SCHEMA = TableSchema(
    "shop",
    "orders",
    (Column("a", FIELD_TYPE.LONG), Column("b", FIELD_TYPE.LONG), Column("v", FIELD_TYPE.VARCHAR)),
    ("a", "b"),
)


def change(op, before, after, schema=SCHEMA):
    return RowChange(schema, op, before, after, "bin.000001", 400, 0, "0-1-5", 1, 1700000000000)


def test_update_envelope_key_topic_and_source():
    (rec,) = EnvelopeMapper(EnvelopeOptions()).map(
        change("u", {"a": 1, "b": 2, "v": "x"}, {"a": 1, "b": 2, "v": "y"})
    )
    assert rec.topic == "cdc.shop.orders"
    assert json.loads(rec.key) == {"a": 1, "b": 2}
    value = json.loads(rec.value)
    assert value["op"] == "u"
    assert value["before"]["v"] == "x" and value["after"]["v"] == "y"
    assert value["source"] | {"version": None} == {
        "connector": "binlog-tailer",
        "version": None,
        "server_id": 1,
        "file": "bin.000001",
        "pos": 400,
        "row": 0,
        "gtid": "0-1-5",
        "db": "shop",
        "table": "orders",
        "ts_ms": 1700000000000,
    }
    assert rec.timestamp_ms == 1700000000000


def test_delete_with_tombstone_keyed_by_before_image():
    recs = EnvelopeMapper(EnvelopeOptions(tombstones=True)).map(
        change("d", {"a": 1, "b": 2, "v": "x"}, None)
    )
    assert [json.loads(r.key) for r in recs] == [{"a": 1, "b": 2}] * 2
    assert recs[1].value is None


def test_table_without_primary_key_has_no_key_and_no_tombstone():
    schema = TableSchema("shop", "log", SCHEMA.columns, ())
    recs = EnvelopeMapper(EnvelopeOptions(tombstones=True)).map(
        change("d", {"a": 1, "b": 2, "v": "x"}, None, schema)
    )
    assert len(recs) == 1 and recs[0].key is None


def test_topic_template():
    m = EnvelopeMapper(EnvelopeOptions(topic_prefix="p", topic_template="{db}-{table}-{prefix}"))
    assert m.topic_for("d", "t") == "d-t-p"
    with pytest.raises(MappingError, match="unknown field"):
        EnvelopeMapper(EnvelopeOptions(topic_template="{nope}")).topic_for("d", "t")


@pytest.mark.parametrize("tombstones", [False, True])
def test_an_update_of_the_primary_key_is_a_delete_and_a_create(tombstones):
    records = EnvelopeMapper(EnvelopeOptions(tombstones=tombstones)).map(
        change("u", {"a": 1, "b": 2, "v": "x"}, {"a": 1, "b": 3, "v": "x"})
    )
    shape = [(json.loads(r.key), r.value and json.loads(r.value)["op"]) for r in records]
    old, new = {"a": 1, "b": 2}, {"a": 1, "b": 3}
    assert shape == [(old, "d"), *([(old, None)] if tombstones else []), (new, "c")]
    delete, create = json.loads(records[0].value), json.loads(records[-1].value)
    assert delete["before"]["b"] == 2 and delete["after"] is None
    assert create["before"] is None and create["after"]["b"] == 3


def test_a_table_with_a_double_column_is_written_as_the_standard_library_writes_floats():
    schema = TableSchema(
        "shop", "m", (Column("id", FIELD_TYPE.LONG), Column("x", FIELD_TYPE.DOUBLE)), ("id",)
    )
    mapper = EnvelopeMapper(EnvelopeOptions())
    (rec,) = mapper.map(change("c", None, {"id": 1, "x": 1e-05}, schema))
    assert b'"x":1e-05' in rec.value
    (rec,) = mapper.map(change("c", None, {"id": 2, "v": "é", "a": 1, "b": 2}, SCHEMA))
    assert b'"v":"\xc3\xa9"' in rec.value and rec.key == b'{"a":1,"b":2}'
