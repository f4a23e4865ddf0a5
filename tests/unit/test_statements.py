import pytest

from binlog_tailer.binlog.statements import Kind, classify


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        (b"BEGIN", Kind.BEGIN),
        (b"  begin", Kind.BEGIN),
        (b"COMMIT", Kind.COMMIT),
        (b"ROLLBACK", Kind.ROLLBACK),
        (b"ROLLBACK TO `sp1`", Kind.ROLLBACK_TO_SAVEPOINT),
        (b"rollback work to savepoint sp1", Kind.ROLLBACK_TO_SAVEPOINT),
        (b"SAVEPOINT `sp1`", Kind.SAVEPOINT),
        (b"XA START X'1234',X'',1", Kind.XA),
        (b"XA COMMIT X'1234',X'',1", Kind.XA),
        (b"ALTER TABLE t ADD COLUMN c INT", Kind.OTHER),
        (b"/* app */ CREATE TABLE insert_log (id INT)", Kind.OTHER),
        (b"TRUNCATE TABLE t", Kind.TRUNCATE),
        (b"truncate `db`.t", Kind.TRUNCATE),
    ],
)
def test_transaction_control_and_ddl(sql, kind):
    assert classify(sql).kind is kind


@pytest.mark.parametrize(
    ("sql", "verb", "targets"),
    [
        (b"INSERT INTO t VALUES (1)", "INSERT", ((None, "t"),)),
        (b"insert ignore into `shop`.`orders` (id) values (1)", "INSERT", (("shop", "orders"),)),
        (b"INSERT shop.orders SET id = 1", "INSERT", (("shop", "orders"),)),
        (b"INSERT INTO t SELECT * FROM other", "INSERT", ((None, "t"),)),
        (b"REPLACE INTO `we``ird` VALUES (1)", "REPLACE", ((None, "we`ird"),)),
        (b"UPDATE t SET a = 1 WHERE id = 2", "UPDATE", ((None, "t"),)),
        (b"UPDATE LOW_PRIORITY db.t AS x SET a = 1", "UPDATE", (("db", "t"),)),
        (b"DELETE FROM t WHERE id = 1", "DELETE", ((None, "t"),)),
        (b"/* c */ DELETE QUICK FROM db.t", "DELETE", (("db", "t"),)),
        (b"LOAD DATA INFILE '/f' INTO TABLE db.t FIELDS TERMINATED BY ','", "LOAD DATA",
         (("db", "t"),)),
        (b"LOAD XML LOCAL INFILE 'f' INTO TABLE t ROWS IDENTIFIED BY '<r>'", "LOAD DATA", ()),
        # several tables, or a form not read: no targets (treated as touching every table)
        (b"UPDATE t1, t2 SET t1.a = t2.a", "UPDATE", ()),
        (b"UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = 1", "UPDATE", ()),
        (b"DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", "DELETE", ()),
        (b"DELETE FROM t1 USING t1 JOIN t2", "DELETE", ()),
    ],
)  # fmt: skip
def test_dml_and_the_table_it_changes(sql, verb, targets):
    s = classify(sql)
    assert (s.kind, s.verb, s.targets) == (Kind.DML, verb, targets)
