"""Every common column type arrives as documented in binlog_tailer/mapping/encode.py, and equals
what SELECT returns for the same row."""

import base64
import datetime as dt
import decimal
import json

from tests.integration.stack import Stack, consume
from tests.integration.tailer import Tailer, master_position

DDL = """
CREATE TABLE everything (
  id INT PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, i24 MEDIUMINT, i32 INT, u32 INT UNSIGNED,
  i64 BIGINT, u64 BIGINT UNSIGNED,
  dec_big DECIMAL(65, 30), dec_small DECIMAL(5, 2),
  f FLOAT, d DOUBLE, b BIT(10), flag BOOLEAN,
  dt_date DATE, dt DATETIME, dt6 DATETIME(6), ts6 TIMESTAMP(6) NULL, tm TIME, tm3 TIME(3), yr YEAR,
  c CHAR(10), vc VARCHAR(100), tx TEXT, bin BINARY(4), vbin VARBINARY(10), bl BLOB,
  en ENUM('small', 'medium', 'large'), st SET('a', 'b', 'c', 'd'), js JSON
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

ROWS = [
    (
        1,
        -128,
        255,
        -32768,
        -8388608,
        -2147483648,
        4294967295,
        -9223372036854775808,
        18446744073709551615,
        "12345678901234567890123456789012345.123456789012345678901234567890",
        "-123.45",
        1.5,
        -2.2250738585072014e-308,
        0b1010000101,
        True,
        "2024-02-29",
        "1000-01-01 00:00:00",
        "9999-12-31 23:59:59.999999",
        "2038-01-19 03:14:07.499999",
        "-838:59:59",
        "12:34:56.789",
        2155,
        "fixed",
        "한글 and emoji 🎉 𝄞",
        "long text " * 50,
        b"\x00\x01\xfe\xff",
        b"\x00bin\x00",
        bytes(range(256)),
        "medium",
        "a,c,d",
        '{"k": [1, 2.5, "x", null, true], "n": {"m": "한"}}',
    ),
    (2,) + (None,) * 30,
]


def expected_from_select(name: str, v):
    """The documented JSON form of a value as PyMySQL's SELECT returns it."""
    if v is None:
        return None
    if name in ("dec_big", "dec_small"):
        assert isinstance(v, decimal.Decimal)
        return format(v, "f")
    if name == "b":
        return format(int.from_bytes(v, "big"), "010b")
    if name == "ts6":
        return v.isoformat() + "Z"  # the session below runs in UTC
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        total = v.total_seconds()
        sign = "-" if total < 0 else ""
        micros = abs(round(total * 1_000_000))
        s, frac = divmod(micros, 1_000_000)
        out = f"{sign}{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
        return out + (f".{frac:06d}" if frac else "")
    if name in ("bin", "vbin", "bl"):
        return base64.b64encode(v).decode()
    if name == "st":
        return v.split(",") if isinstance(v, str) else sorted(v)
    if name == "js":
        return json.loads(v)
    return v


def _roundtrip(stack: Stack, database: str, tailer: Tailer, ddl: str, table: str, rows: list):
    """Create `table`, insert `rows` while the tailer runs; (events' after images, SELECT rows)."""

    def session():
        return stack.admin(database, init_command="SET time_zone = '+00:00'")  # UTC session

    with session() as conn, conn.cursor() as cur:
        cur.execute(ddl)
    tailer.start()
    with session() as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES ({','.join(['%s'] * len(rows[0]))})", rows)
        cur.execute(f"SELECT * FROM {table} ORDER BY id")
        names = [d[0] for d in cur.description]
        selected = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0
    msgs = consume(stack.kafka_bootstrap, [tailer.topic(database, table)], expect=len(rows))
    return [json.loads(m.value())["after"] for m in msgs], selected


def test_every_type_matches_select(stack: Stack, database: str, tailer: Tailer):
    events, selected = _roundtrip(stack, database, tailer, DDL, "everything", ROWS)
    assert [e["id"] for e in events] == [1, 2]
    for event, row in zip(events, selected, strict=True):
        assert set(event) == set(row)
        for name, value in row.items():
            assert event[name] == expected_from_select(name, value), name
    # spot checks of the documented forms, independent of the helper above
    first = events[0]
    assert first["u64"] == 18446744073709551615
    assert first["dec_big"] == "12345678901234567890123456789012345.123456789012345678901234567890"
    assert first["dt6"] == "9999-12-31T23:59:59.999999"
    assert first["ts6"] == "2038-01-19T03:14:07.499999Z"
    assert first["tm"] == "-838:59:59"
    assert first["vc"] == "한글 and emoji 🎉 𝄞"
    assert first["st"] == ["a", "c", "d"]
    assert first["js"] == {"k": [1, 2.5, "x", None, True], "n": {"m": "한"}}
    assert first["b"] == "1010000101"


EDGE_DDL = """
CREATE TABLE edges (
  id INT PRIMARY KEY, yr YEAR, u32 INT UNSIGNED, u8 TINYINT UNSIGNED, u24 MEDIUMINT UNSIGNED,
  dt3 DATETIME(3), dt1 DATETIME(1), tm1 TIME(1), tm5 TIME(5), tm0 TIME, ts0 TIMESTAMP NULL,
  d100 DECIMAL(10, 0), d44 DECIMAL(4, 4), d189 DECIMAL(18, 9), d302 DECIMAL(30, 2),
  longchar CHAR(100), bin255 BINARY(255), tx TINYTEXT, mt MEDIUMTEXT, en ENUM('x', 'y'),
  bit1 BIT(1), bit64 BIT(64), f FLOAT, s SET('a')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

EDGE_ROWS = [
    (1, 1901, 4294967295, 255, 16777215, "2024-01-01 00:00:00.123", "2024-01-01 00:00:00.5",
     "-00:00:00.5", "-12:34:56.12345", "838:59:59", "1970-01-01 00:00:01",
     "-1234567890", "-0.1234", "123456789.123456789", "-1234567890123456789012345678.99",
     "ü" * 100, b"\xff" * 10, "tiny", "medium " * 1000, "y", 1, 2**64 - 1, -0.5, "a"),
    (2, 2000, 0, 0, 0, "2000-02-29 23:59:59.999", "2000-02-29 23:59:59.9",
     "00:00:00.1", "00:00:00.00001", "-838:59:59", "2038-01-19 03:14:07",
     "0", "0.0001", "-0.000000001", "0.00",
     "", b"", "", "", "x", 0, 0, 0.0, None),
]  # fmt: skip


def test_edge_values_of_binary_formats_match_select(stack: Stack, database: str, tailer: Tailer):
    events, selected = _roundtrip(stack, database, tailer, EDGE_DDL, "edges", EDGE_ROWS)
    for event, row in zip(events, selected, strict=True):
        for name, value in row.items():
            if name in ("bit1", "bit64"):
                width = 1 if name == "bit1" else 64
                expected = format(int.from_bytes(value, "big"), f"0{width}b")
            elif name == "ts0":
                expected = value.isoformat() + "Z"
            elif name == "bin255":
                expected = base64.b64encode(value).decode()
            elif name == "s":
                expected = value.split(",") if value else None
            elif name in ("dt3", "dt1", "tm1", "tm5", "tm0"):
                expected = expected_from_select("x", value)
            else:
                expected = expected_from_select(name, value)
                if isinstance(value, decimal.Decimal):
                    expected = format(value, "f")
            assert event[name] == expected, (name, event[name], value)


ONCE_WRONG_DDL = """
CREATE TABLE once_wrong (
  id INT PRIMARY KEY, f FLOAT, s SET('a', 'b'), l VARCHAR(20) CHARACTER SET latin1,
  u16 VARCHAR(10) CHARACTER SET utf16, u32 VARCHAR(10) CHARACTER SET utf32,
  uc2 VARCHAR(10) CHARACTER SET ucs2, js JSON
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


def test_values_that_once_differed_from_select(stack: Stack, database: str, tailer: Tailer):
    """Golden cases the generated-values test found: each once published wrongly or crashed."""
    big = "12345678901234567890.123"
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(ONCE_WRONG_DDL)
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        insert = "INSERT INTO once_wrong VALUES (%s, %s, %s, %s, %s, %s, %s, {})"
        # FLOAT once came out as its double expansion (0.10000000149011612), an empty SET as
        # null, MySQL latin1's five bytes that cp1252 leaves undefined as a crash
        cur.execute(
            insert.format("JSON_OBJECT('d', CAST(%s AS DECIMAL(30,3)))"),
            (1, 0.1, "", "\x81\x8d\x8f\x90\x9d é€", "한𝄞", "🎉a", "é", big),
        )
        cur.execute(insert.format("%s"), (2, 16777217, "a,b", "", "", "", "", "[1.10, -0.5, 1e-7]"))
        cur.execute("SELECT * FROM once_wrong ORDER BY id")
        names = [d[0] for d in cur.description]
        selected = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0
    raw = consume(stack.kafka_bootstrap, [tailer.topic(database, "once_wrong")], expect=2)
    events = [json.loads(m.value(), parse_float=decimal.Decimal)["after"] for m in raw]

    assert events[0]["f"] == decimal.Decimal("0.1") and selected[0]["f"] == 0.1
    assert events[1]["f"] == 16777216  # the stored float32 (SELECT shows it as 1.67772e+07)
    assert events[0]["s"] == [] and events[1]["s"] == ["a", "b"]
    # latin1 as MySQL maps it; utf16, utf32 and ucs2 are big-endian in the binlog
    for name in ("l", "u16", "u32", "uc2"):
        assert [e[name] for e in events] == [r[name] for r in selected], name
    assert events[0]["l"] == "\x81\x8d\x8f\x90\x9d é€"
    # every digit of a JSON number survives (MySQL: an opaque DECIMAL; MariaDB: JSON text)
    assert f'"d":{big}'.encode() in raw[0].value()
    first = decimal.Decimal("1.10") if stack.is_mariadb else decimal.Decimal("1.1")  # a double
    assert events[1]["js"] == [first, decimal.Decimal("-0.5"), decimal.Decimal("1e-7")]
