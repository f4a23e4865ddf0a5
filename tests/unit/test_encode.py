import datetime as dt
import decimal
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.mapping.encode import (
    COMPACT,
    MYSQL_JSON_SEPARATORS,
    RowEncoder,
    converter_for,
    dumps,
    dumps_floatless,
    holds_no_float,
)
from binlog_tailer.model import Column, TableSchema


def conv(type_code, value, **kw):
    return converter_for(Column("c", type_code, **kw))(value)


def test_decimal_keeps_every_digit_and_never_uses_exponents():
    assert conv(FIELD_TYPE.NEWDECIMAL, decimal.Decimal("12.50")) == "12.50"
    assert conv(FIELD_TYPE.NEWDECIMAL, decimal.Decimal("-0.000")) == "-0.000"
    assert conv(FIELD_TYPE.NEWDECIMAL, decimal.Decimal("1E+3")) == "1000"


def test_dates_and_times():
    assert conv(FIELD_TYPE.DATE, dt.date(2024, 2, 29)) == "2024-02-29"
    assert conv(FIELD_TYPE.DATETIME2, dt.datetime(2024, 2, 29, 13, 45)) == "2024-02-29T13:45:00"
    assert (
        conv(FIELD_TYPE.TIMESTAMP2, dt.datetime(2024, 1, 2, 3, 4, 5, 120000))
        == "2024-01-02T03:04:05.120000Z"
    )
    assert (
        conv(FIELD_TYPE.TIME2, dt.timedelta(hours=-838, minutes=-59, seconds=-59)) == "-838:59:59"
    )
    assert conv(FIELD_TYPE.TIME2, dt.timedelta(seconds=5, microseconds=1)) == "00:00:05.000001"


def test_binary_is_base64_and_text_stays_text():
    assert conv(FIELD_TYPE.BLOB, b"\x00\xff") == "AP8="
    assert conv(FIELD_TYPE.VARCHAR, "한글 🎉") == "한글 🎉"


def test_set_members_in_definition_order():
    assert conv(FIELD_TYPE.SET, {"d", "a"}, set_values=("a", "b", "c", "d")) == ["a", "d"]


def test_json_forms():
    tree = {"k": ["v", 1, decimal.Decimal("1.10")]}  # as binlog.mysql_json decodes it
    assert conv(FIELD_TYPE.JSON, tree) is tree
    assert conv(FIELD_TYPE.BLOB, '{"a": 1}', is_json=True) == {"a": 1}
    assert conv(FIELD_TYPE.BLOB, "not json", is_json=True) == "not json"
    # MariaDB's JSON text: every digit of its numbers survives
    assert conv(FIELD_TYPE.BLOB, '{"a": 1.10}', is_json=True) == {"a": decimal.Decimal("1.10")}


def test_dumps_writes_decimals_with_every_digit():
    value = {
        "d": decimal.Decimal("12345678901234567890.1230000000"),
        "l": [decimal.Decimal("-0.5")],
    }
    assert dumps(value) == b'{"d":12345678901234567890.1230000000,"l":[-0.5]}'
    assert (
        dumps({"k": "\u00e9", "n": None, "d": decimal.Decimal("1")})
        == '{"k":"é","n":null,"d":1}'.encode()
    )


def test_row_encoder_keeps_nulls_and_column_order():
    schema = TableSchema(
        "d", "t", (Column("id", FIELD_TYPE.LONG), Column("v", FIELD_TYPE.NEWDECIMAL)), ("id",)
    )
    enc = RowEncoder()
    assert enc.encode(schema, {"id": 1, "v": None}) == {"id": 1, "v": None}
    assert list(enc.encode(schema, {"v": decimal.Decimal("1.0"), "id": 2})) == ["id", "v"]
    assert enc.encode(schema, None) is None


def test_dumps_is_compact_utf8():
    assert dumps({"k": "한"}) == '{"k":"한"}'.encode()


_NO_FLOAT_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits: orjson refuses them
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False)  # JSON values' Decimals: refused too
)
_NO_FLOAT_VALUES = st.recursive(
    _NO_FLOAT_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities too: written as the standard library does
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=500, deadline=None)
@given(_JSON_VALUES, st.sampled_from([COMPACT, MYSQL_JSON_SEPARATORS, (",", ": ")]))
def test_dumps_writes_what_the_standard_library_writes(value, separators):
    expected = json.dumps(value, ensure_ascii=False, separators=separators).encode()
    assert dumps(value, separators) == expected


def test_dumps_refuses_what_is_not_json():
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"k": object()})


@settings(max_examples=500, deadline=None)
@given(_NO_FLOAT_VALUES)
def test_the_fast_writer_writes_the_same_bytes_as_the_standard_one_where_no_float_is(value):
    assert dumps_floatless(value) == dumps(value)


def test_tables_whose_rows_may_hold_floats_are_never_written_by_the_fast_writer():
    def schema(*columns):
        return TableSchema("d", "t", columns, ())

    assert holds_no_float(schema(Column("a", FIELD_TYPE.LONG), Column("b", FIELD_TYPE.VARCHAR)))
    for column in (
        Column("f", FIELD_TYPE.FLOAT),
        Column("f", FIELD_TYPE.DOUBLE),
        Column("j", FIELD_TYPE.JSON),
        Column("j", FIELD_TYPE.BLOB, is_json=True),  # MariaDB JSON
    ):
        assert not holds_no_float(schema(Column("a", FIELD_TYPE.LONG), column))
    # why: the two write some floats differently
    assert dumps([1e-05]) == b"[1e-05]" != dumps_floatless([1e-05])


@pytest.mark.parametrize("body", ["x" * 170, "y" * 200_000])
def test_a_written_value_holds_no_more_memory_than_its_bytes(body):
    """Records waiting for Kafka keep their values alive: a value must not hold the buffer it
    was written into (orjson's is 4 kB for a small value, up to twice a large one), or the
    memory bound under a slow Kafka breaks (tests/integration/test_slow_kafka.py)."""
    values = [{"id": i, "body": body} for i in range(200)]
    for write in (dumps_floatless, dumps):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [write(v) for v in values]
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        written = sum(map(len, kept))
        assert held < written * 1.5 + 100 * len(kept), (write.__name__, held, written)
