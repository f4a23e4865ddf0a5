"""Type conformance by properties: generated values of every column type, on each server.

Hypothesis generates rows (edges included: empty, zero, min, max, padding, NULL); each batch
is inserted in one transaction while the service runs, read back with SELECT, and every
published value must be what the README's type table says of the SELECT value
(`expected_from_select`). A failing value shrinks to a minimal row.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import itertools
import json
import struct
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.integration.stack import Stack, consume, unique_name, wait_until
from tests.integration.tailer import Tailer

# Examples (one transaction each) per server, of 9-13 rows: about 2,200 rows per server (at
# least 2,000 is checked). More rows per example would exceed what Hypothesis draws per
# example and shrink them to NULLs.
BATCHES = 200
MIN_ROWS = 2_000


@dataclass(frozen=True)
class Col:
    name: str
    ddl: str
    values: st.SearchStrategy[Any]
    kind: str  # how expected_from_select reads the SELECT value
    placeholder: str = "%s"
    distinct: int = 30  # distinct values a whole run must have inserted (its domain if small)


def _ints(bits: int, unsigned: bool) -> st.SearchStrategy[int]:
    lo, hi = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return st.one_of(st.sampled_from([lo, hi, 0, 1, -1 if lo else hi - 1]), st.integers(lo, hi))


def _decimals(precision: int, scale: int) -> st.SearchStrategy[decimal.Decimal]:
    most = 10**precision - 1
    unscaled = st.one_of(st.sampled_from([0, most, -most, 1, -1]), st.integers(-most, most))
    exact = decimal.Context(prec=100)
    return unscaled.map(lambda n: decimal.Decimal(n).scaleb(-scale, context=exact))


def _aligned_micros(fsp: int) -> st.SearchStrategy[int]:
    step = 10 ** (6 - fsp)
    return st.integers(0, 10**fsp - 1).map(lambda k: k * step)


def _datetimes(fsp: int, lo: dt.datetime, hi: dt.datetime) -> st.SearchStrategy[dt.datetime]:
    seconds = st.datetimes(lo, hi).map(lambda d: d.replace(microsecond=0))
    return st.builds(lambda d, us: d.replace(microsecond=us), seconds, _aligned_micros(fsp))


def _times(fsp: int) -> st.SearchStrategy[str]:
    limit = 838 * 3600 + 59 * 60 + 59

    def text(secs: int, us: int, negative: bool) -> str:
        if secs == limit:
            us = 0  # TIME's range ends at 838:59:59.000000
        sign = "-" if negative and (secs or us) else ""
        return f"{sign}{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}.{us:06d}"

    secs = st.one_of(st.sampled_from([0, limit, 1, 86399, 86400]), st.integers(0, limit))
    return st.builds(text, secs, _aligned_micros(fsp), st.booleans())


# MySQL's latin1 is cp1252 with its five holes (0x81, 0x8D, 0x8F, 0x90, 0x9D) kept as C1 codes
LATIN1 = "".join(
    bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)
).replace("\x00", "")
TEXT = st.characters(codec="utf-8", exclude_categories=("Cs",))
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(TEXT, max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(TEXT, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TS_RANGE = (dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(2038, 1, 19, 3, 14, 7))
DATETIME_RANGE = (dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59))


# One long table of column definitions on purpose: each type family next to its strategy.
def _columns() -> list[Col]:
    cols = []
    for name, bits in (("tiny", 8), ("small", 16), ("medium", 24), ("int", 32), ("big", 64)):
        sql = {"tiny": "TINYINT", "small": "SMALLINT", "medium": "MEDIUMINT", "int": "INT"}
        for unsigned in (False, True):
            ddl = sql.get(name, "BIGINT") + (" UNSIGNED" if unsigned else "")
            cols.append(
                Col(f"{name}_{'u' if unsigned else 's'}", ddl, _ints(bits, unsigned), "int")
            )
    for p, s in ((1, 0), (5, 2), (9, 9), (10, 4), (18, 9), (19, 0), (30, 10), (65, 30), (65, 0)):
        domain = min(30, 10**p)
        cols.append(
            Col(
                f"dec_{p}_{s}", f"DECIMAL({p},{s})", _decimals(p, s), "decimal", distinct=domain - 9
            )
        )
    finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    cols.append(Col("f32", "FLOAT", finite32, "float32"))
    finite64 = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False)
    cols.append(Col("f64", "DOUBLE", finite64, "float"))
    for n in (1, 7, 8, 13, 64):
        bits = st.integers(0, 2**n - 1)
        cols.append(Col(f"bit{n}", f"BIT({n})", bits, f"bit{n}", distinct=min(30, 2**n)))
    cols.append(Col("d", "DATE", st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)), "date"))
    for fsp in range(7):
        cols.append(Col(f"dt{fsp}", f"DATETIME({fsp})", _datetimes(fsp, *DATETIME_RANGE), "date"))
        cols.append(Col(f"ts{fsp}", f"TIMESTAMP({fsp}) NULL", _datetimes(fsp, *TS_RANGE), "ts"))
        cols.append(Col(f"tm{fsp}", f"TIME({fsp})", _times(fsp), "time"))
    cols.append(Col("yr", "YEAR", st.one_of(st.just(0), st.integers(1901, 2155)), "int"))
    cols += [
        Col("ch", "CHAR(20)", st.text(TEXT, max_size=20), "text"),
        Col("vc", "VARCHAR(300)", st.text(TEXT, max_size=300), "text"),
        Col("tx", "TEXT", st.text(TEXT, max_size=400), "text"),
        Col("ch1", "CHAR(20) CHARACTER SET latin1", st.text(LATIN1, max_size=20), "text"),
        Col("vc1", "VARCHAR(300) CHARACTER SET latin1", st.text(LATIN1, max_size=300), "text"),
        Col("bn", "BINARY(16)", st.binary(max_size=16), "binary"),
        Col("vb", "VARBINARY(300)", st.binary(max_size=300), "binary"),
        Col("bl", "BLOB", st.binary(max_size=2000), "binary"),
        Col(
            "en",
            "ENUM('', 'a', 'bb', '한글')",
            st.sampled_from(["", "a", "bb", "한글"]),
            "text",
            distinct=4,
        ),
        Col(
            "st",
            "SET('a', 'bb', 'c d', '한')",
            st.sets(st.sampled_from(["a", "bb", "c d", "한"])).map(",".join),
            "set",
            distinct=16,
        ),
        Col("js", "JSON", JSON_VALUES.map(json.dumps), "json"),
        Col(
            "geo",
            "GEOMETRY",
            st.tuples(finite64, finite64).map(lambda p: struct.pack("<BIdd", 1, 1, *p)),
            "binary",
            "ST_GeomFromWKB(%s)",
        ),
    ]
    return cols


COLUMNS = _columns()


def _row(draw_values: dict[str, Any]) -> tuple:
    return tuple(draw_values[c.name] for c in COLUMNS)


ROW = st.fixed_dictionaries({c.name: st.one_of(st.none(), c.values) for c in COLUMNS}).map(_row)


def expected_from_select(kind: str, v: Any) -> Any:
    """The README's JSON form of a value as PyMySQL's SELECT returns it (UTC session)."""
    if v is None:
        return None
    if kind == "decimal":
        return format(v, "f")
    if kind.startswith("bit"):
        return format(int.from_bytes(v, "big"), f"0{int(kind[3:])}b")
    if kind == "date":
        return v.isoformat()
    if kind == "ts":
        return v.isoformat() + "Z"
    if kind == "time":
        micros = v.days * 86_400_000_000 + v.seconds * 1_000_000 + v.microseconds
        sign, micros = ("-" if micros < 0 else ""), abs(micros)
        s, frac = divmod(micros, 1_000_000)
        out = f"{sign}{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
        return out + (f".{frac:06d}" if frac else "")
    if kind == "binary":
        return base64.b64encode(v).decode()
    if kind == "set":
        return v.split(",") if v else []
    if kind == "json":
        return json.loads(v, parse_float=decimal.Decimal)
    return v


def _matches(kind: str, published: Any, selected: Any) -> bool:
    if kind == "float32":
        # SELECT shows a FLOAT rounded to 6 significant digits; the README publishes the
        # stored 32-bit value exactly, as the shortest decimal that reads back as it
        if selected is None or published is None:
            return published is selected
        published = float(published)
        stored = _f32(published)  # as the server holds it: MySQL prints it to 6 digits
        return published == _shortest_f32(published) and f"{stored:.6g}" == f"{selected:.6g}"
    if kind == "float" and isinstance(published, decimal.Decimal):
        return float(published) == selected
    return published == expected_from_select(kind, selected)


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _shortest_f32(x: float) -> float:
    """The float with the fewest significant digits that is the same 32-bit float as x."""
    for digits in range(1, 10):
        candidate = float(f"{x:.{digits}g}")
        with contextlib.suppress(OverflowError):  # rounded past the largest float32
            if _f32(candidate) == _f32(x):
                return candidate
    raise AssertionError(f"{x!r} is not a 32-bit float")


@pytest.fixture
def conformance(stack: Stack, database: str, tailer: Tailer):
    """A table of every column type, a running service capturing it, a consumer of its topic."""
    ddl = ", ".join(f"`{c.name}` {c.ddl}" for c in COLUMNS)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE gen_types (id INT PRIMARY KEY, {ddl}) DEFAULT CHARSET=utf8mb4")
    tailer.start()
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": unique_name("types"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([tailer.topic(database, "gen_types")])
    seen: dict[str, set[str]] = {c.name: set() for c in COLUMNS}
    ids = itertools.count(1)
    streamed: dict[int, dict] = {}
    yield stack, database, consumer, ids, seen, streamed
    consumer.close()
    assert tailer.stop() == 0, tailer.log()
    _snapshot_equals_stream(stack, database, tailer.workdir, streamed)
    # the generated rows really exercised every column with many values
    wanted = {c.name: c.distinct for c in COLUMNS}
    few = {name: len(values) for name, values in seen.items() if len(values) < wanted[name]}
    assert not few, f"columns with too few distinct generated values: {few}"
    rows = next(ids) - 1
    assert rows >= MIN_ROWS, f"only {rows} generated rows inserted"
    print(f"{stack.server}: {rows} generated rows matched SELECT")


def _snapshot_equals_stream(stack: Stack, database: str, workdir, streamed: dict[int, dict]):
    """The same rows read by a snapshot are published byte for byte as the stream published
    them: both paths follow one type table."""
    snap = Tailer(stack, workdir / "snapshot", database)
    snap.workdir.mkdir()
    prefix = unique_name("snap")
    snap.env["BINLOG_TAILER_CAPTURE__TOPIC_PREFIX"] = prefix
    snap.env["BINLOG_TAILER_SNAPSHOT__MODE"] = "initial"
    snap.env["BINLOG_TAILER_SNAPSHOT__CHUNK_SIZE"] = "97"
    snap.start()
    try:
        wait_until(lambda: "every table read" in snap.log(), 120, "the snapshot")
    finally:
        assert snap.stop() == 0, snap.log()
    topic = f"{prefix}.{database}.gen_types"
    msgs = consume(stack.kafka_bootstrap, [topic], expect=len(streamed), timeout=60)
    read = {}
    for m in msgs:
        value = json.loads(m.value(), parse_float=decimal.Decimal)
        assert value["op"] == "r"
        read[value["after"]["id"]] = value["after"]
    assert set(read) == set(streamed)
    for i, after in streamed.items():
        assert read[i] == after, i


@settings(
    max_examples=BATCHES,
    deadline=None,
    # no shrinking: each step is a database round trip; the failure names column and values
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=list(HealthCheck),  # rows are large on purpose; fixture shared
)  # fmt: skip
@given(rows=st.lists(ROW, min_size=9, max_size=13))
def test_generated_values_of_every_type_match_select(conformance, rows):
    stack, database, consumer, ids, seen, streamed = conformance
    batch = [(next(ids), *row) for row in rows]
    names = ["id"] + [c.name for c in COLUMNS]
    marks = ["%s"] + [c.placeholder for c in COLUMNS]
    session = stack.admin(database, init_command="SET time_zone = '+00:00'")
    with session as conn, conn.cursor() as cur:
        conn.begin()
        cur.executemany(
            f"INSERT INTO gen_types ({','.join(f'`{n}`' for n in names)})"
            f" VALUES ({','.join(marks)})",
            batch,
        )
        conn.commit()
        cur.execute(
            "SELECT * FROM gen_types WHERE id BETWEEN %s AND %s ORDER BY id",
            (batch[0][0], batch[-1][0]),
        )
        selected = {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}

    published: dict[int, dict] = {}

    def arrived() -> bool:
        for msg in consumer.consume(num_messages=100, timeout=0.1):
            if msg.error() is None:
                after = json.loads(msg.value(), parse_float=decimal.Decimal)["after"]
                published[after["id"]] = after
        return all(i in published for i in selected)

    wait_until(arrived, 60, f"{len(selected)} generated rows in Kafka")
    streamed.update(published)
    for i, row in selected.items():
        for c in COLUMNS:
            got = published[i][c.name]
            assert _matches(c.kind, got, row[c.name]), (c.name, c.ddl, got, row[c.name])
            if row[c.name] is not None:
                seen[c.name].add(repr(row[c.name]))
