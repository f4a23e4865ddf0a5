import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysqlreplication.gtid import GtidSet

from binlog_tailer.errors import ConfigError
from binlog_tailer.position import (
    BinlogPosition,
    MariadbGtidPos,
    MysqlGtidSet,
    _varlen_uint,
    parse_gtid,
    parse_position,
)

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562"


def test_mariadb_gtid_list_roundtrip_and_advance():
    pos = MariadbGtidPos.parse("1-2-7, 0-1-150")
    assert str(pos) == "0-1-150,1-2-7"
    assert str(pos.with_gtid(0, 3, 151)) == "0-3-151,1-2-7"
    assert str(pos.with_gtid(5, 1, 1)) == "0-1-150,1-2-7,5-1-1"


@pytest.mark.parametrize("bad", ["0-1", "0-1-x", "0-1-2,0-1-3"])
def test_mariadb_gtid_rejects(bad):
    with pytest.raises(ConfigError):
        MariadbGtidPos.parse(bad)


def test_mysql_gtid_set_merges_intervals():
    s = MysqlGtidSet.parse(f"{U2}:1-3,{U1.upper()}:1-5:7-9")
    assert str(s) == f"{U1}:1-5:7-9,{U2}:1-3"
    s = s.with_gtid(U1, 6)
    assert str(s) == f"{U1}:1-9,{U2}:1-3"
    assert f"{U1}:6" in s and f"{U1}:10" not in s
    assert str(s.with_gtid(U2, 5)) == f"{U1}:1-9,{U2}:1-3:5"


@pytest.mark.parametrize("bad", [f"{U1}", f"{U1}:5-3", "nope:1-3", f"{U1}:0"])
def test_mysql_gtid_rejects(bad):
    with pytest.raises(ConfigError):
        MysqlGtidSet.parse(bad)


def test_parse_gtid_tells_the_dialect_apart():
    assert isinstance(parse_gtid("0-1-5"), MariadbGtidPos)
    assert isinstance(parse_gtid(f"{U1}:1-5"), MysqlGtidSet)


def test_parse_position_forms():
    assert parse_position("mysql-bin.000003:1234") == BinlogPosition("mysql-bin.000003", 1234)
    assert parse_position("0-1-150").gtid == MariadbGtidPos(((0, 1, 150),))
    with pytest.raises(ConfigError, match="cannot read position"):
        parse_position("mysql-bin.000003")
    with pytest.raises(ConfigError, match="before the first event"):
        parse_position("mysql-bin.000003:2")


def test_position_dict_roundtrip():
    p = BinlogPosition("binlog.000002", 4873, MariadbGtidPos.parse("0-1-27"))
    assert BinlogPosition.from_dict(p.to_dict()) == p
    assert str(p) == "binlog.000002:4873 gtid=0-1-27"


def test_position_needs_file_or_gtid():
    with pytest.raises(ConfigError):
        BinlogPosition()
    with pytest.raises(ConfigError):
        BinlogPosition(file="binlog.000001")


# --- MySQL 8.3+ tagged GTIDs (text forms checked against MySQL 9.7.4's GTID_SUBTRACT(x, '')) ---


def test_mysql_tagged_gtid_set_prints_like_mysql():
    s = MysqlGtidSet.parse(f"{U2}:1-3,{U1}:Zeta:7:1-2:alpha:4:5:6,{U1}:1-5:7-9")
    # MySQL: untagged intervals first, then the tags in order; MySQL joins uuids with ",\n"
    assert str(s) == f"{U1}:1-5:7-9:alpha:4-6:zeta:1-2:7,{U2}:1-3"
    s = MysqlGtidSet.parse(f"{U1}:tag_a:1-3:TAG_A:5, {U1.upper()} : 2")
    assert str(s) == f"{U1}:2:tag_a:1-3:5"
    assert str(MysqlGtidSet.parse(f"{U1}:tagone:1,{U1}:1-12,{U1}:tag_two:1")) == (
        f"{U1}:1-12:tag_two:1:tagone:1"  # as @@gtid_executed showed it ('_' sorts before 'o')
    )
    assert MysqlGtidSet.parse(str(s)) == s


def test_mysql_tagged_gtid_set_advance_and_contains():
    s = MysqlGtidSet.parse(f"{U1}:1-5:tg:1-2")
    s = s.with_gtid(U1, 3, tag="TG").with_gtid(U1, 6).with_gtid(U2.upper(), 1, tag="other")
    assert str(s) == f"{U1}:1-6:tg:1-3,{U2}:other:1"
    assert str(s.with_gtid(f"{U1}:tg", 4)) == f"{U1}:1-6:tg:1-4,{U2}:other:1"  # a TSID works too
    assert f"{U1}:tg:3" in s and f"{U1}:TG:2" in s and f"{U1}:tg:4" not in s
    assert f"{U1}:6" in s and f"{U1}:other:1" not in s and f"{U2}:other:1" in s
    assert isinstance(parse_gtid(f"{U1}:tg:1"), MysqlGtidSet)
    p = BinlogPosition("binlog.000002", 4873, s)
    assert BinlogPosition.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    "bad",
    [
        f"{U1}:tag",  # a tag without intervals (MySQL takes it as empty)
        f"{U1}:1-5:tag",
        f"{U1}:a23456789012345678901234567890123:1",  # 33 characters: MySQL says malformed
        f"{U1}:1x:1",
        f"{U1}:t-g:1",
        f"{U1}::1",
    ],
)
def test_mysql_tagged_gtid_rejects(bad):
    with pytest.raises(ConfigError):
        MysqlGtidSet.parse(bad)


def test_mysql_gtid_with_bad_tag():
    with pytest.raises(ConfigError, match="not a GTID tag"):
        MysqlGtidSet().with_gtid(U1, 1, tag="9lives")


@pytest.mark.parametrize(
    "text", ["", f"{U1}:1", f"{U2}:1-3,{U1}:1-5:7-9", f"{U1}:1-9223372036854775806"]
)
def test_mysql_gtid_set_encodes_like_pymysqlreplication(text):
    s = MysqlGtidSet.parse(text) if text else MysqlGtidSet()
    assert s.encode() == GtidSet(str(s) or None).encoded()


SERVER = "9819da85-e8e7-11f1-9195-02fc00000001"


def test_mysql_tagged_gtid_set_encoding():
    # MySQL 9.7.4 took this in COM_BINLOG_DUMP_GTID and skipped exactly these transactions
    s = MysqlGtidSet.parse(f"{SERVER}:1-11:tagone:1")
    assert s.encode() == bytes.fromhex(
        "0102000000000001"  # tagged format: 1 << 56 | n_sids << 8 | 1
        "9819da85e8e711f1919502fc00000001"
        "00"  # no tag: length 0
        "0100000000000000"  # one interval, [1, 12)
        "0100000000000000"
        "0c00000000000000"
        "9819da85e8e711f1919502fc00000001"
        "0c7461676f6e65"  # "tagone": length 6 as a variable-length integer (6 << 1)
        "0100000000000000"
        "0100000000000000"
        "0200000000000000"
    )


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (127, "fe"), (128, "0102"), (65535, "fbff07"), (2**64 - 1, "ff" + "ff" * 8)],
)
def test_varlen_uint(value, encoded):
    # examples from libs/mysql/serialization/readme.md (65535: "fb ff 07" little-endian)
    assert _varlen_uint(value).hex() == encoded


# Previous_gtids event body (35) MySQL 9.7.4 wrote for @@gtid_executed
# "9819da85-e8e7-11f1-9195-02fc00000001:1-200:tag_two:1:tagone:1"
PREVIOUS_GTIDS = bytes.fromhex(
    "0103000000000001"  # tagged format, 3 TSIDs
    "9819da85e8e711f1919502fc00000001"  # 1-200, no tag
    "0001000000000000000100000000000000c900000000000000"
    "9819da85e8e711f1919502fc00000001"  # tag_two:1
    "0e7461675f74776f01000000000000000100000000000000"
    "0200000000000000"
    "9819da85e8e711f1919502fc00000001"  # tagone:1
    "0c7461676f6e65010000000000000001000000000000000200000000000000"
)


def test_mysql_gtid_set_encode_matches_the_servers_previous_gtids_event():
    s = MysqlGtidSet.parse(f"{SERVER}:1-200:tag_two:1:tagone:1")
    assert s.encode() == PREVIOUS_GTIDS
    assert MysqlGtidSet.decode(PREVIOUS_GTIDS) == s


@pytest.mark.parametrize("text", ["", f"{U2}:1-3,{U1}:1-5:7-9", f"{U1}:1:a:2,{U2}:b:3"])
def test_mysql_gtid_set_decode_roundtrip(text):
    s = MysqlGtidSet.parse(text) if text else MysqlGtidSet()
    assert MysqlGtidSet.decode(s.encode()) == s


@pytest.mark.parametrize(
    "bad",
    [b"", PREVIOUS_GTIDS[:-1], PREVIOUS_GTIDS[:30], b"\x02" + PREVIOUS_GTIDS[1:], b"\x00" * 7],
)
def test_mysql_gtid_set_decode_rejects(bad):
    with pytest.raises(ValueError, match="GTID set encoding"):
        MysqlGtidSet.decode(bad)


def test_mysql_gno_limit():
    with pytest.raises(ConfigError):
        MysqlGtidSet.parse(f"{U1}:9223372036854775807")


def test_mysql_gtid_set_decode_checks_intervals():
    one = MysqlGtidSet.parse(f"{U1}:3-4").encode()
    assert MysqlGtidSet.decode(one) == MysqlGtidSet.parse(f"{U1}:3-4")
    with pytest.raises(ValueError, match="bad GTID interval"):
        MysqlGtidSet.decode(one[:-8] + (3).to_bytes(8, "little"))  # [3, 3): empty


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([U1, U2, f"{U1}:tag_a"]), st.integers(1, 40)), max_size=60)
)
def test_a_gtid_set_grown_one_gtid_at_a_time_equals_the_set_parsed_whole(gtids):
    """The fast path of with_gtid (the next GTID of a source extends its last interval) gives
    what parsing all of them at once gives, in any order, with repeats."""
    grown = MysqlGtidSet()
    for tsid, gno in gtids:
        grown = grown.with_gtid(tsid, gno)
    assert grown == MysqlGtidSet.parse(",".join(f"{t}:{n}" for t, n in gtids))
