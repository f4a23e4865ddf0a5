import pytest

from binlog_tailer.errors import ConfigError
from binlog_tailer.position import (
    BinlogPosition,
    MariadbGtidPos,
    MysqlGtidSet,
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
