from binlog_tailer.position import BinlogPosition, parse_position
from binlog_tailer.preflight import stored_gtid_finding, version_finding


def test_servers_without_column_names_in_the_binlog_are_refused_by_version():
    assert version_finding("9.7.4-2", False).ok
    assert version_finding("8.4.3", False).ok
    assert version_finding("10.11.19-MariaDB-0+deb12u1-log", True).ok
    assert version_finding("11.8.3-MariaDB-1", True).ok
    old_mysql = version_finding("5.7.44-log", False)
    assert not old_mysql.ok and "MySQL 5.7.44-log is not supported" in old_mysql.what
    assert "8.0.14" in old_mysql.what and "upgrade" in old_mysql.fix
    old_mariadb = version_finding("10.4.33-MariaDB", True)
    assert not old_mariadb.ok and "10.5.0+" in old_mariadb.what
    assert version_finding("weird", False).ok  # not a reason to refuse


def test_a_stored_gtid_of_the_other_dialect_is_named():
    mysql = parse_position("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:tagone:1")
    mariadb = parse_position("0-1-150")
    assert stored_gtid_finding(mysql, is_mariadb=False) is None
    assert stored_gtid_finding(mariadb, is_mariadb=True) is None
    assert stored_gtid_finding(BinlogPosition("binlog.000001", 4), is_mariadb=True) is None
    assert stored_gtid_finding(None, is_mariadb=True) is None
    wrong = stored_gtid_finding(mysql, is_mariadb=True)
    assert wrong is not None and not wrong.ok and "not MariaDB's" in wrong.what
