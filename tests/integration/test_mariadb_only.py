"""What only MariaDB lets a transaction do with GTIDs on: mix transactional and
non-transactional tables (MySQL's enforce_gtid_consistency refuses it)."""

import json

import pytest

from tests.integration.conftest import checked_stack
from tests.integration.stack import SERVERS, Stack, consume
from tests.integration.tailer import Tailer, master_position
from tests.integration.test_refusals import _setup


@pytest.fixture(scope="session", params=[s for s in SERVERS if s.startswith("mariadb")])
def stack(request) -> Stack:
    return checked_stack(request.param)


def test_rows_rolled_back_to_a_savepoint_but_kept_in_the_binlog_are_not_published(
    stack: Stack, database: str, tailer: Tailer
):
    """With a non-transactional table changed in the transaction, the binlog keeps rows
    rolled back to a savepoint (and the ROLLBACK TO): what Kafka gets is what SELECT shows."""
    _setup(
        stack, database, tailer,
        "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM",
        "CREATE TABLE a (id INT PRIMARY KEY) ENGINE=Aria",
        "CREATE TRIGGER t_to_m AFTER INSERT ON t FOR EACH ROW INSERT INTO m VALUES (NEW.id)",
    )  # fmt: skip
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()
        cur.execute("INSERT INTO t VALUES (1, 'kept')")
        cur.execute("SAVEPOINT sp")
        cur.execute("INSERT INTO t VALUES (2, 'rolled back')")  # m gets 2 for good
        cur.execute("SAVEPOINT `inner one`")
        cur.execute("UPDATE t SET v = 'rolled back' WHERE id = 1")
        cur.execute("INSERT INTO a VALUES (1)")
        cur.execute("ROLLBACK TO SAVEPOINT `inner one`")
        cur.execute("INSERT INTO t VALUES (3, 'rolled back')")
        cur.execute("ROLLBACK TO SAVEPOINT SP")
        cur.execute("INSERT INTO t VALUES (4, 'kept')")
        cur.execute("DELETE FROM t WHERE id = 1")
        conn.commit()
        tables = {}
        for table in ("t", "m", "a"):
            cur.execute(f"SELECT id FROM {table} ORDER BY id")
            tables[table] = [r[0] for r in cur.fetchall()]
    assert tables == {"t": [4], "m": [1, 2, 3, 4], "a": [1]}
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()
    topics = {table: tailer.topic(database, table) for table in tables}
    published = {
        table: [
            (v["op"], (v["after"] or v["before"])["id"])
            for v in (json.loads(m.value()) for m in consume(stack.kafka_bootstrap, [topic],
                      expect=expect, settle=1))
        ]
        for (table, topic), expect in zip(topics.items(), (3, 4, 1), strict=True)
    }  # fmt: skip
    assert published == {
        "t": [("c", 1), ("c", 4), ("d", 1)],
        "m": [("c", 1), ("c", 2), ("c", 3), ("c", 4)],
        "a": [("c", 1)],
    }
